import collections
import dataclasses
import datetime as dt
import random

import pytest

from outcomes.tracker import is_machine_click, is_machine_open
from simulation import events
from simulation.fate import Sent, sample
from simulation.propensity import Strategy
from simulation.world import World

SENT_AT = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
UNSUBSCRIBE = "https://rex.example.com/unsubscribe/abc:def"


PLAIN = Strategy("PAS", "professional", "email")


def sent_to(lead, n: int, strategy: Strategy = PLAIN) -> Sent:
    sms = strategy.channel == "sms"
    return Sent(
        message_id=n, lead_id=n, channel=strategy.channel, to=lead.phone if sms else lead.email,
        from_address="+15005550006" if sms else "alex@mail.acme.example",
        subject="" if sms else "Still losing deals after the first call?",
        body="Hello,\n\nWe spoke last year.\n\nBest,\nAlex\n\n-- \nAcme\nUnsubscribe: " + UNSUBSCRIBE,
        framework=strategy.framework, tone=strategy.tone, provider_message_id=f"sbx-{n:032x}",
        rfc_message_id=f"<rex-{n}-abcdef@mail.acme.example>", sent_at=SENT_AT, sending_domain="mail.acme.example",
        custom_args={"rex_message_id": str(n), "rex_outcome_id": str(n + 1000)}, unsubscribe_url=UNSUBSCRIBE,
        status_callback="https://rex.example.com/webhooks/twilio",
    )  # fmt: skip


@pytest.fixture(scope="module")
def world():
    return World.build(seed=31, leads=1500)


@pytest.fixture(scope="module")
def fates(world):
    return [sample(sent_to(lead, n), lead, world.model, rng=random.Random(n)) for n, lead in enumerate(world.leads)]


def _event_time(sent, happening, seed=31):
    event = events.sendgrid_event(sent, happening, seed=seed, index=0)
    return dt.datetime.fromtimestamp(event["timestamp"], tz=dt.UTC), event


def test_rex_tells_machine_opens_and_scanner_clicks_from_people(fates):
    """Judged by REX's own rules on the timestamps the world sends (whole seconds, as SendGrid sends them)."""
    seen = collections.Counter()
    for fate in fates:
        delivered = next((h for h in fate.happenings if h.what == "delivered"), None)
        if delivered is None:
            continue
        delivered_at, _ = _event_time(fate.sent, delivered)
        for happening in fate.happenings:
            if happening.what not in ("open", "machine_open", "click", "scanner_click"):
                continue
            at, event = _event_time(fate.sent, happening)
            judge = is_machine_open if event["event"] == "open" else is_machine_click
            machine = judge(delivered_at=delivered_at, at=at, user_agent=event["useragent"])
            assert machine == (happening.what in ("machine_open", "scanner_click")), (happening, event)
            seen[happening.what] += 1
    assert seen["open"] > 300 and seen["machine_open"] > 100 and seen["scanner_click"] > 50


def test_outcomes_happen_in_a_believable_order(fates):
    for fate in fates:
        whats = [h.what for h in fate.happenings]
        assert whats[0] == "processed"
        if "bounce" in whats or "blocked" in whats:
            assert "delivered" not in whats and "open" not in whats
        if "reply" in whats:
            assert whats.index("delivered") < whats.index("reply")
        for later, earlier in (("meeting_completed", "meeting_booked"), ("deal_won", "opportunity")):
            if later in whats:
                assert whats.index(earlier) < whats.index(later)
    truths = collections.Counter(key for fate in fates for key, value in fate.truth.items() if value)
    delivered = truths["delivered"]
    assert 0.9 < delivered / len(fates) < 1.0
    assert 0.03 < truths["replied"] / delivered < 0.15
    assert truths["meeting"] > 0 and truths["bounced"] > 0 and truths["out_of_office"] > 0


def test_a_better_strategy_never_loses_a_reply_the_worse_one_got(world):
    """Common random numbers: the same lead and the same draws, only the strategy differs."""
    model = world.model
    for n, lead in enumerate(world.leads[:600]):
        best = Strategy(model.preferred_framework[lead.industry_group], model.preferred_tone[lead.seniority_group])
        worse = Strategy(next(f for f in ("PAS", "AIDA", "BAB", "FAB") if f != best.framework), best.tone)
        good = sample(sent_to(lead, n, best), lead, model, rng=random.Random(n))
        bad = sample(sent_to(lead, n, worse), lead, model, rng=random.Random(n))
        if bad.truth.get("replied"):
            assert good.truth.get("replied")


def test_replies_are_varied_and_written_like_email(world):
    kinds, objections, texts = collections.Counter(), collections.Counter(), set()
    keen = _always_replies(world.model)  # every lead replies here, to see the whole library
    for n, lead in enumerate(world.leads[:800]):
        fate = sample(sent_to(lead, n), lead, keen, rng=random.Random(n))
        for happening in fate.happenings:
            if happening.what in ("reply", "out_of_office"):
                reply = happening.detail["reply"]
                kinds[reply.kind] += 1
                objections[reply.objection] += 1
                texts.add(reply.text.split("\n\n")[0] if reply.kind != "out_of_office" else reply.text)
                if reply.kind == "out_of_office":
                    assert reply.headers["Auto-Submitted"] == "auto-replied"
                else:
                    assert "wrote:" in reply.text or "-----Original Message-----" in reply.text
                    assert reply.subject.startswith("Re: ")
    assert set(kinds) == {"positive", "question", "objection", "not_interested", "unsubscribe", "out_of_office"}
    assert set(objections) - {""} == {"price", "timing", "authority", "competitor"}
    assert len(texts) > 60


def _always_replies(model):
    class Keen(type(model)):
        def propensities(self, lead, strategy, **conditions):
            return dataclasses.replace(super().propensities(lead, strategy, **conditions), reply=1.0, block=0.0)

    return Keen(seed=model.seed)


def test_sms_fates_follow_the_number(world):
    model = world.model
    by_kind = collections.defaultdict(collections.Counter)
    for n, lead in enumerate(lead for lead in world.leads if lead.phone):
        fate = sample(sent_to(lead, n, Strategy("BAB", "friendly", "sms")), lead, model, rng=random.Random(n))
        for happening in fate.happenings:
            by_kind[lead.phone_kind][happening.what] += 1
            if happening.what == "sms_undelivered":
                expected = {"landline": {"30006"}, "dead": {"30003", "30005"}}[lead.phone_kind]
                assert happening.detail["error_code"] in expected
    assert by_kind["landline"]["sms_delivered"] == 0 and by_kind["landline"]["sms_undelivered"] > 0
    assert by_kind["mobile"]["sms_delivered"] > 0 and by_kind["mobile"]["sms_undelivered"] == 0
    stopped = sample(
        sent_to(world.leads[0], 1, Strategy("BAB", "friendly", "sms")), world.leads[0], model,
        rng=random.Random(1), opted_out=True,
    )  # fmt: skip
    assert [(h.what, h.detail.get("error_code")) for h in stopped.happenings] == [("sms_failed", "21610")]
