"""What happens to one message REX sent: sampled from the hidden propensities with the message's own RNG.

A ``Fate`` is the timeline of everything the world will report about the message (provider events, replies,
CRM activity), each ``Happening`` at a simulated delay after the send. Turning happenings into provider
requests is ``simulation.events``; posting them is ``simulation.responder``.

The uniform draws that decide *whether* something happens are taken first and in a fixed order, so the same
lead on a better strategy replies whenever it replied on a worse one (common random numbers): comparisons
between runs are about choices, not luck.
"""

import datetime as dt
import math
import random
import zoneinfo
from dataclasses import dataclass, field

from simulation.propensity import HiddenModel, Propensities, Strategy
from simulation.replies import Thread, Writer, email_reply, sms_reply
from simulation.world import WorldLead

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
# A person never opens within a minute of delivery here; REX counts anything within 5 s as a machine.
HUMAN_MIN_DELAY = 60.0
OBJECTION_BIAS = {"budget": "price", "timing": "timing", "no decision": "authority", "competitor": "competitor"}
NON_POSITIVE_KINDS = {"objection": 0.55, "question": 0.2, "not_interested": 0.15, "unsubscribe": 0.1}
DEAL_VALUE = {"small": (5_000, 15_000), "mid": (15_000, 60_000), "enterprise": (60_000, 250_000)}
# Undelivered SMS: a landline (30006) or a number that no longer exists (30003 unreachable, 30005 unknown).
SMS_ERRORS = {"landline": ("30006",), "dead": ("30003", "30005")}


@dataclass(frozen=True)
class Sent:
    """One message as the provider received it (read from ``Message.provider_request``)."""

    message_id: int
    lead_id: int
    channel: str
    to: str
    from_address: str
    subject: str
    body: str
    framework: str
    tone: str
    provider_message_id: str
    rfc_message_id: str
    sent_at: dt.datetime
    sending_domain: str = ""
    custom_args: dict = field(default_factory=dict)
    categories: tuple = ()
    unsubscribe_url: str = ""
    status_callback: str = ""

    @property
    def strategy(self) -> Strategy:
        return Strategy(self.framework, self.tone, self.channel)


@dataclass(frozen=True)
class Happening:
    at: float  # simulated seconds after the send
    what: str
    detail: dict = field(default_factory=dict)


@dataclass
class Fate:
    sent: Sent
    propensities: Propensities
    happenings: list[Happening] = field(default_factory=list)
    truth: dict = field(default_factory=dict)  # the world's own tally: delivered, replied, positive, meeting, ...

    def add(self, at: float, what: str, **detail) -> float:
        self.happenings.append(Happening(at, what, detail))
        return at


def _lognormal(rng: random.Random, median: float, sigma: float, *, low: float, high: float) -> float:
    return min(high, max(low, median * math.exp(rng.gauss(0.0, sigma))))


def local_time(sent_at: dt.datetime, timezone: str) -> dt.datetime:
    return sent_at.astimezone(zoneinfo.ZoneInfo(timezone or "UTC"))


def sample(
    sent: Sent, lead: WorldLead, model: HiddenModel, *, rng: random.Random, domain_reputation: float = 1.0,
    opted_out: bool = False,
) -> Fate:  # fmt: skip
    """The fate of ``sent`` to ``lead``. ``opted_out``: the number texted STOP before (Twilio refuses it)."""
    local = local_time(sent.sent_at, lead.timezone)
    p = model.propensities(
        lead, sent.strategy, local_hour=local.hour, weekday=local.weekday(), domain_reputation=domain_reputation
    )
    draws = [rng.random() for _ in range(8)]  # whether: deliver, reply, ooo, complaint, unsubscribe, open, stop, -
    fate = Fate(sent=sent, propensities=p)
    if sent.channel == "sms":
        _sms(fate, lead, rng, draws, opted_out=opted_out)
    else:
        _email(fate, lead, rng, draws)
    fate.happenings.sort(key=lambda h: h.at)
    return fate


# --- Email ---------------------------------------------------------------------------------------------------


