"""Channel layer: sends per second through the sandbox provider with the outreach checks on
(decision engine: suppression, recency, frequency cap and send-window rules; rate limiter on the
configured store) next to the same loop with the checks off (claim, send, record only).
Target: the checks cost at most 20%."""

import statistics
import time

from django.db import transaction

from agents.models import DecisionRule, Lead, Mailbox, Message, Mission, SendingDomain
from agents.pipeline.outreach import gate_and_send
from agents.rate_limits import rate_limits_reset
from agents.sending import message_send
from agents.services import organization_get_or_create
from bench.common import Row

SENDS = 300
ROUNDS = 3  # alternate off/on and keep each side's median, so warm-up and drift hit both alike


def _queued_messages(tag: str) -> list[Message]:
    organization = organization_get_or_create(name=f"bench-channel-{tag}-{time.time_ns()}")
    organization.sends_per_minute = 1_000_000
    organization.save()
    # The clock must not decide the figure: this run measures the checks, not the window's verdict.
    DecisionRule.objects.filter(organization=organization, name="Outside the send window waits").delete()
    domain = SendingDomain.objects.create(organization=organization, domain=f"{tag}.rexbench.io", daily_cap=10**6)
    mailbox = Mailbox.objects.create(
        sending_domain=domain, local_part="hello", daily_cap=10**6, target_daily_cap=500, hourly_cap=10**6,
        min_gap_seconds=0,
    )  # fmt: skip
    mission = Mission.objects.create(organization=organization, type=Mission.Type.LEAD_REACTIVATION)
    leads = Lead.objects.bulk_create(
        [Lead(organization=organization, email=f"l{i}@c{i}.rexbench.io", state="personalized", timezone="UTC")
         for i in range(SENDS)]
    )  # fmt: skip
    return Message.objects.bulk_create(
        [
            Message(organization=organization, mission=mission, lead=lead, channel="email", subject="Hi",
                    body="Hello again", to_address=lead.email, from_address=mailbox.address, mailbox=mailbox,
                    sending_domain=domain)
            for lead in leads
        ]
    )  # fmt: skip


def _rate(send) -> float:
    messages = _queued_messages("on" if send is gate_and_send else "off")
    leads = {m.lead_id: m.lead for m in Message.objects.filter(pk__in=[m.pk for m in messages]).select_related("lead")}
    started = time.perf_counter()
    for message in messages:
        if send is gate_and_send:
            gate_and_send(lead=leads[message.lead_id], message=message)
        else:
            message_send(message_id=message.pk)
    rate = SENDS / (time.perf_counter() - started)
    sent = Message.objects.filter(pk__in=[m.pk for m in messages], status="sent").count()
    if sent != SENDS:
        raise RuntimeError(f"only {sent}/{SENDS} sent: the run measured something else")
    return rate


def run() -> list[Row]:
    offs, ons = [], []
    for _ in range(ROUNDS):
        rate_limits_reset()  # each round starts under the channel's per-minute limit
        with transaction.atomic():
            offs.append(_rate(message_send))
            ons.append(_rate(gate_and_send))
            transaction.set_rollback(True)
    off, on = statistics.median(offs), statistics.median(ons)
    return [
        Row("sends/s, checks off (claim, send, record)", off, "sends/s"),
        Row(
            "sends/s, checks on (rules, suppression, window, cap, rate limits)", on, "sends/s",
            target="≥ 0.8 × checks off", reference=off, met=on >= 0.8 * off,
        ),
    ]  # fmt: skip
