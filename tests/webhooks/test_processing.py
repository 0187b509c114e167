import json
from datetime import timedelta
from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from agents.models import Suppression
from outcomes.models import OutcomeLabel
from tests.factories import MessageFactory, OutcomeLabelFactory, SuppressionFactory, WebhookEventFactory
from tests.webhooks.conftest import sendgrid_event
from webhooks.models import WebhookEvent
from webhooks.services import (
    MAX_PROCESSING_ERRORS,
    retry_delay,
    sendgrid_events_parse,
    sendgrid_events_store,
    webhook_event_process,
    webhook_events_sweep,
)
from webhooks.tasks import process_webhook_event, sweep_webhook_events

pytestmark = pytest.mark.django_db


def stored(payload: dict, **fields) -> WebhookEvent:
    return WebhookEventFactory(
        provider_event_id=payload["sg_event_id"], event_type=payload["event"], raw_body=json.dumps(payload), **fields
    )


def age(event: WebhookEvent, seconds: int) -> None:
    """As if the event arrived ``seconds`` ago and its next try (if any) is due now."""
    now = timezone.now()
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=now - timedelta(seconds=seconds))
    WebhookEvent.objects.filter(pk=event.pk, next_attempt_at__isnull=False).update(next_attempt_at=now)


def test_an_unmatched_event_is_kept_then_matched_after_the_outcome_appears(django_capture_on_commit_callbacks):
    message = MessageFactory()
    payload = {**sendgrid_event(None, "delivered", 1), "rex_message_id": str(message.pk), "rex_outcome_id": "999999"}
    event = stored(payload)

    process_webhook_event(event.pk)
    event.refresh_from_db()
    assert event.state == WebhookEvent.State.UNMATCHED
    assert event.attempts == 1 and event.processed_at is None

    outcome = OutcomeLabelFactory(message=message, organization=message.organization, delivered=False)
    age(event, 120)
    with django_capture_on_commit_callbacks() as callbacks:
        assert sweep_webhook_events() == 1
    assert len(callbacks) == 1
    process_webhook_event(event.pk)  # what the enqueued task runs

    event.refresh_from_db()
    outcome.refresh_from_db()
    assert event.state == WebhookEvent.State.PROCESSED
    assert event.organization_id == outcome.organization_id
    assert outcome.delivered


def test_an_event_is_matched_by_the_x_message_id_prefix_without_custom_args():
    outcome = OutcomeLabelFactory(delivered=False)
    payload = sendgrid_event(outcome, "delivered", 1)  # custom_args are empty on this message
    assert "rex_outcome_id" not in payload

    event = webhook_event_process(event_id=stored(payload).pk)

    assert event.state == WebhookEvent.State.PROCESSED
    outcome.refresh_from_db()
    assert outcome.delivered


def test_a_processed_event_returns_at_once(outcome):
    event = stored(sendgrid_event(outcome, "open", 1, useragent="Mozilla/5.0"))

    webhook_event_process(event_id=event.pk)
    webhook_event_process(event_id=event.pk)

    event.refresh_from_db()
    outcome.refresh_from_db()
    assert (event.attempts, outcome.open_count) == (1, 1)


def test_group_resubscribe_lifts_the_unsubscribe(outcome):
    address = outcome.message.to_address
    SuppressionFactory(organization=outcome.organization, value=address, reason=Suppression.Reason.UNSUBSCRIBE)

    event = webhook_event_process(event_id=stored(sendgrid_event(outcome, "group_resubscribe", 1, asm_group_id=4)).pk)

    assert event.state == WebhookEvent.State.PROCESSED
    assert not Suppression.objects.filter(organization=outcome.organization, value=address).exists()


@pytest.mark.parametrize(
    "reason", [Suppression.Reason.HARD_BOUNCE, Suppression.Reason.SPAM_REPORT, Suppression.Reason.CRM_DO_NOT_CONTACT]
)
def test_group_resubscribe_never_lifts_a_bounce_complaint_or_crm_block(outcome, reason):
    address = outcome.message.to_address
    SuppressionFactory(organization=outcome.organization, value=address, reason=reason)

    event = webhook_event_process(event_id=stored(sendgrid_event(outcome, "group_resubscribe", 1, asm_group_id=4)).pk)

    assert event.state == WebhookEvent.State.PROCESSED
    assert Suppression.objects.filter(organization=outcome.organization, value=address, reason=reason).exists()


@pytest.mark.parametrize(
    ("event_type", "fields", "bounce_type"),
    [
        ("dropped", {"reason": "Invalid SMTPAPI header"}, OutcomeLabel.BounceType.BLOCKED),
        ("dropped", {"reason": "Bounced Address"}, OutcomeLabel.BounceType.HARD),
        ("dropped", {"reason": "Invalid"}, OutcomeLabel.BounceType.HARD),
        ("bounce", {"type": "blocked", "reason": "policy"}, OutcomeLabel.BounceType.BLOCKED),
        ("bounce", {"type": "bounce", "reason": "no user"}, OutcomeLabel.BounceType.HARD),
        ("deferred", {"response": "421"}, OutcomeLabel.BounceType.SOFT),
    ],
)
def test_bounce_types(outcome, event_type, fields, bounce_type):
    webhook_event_process(event_id=stored(sendgrid_event(outcome, event_type, 1, **fields)).pk)

    outcome.refresh_from_db()
    assert outcome.bounce_type == bounce_type
    assert outcome.bounced is (event_type != "deferred")
    assert outcome.bounce_reason == fields.get("reason", fields.get("response"))