def _email(fate: Fate, lead: WorldLead, rng: random.Random, draws: list[float]) -> None:
    p, truth = fate.propensities, fate.truth
    fate.add(rng.uniform(0.2, 1.5), "processed")
    if p.dead or draws[0] < p.block:
        kind = "bounce" if p.dead else "blocked"
        fate.add(rng.uniform(2, 30), kind)
        truth.update(bounced=kind)
        return
    delivered = rng.uniform(2, 15)
    if rng.random() < 0.01 + 0.1 * (1 - p.inbox):  # greylisting or throttling: retried, then delivered
        fate.add(delivered, "deferred")
        delivered += rng.uniform(5 * MINUTE, HOUR)
    fate.add(delivered, "delivered")
    truth["delivered"] = True
    if lead.apple_mail:  # Apple Mail Privacy Protection fetches the pixel on arrival
        fate.add(delivered + rng.uniform(0.5, 4.0), "machine_open")
    if lead.security_gateway:
        fate.add(delivered + rng.uniform(0.3, 3.0), "scanner_click")
    replied = draws[1] < p.reply
    if draws[2] < p.out_of_office:
        _auto_reply(fate, lead, rng, at=delivered + rng.uniform(5, 2 * MINUTE))
    opened_at = _opens(fate, rng, delivered, opened=draws[5] < (0.85 if replied else p.open))
    if replied:
        _reply(fate, lead, rng, after=opened_at or delivered + rng.uniform(5 * MINUTE, HOUR))
    elif draws[3] < p.complaint:
        fate.add((opened_at or delivered) + rng.uniform(5, 2 * MINUTE), "spamreport")
        truth["complaint"] = True
    elif draws[4] < p.unsubscribe:
        _unsubscribe(fate, lead, rng, after=opened_at or delivered + rng.uniform(HOUR, DAY))


def _opens(fate: Fate, rng: random.Random, delivered: float, *, opened: bool) -> float | None:
    """A person's opens (the first one a minute or more after delivery); None when no open is recorded
    (not opened, or images blocked)."""
    if not opened:
        return None
    first = delivered + _lognormal(rng, 2 * HOUR, 1.2, low=HUMAN_MIN_DELAY, high=5 * DAY)
    fate.add(first, "open")
    for _ in range(rng.choice((0, 0, 1, 2))):
        fate.add(first + rng.uniform(10 * MINUTE, 2 * DAY), "open")
    fate.truth["opened"] = True
    return first


def _thread(sent: Sent, lead: WorldLead) -> Thread:
    mailbox = sent.from_address.split("@", 1)[0]
    return Thread(sent.subject, sent.body, mailbox.capitalize(), sent.from_address, sent.sent_at, lead.timezone)


def _auto_reply(fate: Fate, lead: WorldLead, rng: random.Random, *, at: float) -> None:
    when = fate.sent.sent_at + dt.timedelta(seconds=at)
    reply = email_reply(kind="out_of_office", rng=rng, writer=_writer(lead), thread=_thread(fate.sent, lead), when=when)
    fate.add(at, "out_of_office", reply=reply)
    fate.truth["out_of_office"] = True


def _unsubscribe(fate: Fate, lead: WorldLead, rng: random.Random, *, after: float) -> None:
    if lead.one_click_unsubscribe:  # the mail app's button: an RFC 8058 POST, no click through SendGrid
        fate.add(after + rng.uniform(10, 5 * MINUTE), "unsubscribe_one_click")
    else:  # the footer link: a tracked click, the page, then its button
        click = fate.add(after + rng.uniform(10, 3 * MINUTE), "click")
        fate.add(click + rng.uniform(3, 30), "unsubscribe_page")
    fate.truth["unsubscribed"] = True


def _reply_kind(fate: Fate, lead: WorldLead, rng: random.Random) -> tuple[str, str]:
    if rng.random() < fate.propensities.positive:
        return "positive", ""
    kinds = NON_POSITIVE_KINDS
    kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
    if kind != "objection":
        return kind, ""
    weights = {"price": 1.0, "timing": 1.0, "authority": 1.0, "competitor": 1.0}
    if lead.lost_reason in OBJECTION_BIAS:
        weights[OBJECTION_BIAS[lead.lost_reason]] += 2.5
    if lead.seniority_group == "staff":
        weights["authority"] += 1.0
    if lead.size_band == "small":
        weights["price"] += 1.0
    return kind, rng.choices(list(weights), weights=list(weights.values()))[0]


