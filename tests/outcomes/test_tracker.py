"""The outcome tracker: idempotent, order-independent updates from webhooks, label hygiene, side effects."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from agents.models import Lead, Message, Suppression
from outcomes import tracker
from outcomes.models import OutcomeLabel
from tests.factories import MessageFactory, OutcomeLabelFactory

pytestmark = pytest.mark.django_db

HUMAN_UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"


@pytest.fixture
def t0():
    return timezone.now().replace(microsecond=0) - timedelta(days=1)


@pytest.fixture
def outcome(t0):
    row = OutcomeLabelFactory(delivered=False, sent_at=t0 - timedelta(minutes=1))
    Lead.objects.filter(pk=row.lead_id).update(state=Lead.State.CONTACTED)
    Message.objects.filter(pk=row.message_id).update(status=Message.Status.SENT)
    return row


def _lead(row: OutcomeLabel) -> Lead:
    return Lead.objects.get(pk=row.lead_id)


# --- Delivery -------------------------------------------------------------------------------------


def test_delivered_keeps_the_earliest_time_and_accepts_an_instance_or_id(outcome, t0):
    row = tracker.track_delivered(outcome, at=t0 + timedelta(seconds=30))
    row = tracker.track_delivered(outcome.pk, at=t0)
    row = tracker.track_delivered(outcome.pk, at=t0 + timedelta(hours=1))
    row.refresh_from_db()
    assert row.delivered and row.delivered_at == t0
    assert (row.training_label, row.training_weight) == ("neutral", 1.0)


def test_hard_bounce_suppresses_the_address_and_labels_negative(outcome, t0):
    row = tracker.track_bounced(outcome.pk, at=t0, bounce_type="hard", reason="550 5.1.1 user unknown")
    assert row.bounced and row.bounce_type == "hard" and row.bounce_reason == "550 5.1.1 user unknown"
    assert (row.training_label, row.training_weight) == ("negative", 0.5)
    suppression = Suppression.objects.get(organization=row.organization, kind="email")
    assert suppression.value == row.message.to_address.lower()
    assert suppression.reason == Suppression.Reason.HARD_BOUNCE
    assert _lead(row).state == Lead.State.SUPPRESSED


def test_soft_bounce_does_not_suppress_and_never_downgrades_a_hard_one(outcome, t0):
    tracker.track_bounced(outcome.pk, at=t0, bounce_type="soft", reason="mailbox full")
    assert not Suppression.objects.exists()
    row = tracker.track_bounced(outcome.pk, at=t0, bounce_type="hard", reason="user unknown")
    row = tracker.track_bounced(outcome.pk, at=t0, bounce_type="soft", reason="mailbox full")
    assert (row.bounce_type, row.bounce_reason) == ("hard", "user unknown")


def test_unknown_bounce_type_is_refused(outcome, t0):
    with pytest.raises(ValueError):
        tracker.track_bounced(outcome.pk, at=t0, bounce_type="weird", reason="")


def test_deferred_is_noted_but_not_a_bounce(outcome, t0):
    row = tracker.track_deferred(outcome.pk, at=t0, reason="421 try again later")
    assert not row.bounced and row.bounce_type == "soft" and row.bounce_reason == "421 try again later"
    assert (row.training_label, row.training_weight) == ("neutral", 1.0)
    row = tracker.track_delivered(outcome.pk, at=t0 + timedelta(minutes=5))
    assert row.delivered and not row.bounced


# --- Engagement and hygiene -------------------------------------------------------------------------


def test_click_before_delivered_implies_delivered(outcome, t0):
    row = tracker.track_clicked(outcome.pk, at=t0 + timedelta(minutes=10), url="https://x.example", user_agent=HUMAN_UA)
    assert row.delivered and row.delivered_at == t0 + timedelta(minutes=10)
    assert row.clicked and row.click_count == 1 and row.opened and row.open_count == 0
    row = tracker.track_delivered(outcome.pk, at=t0)
    assert row.delivered_at == t0
    assert row.first_clicked_at == t0 + timedelta(minutes=10)
    assert _lead(row).state == Lead.State.ENGAGED


def test_open_keeps_earliest_time_and_counts_grow(outcome, t0):
    tracker.track_delivered(outcome.pk, at=t0)
    tracker.track_opened(outcome.pk, at=t0 + timedelta(hours=2), user_agent=HUMAN_UA)
    row = tracker.track_opened(outcome.pk, at=t0 + timedelta(hours=1), user_agent=HUMAN_UA)
    assert row.opened and row.open_count == 2 and row.bot_open_count == 0
    assert row.first_opened_at == t0 + timedelta(hours=1)
    assert _lead(row).state == Lead.State.ENGAGED


@pytest.mark.parametrize(
    "user_agent",
    ["Mozilla/5.0 (compatible; Barracuda Sentinel)", "Mimecast URL protect", "Proofpoint-URL-Defense", "Slackbot 1.0"],
)
def test_scanner_user_agent_open_and_click_are_not_engagement(outcome, t0, user_agent):
    tracker.track_delivered(outcome.pk, at=t0)
    tracker.track_opened(outcome.pk, at=t0 + timedelta(hours=1), user_agent=user_agent)
    row = tracker.track_clicked(outcome.pk, at=t0 + timedelta(hours=1), user_agent=user_agent)
    assert (row.bot_open_count, row.bot_click_count) == (1, 1)
    assert not row.opened and not row.clicked and row.open_count == row.click_count == 0
    assert row.first_opened_at is None and row.first_clicked_at is None
    assert _lead(row).state == Lead.State.CONTACTED


def test_a_provider_flagged_machine_open_is_not_engagement_even_hours_later(outcome, t0):
    tracker.track_delivered(outcome.pk, at=t0)
    row = tracker.track_opened(outcome.pk, at=t0 + timedelta(minutes=40), user_agent="Mozilla/5.0", machine=True)
    assert (row.bot_open_count, row.open_count, row.opened) == (1, 0, False)
    assert _lead(row).state == Lead.State.CONTACTED


@pytest.mark.parametrize(
    ("user_agent", "machine"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", True),
        ("Twitterbot/1.0", True),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True),
        ("Mozilla/5.0 (Linux; Android 12; CUBOT X50) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36", False),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15", False),
    ],
)
def test_crawlers_named_bot_are_machines_but_a_phone_brand_is_not(t0, user_agent, machine):
    later = t0 + timedelta(hours=1)
    assert tracker.is_machine_click(delivered_at=t0, at=later, user_agent=user_agent) is machine


def test_open_and_click_within_seconds_of_delivery_are_machine(outcome, t0):
    tracker.track_delivered(outcome.pk, at=t0)
    tracker.track_opened(outcome.pk, at=t0 + timedelta(seconds=2), user_agent=HUMAN_UA)
    row = tracker.track_clicked(outcome.pk, at=t0 + timedelta(seconds=tracker.MACHINE_SECONDS), user_agent=HUMAN_UA)
    assert (row.bot_open_count, row.bot_click_count, row.open_count, row.click_count) == (1, 1, 0, 0)
    row = tracker.track_opened(outcome.pk, at=t0 + timedelta(seconds=tracker.MACHINE_SECONDS + 1), user_agent=HUMAN_UA)
    assert row.opened and row.open_count == 1


@pytest.mark.parametrize(
    ("seconds", "user_agent", "machine"),
    [
        (3, HUMAN_UA, True),
        (60, HUMAN_UA, False),
        (60, "Symantec Email Security", True),
        (60, "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", False),
        (None, HUMAN_UA, False),
    ],
)
def test_is_machine_open_and_click(t0, seconds, user_agent, machine):
    at = t0 + timedelta(seconds=seconds or 0)
    delivered_at = t0 if seconds is not None else None
    assert tracker.is_machine_open(delivered_at=delivered_at, at=at, user_agent=user_agent) is machine
    assert tracker.is_machine_click(delivered_at=delivered_at, at=at, user_agent=user_agent) is machine


# --- Reply ----------------------------------------------------------------------------------------


def test_reply_records_sentiment_moves_the_lead_and_stops_queued_messages(outcome, t0):
    queued = MessageFactory(organization=outcome.organization, lead=outcome.lead, step=2)
    assert queued.status == Message.Status.QUEUED
    sentiment = {"sentiment_label": "positive", "reply_sentiment_score": 0.8, "interest_signal": True, "extra": 1}
    row = tracker.track_reply(outcome.pk, at=t0 + timedelta(hours=3), text="Sounds good, call me", sentiment=sentiment)
    assert row.replied and row.replied_at == t0 + timedelta(hours=3) and row.reply_text == "Sounds good, call me"
    assert row.delivered and row.delivered_at == t0 + timedelta(hours=3)
    assert (row.sentiment_label, row.reply_sentiment_score, row.interest_signal) == ("positive", 0.8, True)
    assert (row.training_label, row.training_weight) == ("positive", 3.0)
    queued.refresh_from_db()
    assert queued.status == Message.Status.CANCELLED
    assert _lead(row).state == Lead.State.REPLIED


def test_reply_keeps_the_first_reply_and_a_reclassification_of_it(outcome, t0):
    first = t0 + timedelta(hours=1)
    tracker.track_reply(outcome.pk, at=first, text="Not now, budget is frozen", sentiment=None)
    row = tracker.track_reply(
        outcome.pk, at=first, text="Not now, budget is frozen", sentiment={"objection_type": "price"}
    )
    assert (row.training_label, row.training_weight) == ("negative", 2.0)
    row = tracker.track_reply(
        outcome.pk, at=first + timedelta(days=1), text="ping?", sentiment={"sentiment_label": "neutral"}
    )
    assert row.reply_text == "Not now, budget is frozen" and row.replied_at == first and row.sentiment_label == ""


def test_reply_with_invalid_sentiment_is_refused(outcome, t0):
    with pytest.raises(ValueError):
        tracker.track_reply(outcome.pk, at=t0, text="hi", sentiment={"reply_sentiment_score": 3})
    with pytest.raises(ValueError):
        tracker.track_reply(outcome.pk, at=t0, text="hi", sentiment={"sentiment_label": "ecstatic"})


# --- Meeting and deal -----------------------------------------------------------------------------


def test_meeting_booked_then_completed(outcome, t0):
    row = tracker.track_meeting(outcome.pk, at=t0 + timedelta(days=1), state="booked")
    assert row.meeting_booked and row.meeting_booked_at == t0 + timedelta(days=1)
    assert (row.training_label, row.training_weight) == ("positive", 5.0)
    assert _lead(row).state == Lead.State.MEETING
    row = tracker.track_meeting(outcome.pk, at=t0 + timedelta(days=3), state="completed")
    assert row.meeting_completed and not row.meeting_no_show
    assert (row.training_label, row.training_weight) == ("positive", 7.0)


def test_completed_meeting_wins_over_no_show_in_any_order(outcome, t0):
    row = tracker.track_meeting(outcome.pk, at=t0, state="no_show")
    assert row.meeting_booked and row.meeting_no_show
    row = tracker.track_meeting(outcome.pk, at=t0 + timedelta(days=2), state="completed")
    assert row.meeting_completed and not row.meeting_no_show
    row = tracker.track_meeting(outcome.pk, at=t0, state="no_show")
    assert not row.meeting_no_show
    with pytest.raises(ValueError):
        tracker.track_meeting(outcome.pk, at=t0, state="maybe")


def test_deal_weeks_later_updates_the_old_row(t0):
    sent_at = t0 - timedelta(weeks=6)
    old = OutcomeLabelFactory(sent_at=sent_at, training_label="neutral", training_weight=1.0)
    Lead.objects.filter(pk=old.lead_id).update(state=Lead.State.MEETING)
    row = tracker.track_deal(old.pk, at=t0, won=True, value="15000")
    assert row.deal_closed and row.opportunity_created and row.deal_closed_at == t0
    assert row.deal_value == Decimal("15000.00") and row.time_to_close_days == 42
    assert (row.training_label, row.training_weight) == ("positive", 10.0)
    assert _lead(row).state == Lead.State.WON
    row = tracker.track_deal(old.pk, at=t0 + timedelta(days=1), won=True)
    assert row.deal_closed_at == t0 and row.time_to_close_days == 42 and row.deal_value == Decimal("15000.00")


def test_lost_deal_never_overrides_a_won_one(outcome, t0):
    row = tracker.track_deal(outcome.pk, at=t0, won=False)
    assert row.deal_lost and not row.deal_closed and row.time_to_close_days is None
    assert _lead(row).state == Lead.State.LOST
    row = tracker.track_deal(outcome.pk, at=t0 + timedelta(days=1), won=True, value=900)
    assert row.deal_closed and not row.deal_lost
    row = tracker.track_deal(outcome.pk, at=t0 + timedelta(days=2), won=False, value=500)
    assert row.deal_closed and not row.deal_lost
    assert row.deal_value == Decimal("900.00")  # a late "lost" does not rewrite the won deal's value


# --- Opt-outs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("track", "flag", "reason"),
    [
        (tracker.track_unsubscribed, "unsubscribed", Suppression.Reason.UNSUBSCRIBE),
        (tracker.track_spam_report, "spam_reported", Suppression.Reason.SPAM_REPORT),
    ],
)
def test_unsubscribe_and_spam_report_suppress_the_address(outcome, t0, track, flag, reason):
    queued = MessageFactory(organization=outcome.organization, lead=outcome.lead, step=2)
    row = track(outcome.pk, at=t0)
    row = track(outcome.pk, at=t0)  # a replay is harmless
    assert getattr(row, flag)
    assert (row.training_label, row.training_weight) == ("negative", 0.5)
    suppression = Suppression.objects.get(organization=row.organization)
    assert (suppression.value, suppression.reason) == (row.message.to_address.lower(), reason)
    queued.refresh_from_db()
    assert queued.status == Message.Status.CANCELLED
    assert _lead(row).state == Lead.State.SUPPRESSED


def test_suppression_falls_back_to_the_lead_email_without_a_message(t0):
    row = OutcomeLabelFactory(message=None)
    tracker.track_unsubscribed(row.pk, at=t0)
    assert Suppression.objects.get(organization=row.organization).value == row.lead.email.lower()
