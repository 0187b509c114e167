"""Turning stored CRM events into outcome updates: linking (outcome id, lead id, email), unmatched events and the
sweep, the deal/meeting rules, and do-not-contact."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from agents.models import Lead, Suppression
from outcomes import tracker
from outcomes.models import OutcomeLabel
from tests.factories import LeadFactory, OutcomeLabelFactory, WebhookEventFactory
from webhooks.models import WebhookEvent
from webhooks.services import webhook_event_process, webhook_events_sweep

pytestmark = pytest.mark.django_db

SENT_AT = datetime(2025, 5, 1, 12, tzinfo=UTC)


def crm_event(event: str, n: int = 1, **fields) -> WebhookEvent:
    """A stored generic CRM event, as the receiver stores it."""
    payload = {"event_id": f"crm-{event}-{n}", "event": event, **fields}
    return WebhookEventFactory(
        provider=WebhookEvent.Provider.CRM_GENERIC,
        provider_event_id=payload["event_id"],
        event_type=event,
        raw_body=json.dumps(payload),
    )


def process(event: WebhookEvent) -> WebhookEvent:
    return webhook_event_process(event_id=event.pk)


def test_an_event_links_by_outcome_id_first():
    outcome = OutcomeLabelFactory(sent_at=SENT_AT)
    newer = OutcomeLabelFactory(lead=outcome.lead, organization=outcome.organization, message=None, sent_at=None)

    event = process(crm_event("meeting.booked", outcome_id=outcome.pk, lead_id=outcome.lead_id))

    assert event.state == WebhookEvent.State.PROCESSED
    outcome.refresh_from_db()
    newer.refresh_from_db()
    assert outcome.meeting_booked and not newer.meeting_booked


def test_a_lead_id_links_to_the_lead_s_most_recently_sent_outcome():
    lead = LeadFactory()
    recent = OutcomeLabelFactory(lead=lead, organization=lead.organization, message=None, sent_at=SENT_AT)
    # Created later but sent earlier: "most recent" is by send time.
    OutcomeLabelFactory(lead=lead, organization=lead.organization, message=None, sent_at=SENT_AT - timedelta(days=9))

    event = process(crm_event("meeting.booked", lead_id=lead.pk, occurred_at="2025-05-03T10:00:00Z"))

    assert event.state == WebhookEvent.State.PROCESSED
    assert event.organization_id == lead.organization_id
    recent.refresh_from_db()
    assert recent.meeting_booked_at == datetime(2025, 5, 3, 10, tzinfo=UTC)
    assert (recent.training_label, recent.training_weight) == (OutcomeLabel.Label.POSITIVE, 5.0)
    assert OutcomeLabel.objects.filter(meeting_booked=True).count() == 1


def test_an_email_links_case_insensitively_to_the_most_recent_outcome_across_organizations():
    older = OutcomeLabelFactory(sent_at=SENT_AT - timedelta(days=30))
    recent_lead = LeadFactory(email=older.lead.email.upper())  # another organization, same person
    recent = OutcomeLabelFactory(lead=recent_lead, organization=recent_lead.organization, message=None, sent_at=SENT_AT)

    event = process(crm_event("opportunity.created", email=older.lead.email.title(), deal={"value": "5000"}))

    assert event.state == WebhookEvent.State.PROCESSED
    assert event.organization_id == recent.organization_id
    recent.refresh_from_db()
    older.refresh_from_db()
    assert recent.opportunity_created and recent.deal_value == Decimal("5000.00")
    assert not older.opportunity_created


def test_an_email_known_in_several_organizations_links_to_the_most_recent_message_and_says_so(caplog):
    older = OutcomeLabelFactory(sent_at=SENT_AT - timedelta(days=3))
    newer_lead = LeadFactory(email=older.lead.email)  # another organization
    newer = OutcomeLabelFactory(lead=newer_lead, organization=newer_lead.organization, message=None, sent_at=SENT_AT)

    with caplog.at_level("WARNING", logger="rex.webhooks"):
        event = process(crm_event("meeting.booked", email=older.lead.email))

    assert event.state == WebhookEvent.State.PROCESSED and event.organization_id == newer.organization_id
    assert f"is a lead in 2 organizations; linked to organization {newer.organization_id}" in caplog.text


def test_an_email_known_in_one_organization_logs_nothing(caplog):
    outcome = OutcomeLabelFactory(sent_at=SENT_AT)

    with caplog.at_level("WARNING", logger="rex.webhooks"):
        process(crm_event("meeting.booked", email=outcome.lead.email))

    assert "organizations" not in caplog.text


def test_an_unmatched_event_is_kept_and_matched_once_the_outcome_exists():
    lead = LeadFactory()
    event = crm_event("deal.won", lead_id=lead.pk, deal={"value": 800, "closed_at": "2025-05-11T12:00:00Z"})

    first = process(event)

    assert first.state == WebhookEvent.State.UNMATCHED
    assert f"lead {lead.pk}" in first.error and first.processed_at is None
    due = timezone.now() - timedelta(minutes=5)
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=due, next_attempt_at=due)
    assert webhook_events_sweep() == 1  # the beat sweep retries CRM events too

    outcome = OutcomeLabelFactory(lead=lead, organization=lead.organization, message=None, sent_at=SENT_AT)
    second = process(event)

    assert second.state == WebhookEvent.State.PROCESSED and second.attempts == 2
    outcome.refresh_from_db()
    assert outcome.deal_closed and outcome.deal_value == Decimal("800.00") and outcome.time_to_close_days == 10


def test_an_event_that_names_nothing_rex_knows_says_what_could_not_be_linked():
    event = process(crm_event("deal.lost", outcome_id=987654, email="nobody@example.com"))

    assert event.state == WebhookEvent.State.UNMATCHED
    assert "outcome 987654" in event.error and "nobody@example.com" in event.error


def test_a_lost_deal_after_a_won_one_changes_nothing():
    outcome = OutcomeLabelFactory(sent_at=SENT_AT)
    process(crm_event("deal.won", outcome_id=outcome.pk, deal={"value": "12000", "closed_at": "2025-05-21T12:00:00Z"}))
    outcome.refresh_from_db()
    before = (
        outcome.deal_closed,
        outcome.deal_lost,
        outcome.deal_value,
        outcome.deal_closed_at,
        outcome.training_weight,
    )

    event = process(crm_event("deal.lost", outcome_id=outcome.pk, deal={"value": "1"}))

    assert event.state == WebhookEvent.State.PROCESSED
    outcome.refresh_from_db()
    after = (
        outcome.deal_closed,
        outcome.deal_lost,
        outcome.deal_value,
        outcome.deal_closed_at,
        outcome.training_weight,
    )
    assert after == before == (True, False, Decimal("12000.00"), datetime(2025, 5, 21, 12, tzinfo=UTC), 10.0)


def test_a_lost_deal_alone_is_recorded_without_changing_the_label():
    outcome = OutcomeLabelFactory(sent_at=SENT_AT)

    process(crm_event("deal.lost", outcome_id=outcome.pk))

    outcome.refresh_from_db()
    assert outcome.deal_lost and outcome.opportunity_created and not outcome.deal_closed
    assert outcome.training_label == OutcomeLabel.Label.NEUTRAL


def test_an_opportunity_value_arriving_after_the_win_keeps_the_won_value():
    outcome = OutcomeLabelFactory(sent_at=SENT_AT)
    process(crm_event("deal.won", outcome_id=outcome.pk, deal={"value": "12000"}))

    process(crm_event("opportunity.created", outcome_id=outcome.pk, deal={"value": "9000"}))

    outcome.refresh_from_db()
    assert outcome.deal_value == Decimal("12000.00")


def test_a_completed_meeting_wins_over_an_earlier_no_show():
    outcome = OutcomeLabelFactory(sent_at=SENT_AT)

    process(crm_event("meeting.no_show", outcome_id=outcome.pk))
    outcome.refresh_from_db()
    assert outcome.meeting_no_show and outcome.training_weight == 5.0
    process(crm_event("meeting.completed", outcome_id=outcome.pk))

    outcome.refresh_from_db()
    assert outcome.meeting_completed and not outcome.meeting_no_show
    assert (outcome.training_label, outcome.training_weight) == (OutcomeLabel.Label.POSITIVE, 7.0)


def test_do_not_contact_suppresses_the_email_in_the_lead_s_organization_without_an_outcome():
    elsewhere = LeadFactory()  # the same address, known earlier in another organization: left alone
    lead = LeadFactory(email=elsewhere.email, state=Lead.State.CONTACTED)

    event = process(crm_event("contact.do_not_contact", email=lead.email.upper()))

    assert event.state == WebhookEvent.State.PROCESSED
    assert event.organization_id == lead.organization_id
    suppression = Suppression.objects.get()
    assert (suppression.organization_id, suppression.value, suppression.reason) == (
        lead.organization_id,
        lead.email.lower(),
        Suppression.Reason.CRM_DO_NOT_CONTACT,
    )
    lead.refresh_from_db()
    assert lead.state == Lead.State.SUPPRESSED


def test_do_not_contact_by_outcome_id_suppresses_the_lead_s_email():
    outcome = OutcomeLabelFactory(sent_at=SENT_AT)

    event = process(crm_event("contact.do_not_contact", outcome_id=outcome.pk))

    assert event.state == WebhookEvent.State.PROCESSED
    assert Suppression.objects.filter(organization=outcome.organization, value=outcome.lead.email.lower()).exists()


def test_do_not_contact_for_an_unknown_email_waits_unmatched():
    event = process(crm_event("contact.do_not_contact", email="stranger@example.com"))

    assert event.state == WebhookEvent.State.UNMATCHED
    assert "stranger@example.com" in event.error
    assert not Suppression.objects.exists()


def test_a_stored_event_that_does_not_read_fails_without_retry():
    event = WebhookEventFactory(provider=WebhookEvent.Provider.PIPEDRIVE, raw_body="[1, 2]")

    processed = process(event)

    assert processed.state == WebhookEvent.State.FAILED
    assert processed.processed_at is not None


def test_track_opportunity_sets_the_flag_and_fills_a_missing_value():
    outcome = OutcomeLabelFactory(sent_at=SENT_AT)

    row = tracker.track_opportunity(outcome, at=SENT_AT, value="450.5")

    assert row.opportunity_created and row.deal_value == Decimal("450.50")
    assert (row.training_label, row.training_weight) == (OutcomeLabel.Label.NEUTRAL, 1.0)