def _writer(lead: WorldLead) -> Writer:
    return Writer(lead.first_name, lead.last_name, lead.title, lead.company, lead.email.rsplit("@", 1)[-1])


def _reply(fate: Fate, lead: WorldLead, rng: random.Random, *, after: float) -> None:
    sent = fate.sent
    at = after + _lognormal(rng, 40 * MINUTE, 1.3, low=MINUTE, high=3 * DAY)
    kind, objection = _reply_kind(fate, lead, rng)
    when = sent.sent_at + dt.timedelta(seconds=at)
    if sent.channel == "sms":
        if kind == "unsubscribe" and rng.random() < 0.6:
            kind = "stop"  # most people who want out just text the keyword
        reply = sms_reply(kind=kind, objection=objection, rng=rng, writer=_writer(lead), when=when)
        fate.add(at, "sms_reply", reply=reply)
    else:
        thread = _thread(sent, lead)
        reply = email_reply(kind=kind, objection=objection, rng=rng, writer=_writer(lead), thread=thread, when=when)
        fate.add(at, "reply", reply=reply)
    fate.truth.update(replied=True, reply_kind=kind, objection=objection)
    if kind == "positive":
        fate.truth["positive"] = True
        _meeting(fate, lead, rng, after=at)
    elif kind == "not_interested" and rng.random() < 0.2:  # the rep marks them do-not-contact in the CRM
        fate.add(at + rng.uniform(HOUR, 2 * DAY), "do_not_contact")


def _meeting(fate: Fate, lead: WorldLead, rng: random.Random, *, after: float) -> None:
    p = fate.propensities
    if rng.random() >= p.meeting:
        return
    booked = fate.add(after + rng.uniform(2 * HOUR, 3 * DAY), "meeting_booked")
    starts = booked + rng.uniform(DAY, 7 * DAY)
    fate.truth["meeting"] = True
    if rng.random() >= p.show:
        fate.add(starts + HOUR, "meeting_no_show", starts=starts)
        return
    done = fate.add(starts + HOUR, "meeting_completed", starts=starts)
    fate.truth["meeting_completed"] = True
    if rng.random() >= p.opportunity:
        return
    opened = fate.add(done + rng.uniform(DAY, 5 * DAY), "opportunity")
    value = round(rng.uniform(*DEAL_VALUE[lead.size_band]), -2)
    won = rng.random() < p.win
    fate.add(opened + rng.uniform(14 * DAY, 60 * DAY), "deal_won" if won else "deal_lost", value=value)
    fate.truth.update(opportunity=True, deal="won" if won else "lost", deal_value=value if won else 0)


# --- SMS -----------------------------------------------------------------------------------------------------


def _sms(fate: Fate, lead: WorldLead, rng: random.Random, draws: list[float], *, opted_out: bool) -> None:
    p, truth = fate.propensities, fate.truth
    if opted_out:  # Twilio blocks the pair after a STOP and refuses the send
        fate.add(rng.uniform(0.5, 2), "sms_failed", error_code="21610")
        truth.update(bounced="opted_out")
        return
    fate.add(rng.uniform(0.5, 2), "sms_sent")
    if p.dead:
        fate.add(rng.uniform(3, 15), "sms_undelivered", error_code=rng.choice(SMS_ERRORS[lead.phone_kind]))
        truth.update(bounced=lead.phone_kind)
        return
    delivered = fate.add(rng.uniform(2, 10), "sms_delivered")
    truth["delivered"] = True
    if draws[1] < p.reply:
        _reply(fate, lead, rng, after=delivered)
    elif draws[6] < p.stop:
        reply = sms_reply(kind="stop", rng=rng, writer=_writer(lead), when=fate.sent.sent_at)
        fate.add(delivered + rng.uniform(30, 2 * HOUR), "sms_reply", reply=reply)
        truth.update(stop=True)
    if truth.get("reply_kind") == "stop":
        truth["stop"] = True
