"""Warm-up, the daily roll-over, and which mailbox sends next."""

import random
from collections import Counter
from unittest import mock

import pytest

from agents import tasks
from agents.domains import (
    counters_rollover,
    mailbox_assign,
    mailbox_pause_and_move,
    mailbox_warmup_advance,
    mailboxes_ensure_default,
    pick_mailbox,
    warmup_stage,
)
from agents.models import Mailbox, Message
from rex_project.exceptions import ApplicationError
from tests.factories import (
    CampaignFactory,
    LeadFactory,
    MailboxFactory,
    MessageFactory,
    OrganizationFactory,
    PhoneNumberFactory,
    SendingDomainFactory,
)

pytestmark = pytest.mark.django_db


def _caps(mailbox: Mailbox, days: int) -> list[int]:
    caps = []
    for _ in range(days):
        mailbox_warmup_advance(mailbox)
        mailbox.refresh_from_db()
        caps.append(mailbox.daily_cap)
    return caps


def test_a_new_mailbox_starts_at_twenty_and_ramps_to_its_target():
    mailbox = MailboxFactory(target_daily_cap=50, warmup_step=5)
    assert mailbox.daily_cap == 20 and mailbox.warming_up

    assert _caps(mailbox, 8) == [25, 30, 35, 40, 45, 50, 50, 50]
    assert warmup_stage(mailbox)["label"] == "warmed up"


def test_the_ramp_never_passes_the_target():
    mailbox = MailboxFactory(target_daily_cap=32, warmup_step=5)

    assert _caps(mailbox, 4) == [25, 30, 32, 32]


def test_a_lowered_target_lowers_the_cap_and_a_paused_mailbox_does_not_ramp():
    lowered = MailboxFactory(daily_cap=80, target_daily_cap=50)
    paused = MailboxFactory(is_paused=True)

    assert _caps(lowered, 1) == [50]
    assert _caps(paused, 2) == [20, 20]


def test_the_warmup_stage_is_visible():
    mailbox = MailboxFactory(daily_cap=30, target_daily_cap=50, warmup_step=5)

    assert warmup_stage(mailbox) == {
        "warming_up": True, "daily_cap": 30, "target_daily_cap": 50, "step_per_day": 5, "days_left": 4,
        "label": "warming up 30/50",
    }  # fmt: skip


def test_the_warmup_task_advances_every_warming_mailbox():
    warming, done = MailboxFactory(daily_cap=20), MailboxFactory(daily_cap=50, target_daily_cap=50)

    assert tasks.warmup_advance_all() == 1

    warming.refresh_from_db()
    done.refresh_from_db()
    assert (warming.daily_cap, done.daily_cap) == (25, 50)


def test_the_rollover_resets_domains_mailboxes_and_numbers():
    domain = SendingDomainFactory(sent_today=7)
    mailbox = MailboxFactory(sending_domain=domain, sent_today=3)
    number = PhoneNumberFactory(sent_today=9)
    SendingDomainFactory(sent_today=0)

    assert counters_rollover() == 3
    assert tasks.reset_daily_counters() == 0

    for row in (domain, mailbox, number):
        row.refresh_from_db()
        assert row.sent_today == 0


def test_the_hourly_task_enqueues_one_check_per_domain():
    domains = [SendingDomainFactory(), SendingDomainFactory()]
    with mock.patch.object(tasks.domain_health_check_one, "delay") as delay:
        assert tasks.domain_health_check_all() == 2
    assert sorted(call.args[0] for call in delay.call_args_list) == sorted(d.pk for d in domains)


def _org_with_mailboxes(*specs):
    organization = OrganizationFactory()
    mailboxes = []
    for i, spec in enumerate(specs):
        domain_fields = {k: spec.pop(k) for k in ("reputation_score", "domain_paused") if k in spec}
        domain = SendingDomainFactory(
            organization=organization,
            reputation_score=domain_fields.get("reputation_score", 0.95),
            is_paused=domain_fields.get("domain_paused", False),
        )
        mailboxes.append(MailboxFactory(sending_domain=domain, local_part=f"box{i}", **spec))
    return organization, mailboxes