def test_an_unknown_event_type_is_ignored_with_the_reason(outcome):
    event = webhook_event_process(event_id=stored(sendgrid_event(outcome, "teleported", 1)).pk)

    assert event.state == WebhookEvent.State.IGNORED
    assert "teleported" in event.error


def test_the_sweep_takes_only_old_unprocessed_events_that_are_due(django_capture_on_commit_callbacks):
    now = timezone.now()
    old_received = WebhookEventFactory()
    old_unmatched = WebhookEventFactory(state=WebhookEvent.State.UNMATCHED, attempts=3, next_attempt_at=now)
    not_due = WebhookEventFactory(state=WebhookEvent.State.UNMATCHED, attempts=3)
    week_old = WebhookEventFactory(state=WebhookEvent.State.UNMATCHED, attempts=30)
    done = WebhookEventFactory(state=WebhookEvent.State.PROCESSED)
    fresh = WebhookEventFactory()
    for event in (old_received, old_unmatched, not_due, done):
        age(event, 600)
    WebhookEvent.objects.filter(pk=not_due.pk).update(next_attempt_at=now + timedelta(minutes=8))
    WebhookEvent.objects.filter(pk=week_old.pk).update(received_at=now - timedelta(days=8))

    with (
        mock.patch("webhooks.tasks.process_webhook_events.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert webhook_events_sweep(limit=500) == 2
    # One task for the batch, oldest attempts first.
    delay.assert_called_once_with([old_received.pk, old_unmatched.pk])
    assert fresh.state == WebhookEvent.State.RECEIVED  # too recent: its own enqueue is probably in flight
    assert WebhookEvent.objects.get(pk=week_old.pk).state == WebhookEvent.State.UNMATCHED  # kept, not retried

    with django_capture_on_commit_callbacks():
        assert webhook_events_sweep(limit=1) == 1


def test_store_ignores_repeats_within_and_across_batches():
    event = {"sg_event_id": "e1", "event": "delivered"}
    body = json.dumps([event, event])

    events = sendgrid_events_parse(raw_body=body)
    first = sendgrid_events_store(events=events, headers={}, signature=WebhookEvent.Signature.VALID)
    second = sendgrid_events_store(events=events, headers={}, signature=WebhookEvent.Signature.VALID)

    assert len(first) == 1 and second == []
    assert WebhookEvent.objects.count() == 1


def test_the_task_retries_only_transient_database_errors():
    assert process_webhook_event.autoretry_for == (OperationalError, InterfaceError)


def test_unmatched_retries_back_off():
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [60, 120, 240, 480]
    assert retry_delay(30).total_seconds() == 6 * 3600


def test_an_unmatched_event_is_due_again_after_its_backoff():
    event = stored({**sendgrid_event(None, "delivered", 1), "rex_message_id": "424242"})

    before = timezone.now()
    event = webhook_event_process(event_id=event.pk)

    assert event.state == WebhookEvent.State.UNMATCHED
    assert before + timedelta(seconds=59) <= event.next_attempt_at <= timezone.now() + timedelta(seconds=61)


def test_an_event_not_sent_by_rex_is_ignored_not_retried():
    payload = sendgrid_event(None, "delivered", 1)  # no rex_* custom args, unknown sg_message_id

    event = webhook_event_process(event_id=stored(payload).pk)

    assert event.state == WebhookEvent.State.IGNORED
    assert "Not sent by REX" in event.error


def test_a_poison_event_is_retried_with_backoff_then_failed_with_its_error(outcome):
    event = stored(sendgrid_event(outcome, "delivered", 1))
    boom = mock.patch.dict(
        "webhooks.services.PROCESSORS", {WebhookEvent.Provider.SENDGRID: mock.Mock(side_effect=OverflowError("date"))}
    )
    with boom:
        for attempt in range(1, MAX_PROCESSING_ERRORS):
            event = webhook_event_process(event_id=event.pk)
            # The attempt is counted although the processing rolled back.
            assert (event.state, event.attempts) == (WebhookEvent.State.RECEIVED, attempt)
            assert "OverflowError: date" in event.error and event.next_attempt_at is not None
        event = webhook_event_process(event_id=event.pk)

    event.refresh_from_db()
    assert event.state == WebhookEvent.State.FAILED
    assert event.attempts == MAX_PROCESSING_ERRORS and "gave up" in event.error


def test_a_failing_processor_leaves_no_partial_write(outcome):
    def half_done(event):
        OutcomeLabel.objects.filter(pk=outcome.pk).update(delivered=True)
        raise RuntimeError("after a write")

    event = stored(sendgrid_event(outcome, "delivered", 1))
    with mock.patch.dict("webhooks.services.PROCESSORS", {WebhookEvent.Provider.SENDGRID: half_done}):
        event = webhook_event_process(event_id=event.pk)

    outcome.refresh_from_db()
    assert event.attempts == 1 and "RuntimeError" in event.error
    assert outcome.delivered is False


def test_an_apple_privacy_proxy_open_flagged_by_sendgrid_is_not_engagement(outcome):
    webhook_event_process(event_id=stored(sendgrid_event(outcome, "delivered", 1)).pk)
    machine_open = sendgrid_event(outcome, "open", 5, useragent="Mozilla/5.0", sg_machine_open=True)  # 40 min later

    event = webhook_event_process(event_id=stored(machine_open).pk)

    outcome.refresh_from_db()
    assert event.state == WebhookEvent.State.PROCESSED
    assert (outcome.bot_open_count, outcome.open_count, outcome.opened) == (1, 0, False)