def _picks(organization, n=300, **kwargs) -> Counter:
    rng = random.Random(7)
    return Counter(getattr(pick_mailbox(organization=organization, rng=rng, **kwargs), "pk", None) for _ in range(n))


def test_rotation_never_picks_a_paused_full_or_unhealthy_mailbox():
    organization, (ok, *_unusable) = _org_with_mailboxes(
        {}, {"is_paused": True}, {"sent_today": 20}, {"reputation_score": 0.69}, {"domain_paused": True}
    )

    assert _picks(organization) == Counter({ok.pk: 300})
    assert _picks(organization, exclude={ok.pk}) == Counter({None: 300})


def test_the_weighted_choice_follows_remaining_capacity():
    organization, (fresh, busy) = _org_with_mailboxes(
        {"daily_cap": 100, "target_daily_cap": 100}, {"daily_cap": 100, "target_daily_cap": 100, "sent_today": 90}
    )

    picks = _picks(organization, n=1000)

    assert picks[fresh.pk] > 8 * picks[busy.pk] > 0


def test_a_campaigns_load_spreads_over_its_mailboxes():
    organization, (a, b) = _org_with_mailboxes({}, {})
    campaign = CampaignFactory(organization=organization)
    for _ in range(5):
        MessageFactory(organization=organization, campaign=campaign, mailbox=a, sending_domain=a.sending_domain)

    picks = _picks(organization, n=600, campaign=campaign)

    assert picks[b.pk] > 3 * picks[a.pk]


def test_a_domain_without_mailboxes_gets_the_default_sender(settings):
    settings.DEFAULT_SENDER_LOCALPART = "hello"
    domain = SendingDomainFactory(daily_cap=300)

    assert mailboxes_ensure_default(organization=domain.organization) == 1
    assert mailboxes_ensure_default(organization=domain.organization) == 0

    mailbox = domain.mailboxes.get()
    assert (mailbox.address, mailbox.daily_cap, mailbox.warming_up) == (f"hello@{domain.domain}", 300, False)


def test_pause_and_move_moves_only_queued_messages_to_other_mailboxes():
    organization, (paused, other_a, other_b) = _org_with_mailboxes({}, {}, {})
    queued = [
        MessageFactory(organization=organization, mailbox=paused, sending_domain=paused.sending_domain)
        for _ in range(4)
    ]
    sent = MessageFactory(
        organization=organization, mailbox=paused, sending_domain=paused.sending_domain, status=Message.Status.SENT
    )

    assert mailbox_pause_and_move(paused, reason="operator: spam trap hit") == 4

    paused.refresh_from_db()
    assert paused.is_paused and paused.pause_reason == "operator: spam trap hit"
    for message in Message.objects.filter(pk__in=[m.pk for m in queued]).select_related("mailbox__sending_domain"):
        assert message.mailbox_id in {other_a.pk, other_b.pk}
        assert message.sending_domain_id == message.mailbox.sending_domain_id
        assert message.from_address == message.mailbox.address
    sent.refresh_from_db()
    assert sent.mailbox_id == paused.pk


def test_pause_and_move_with_nowhere_to_go_leaves_the_queue():
    organization, (only,) = _org_with_mailboxes({})
    MessageFactory(organization=organization, mailbox=only, sending_domain=only.sending_domain)

    assert mailbox_pause_and_move(only, reason="x") == 0
    assert Message.objects.filter(mailbox=only, status="queued").count() == 1


def test_assign_keeps_a_lead_on_its_previous_mailbox_while_healthy():
    organization, (a, b) = _org_with_mailboxes({}, {})
    lead = LeadFactory(organization=organization)
    MessageFactory(organization=organization, lead=lead, mailbox=b, sending_domain=b.sending_domain)

    assert mailbox_assign(organization=organization, lead=lead) == b

    b.is_paused = True
    b.save()
    assert mailbox_assign(organization=organization, lead=lead) == a


def test_assign_without_capacity_is_an_application_error():
    organization, _ = _org_with_mailboxes({"sent_today": 20})

    with pytest.raises(ApplicationError):
        mailbox_assign(organization=organization, campaign=CampaignFactory(organization=organization))
