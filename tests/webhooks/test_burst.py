"""A 10,000-event SendGrid burst through the real receiver and a real worker: nothing lost, nothing counted twice.
Also the batch task a burst relies on: one task per received batch, and one bad event does not hold up the rest."""

import time
from collections import Counter

import pytest
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from outcomes.models import OutcomeLabel
from tests.factories import MessageFactory, OutcomeLabelFactory
from tests.webhooks.conftest import body_of, sendgrid_event
from webhooks import services, tasks
from webhooks.models import WebhookEvent
from webhooks.services import sendgrid_events_store, webhook_events_sweep
from webhooks.tasks import process_webhook_events

BATCHES = 100
BATCH_SIZE = 100
REPEATS = 10  # events of the previous batch that SendGrid delivers again in each batch
OUTCOMES = 40
LATE_MESSAGES = 10  # sent messages whose outcome row is created only after the burst
LATE_EVERY = 25  # one new event in LATE_EVERY is for a late message
EVENT_TYPES = ("delivered", "open", "click", "processed")
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
TIMEOUT = 200  # for the whole processing, within pytest's 300 s; ~40 s on SQLite on an idle 2-core machine


def _event(n: int, outcomes: list[OutcomeLabel], late: list) -> dict:
    """Event n: its own time (10 minutes apart, so no open looks like a scanner's right after delivery)."""
    event = {
        "email": "maya@brightlane.example.com",
        "timestamp": 1_760_000_000 + n * 600,
        "event": EVENT_TYPES[n % len(EVENT_TYPES)],
        "sg_event_id": f"burst-{n}",
        "useragent": BROWSER,
        "ip": "203.0.113.9",
    }
    if n % LATE_EVERY == 0:  # only REX's message id: no outcome has it yet
        message = late[n // LATE_EVERY // len(EVENT_TYPES) % len(late)]  # every type for every message
        return {**event, "rex_message_id": str(message.pk), "sg_message_id": f"{message.provider_message_id}.f-{n}"}
    outcome = outcomes[n // len(EVENT_TYPES) % len(outcomes)]
    return {**event, "rex_outcome_id": str(outcome.pk), "rex_message_id": str(outcome.message_id)}


def _batches(outcomes: list[OutcomeLabel], late: list) -> list[list[dict]]:
    """Each batch after the first starts with REPEATS events of the previous one, then new events."""
    batches, fresh, n = [], [], 0
    for _ in range(BATCHES):
        repeats = fresh[-REPEATS:]
        fresh = [_event(n + i, outcomes, late) for i in range(BATCH_SIZE - len(repeats))]
        n += len(fresh)
        batches.append(repeats + fresh)
    return batches


def _wait_until_none(states: list[str], deadline: float) -> None:
    while (left := WebhookEvent.objects.filter(state__in=states).count()) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert left == 0, f"{left} events still {states} after {TIMEOUT}s"


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_10000_event_burst_is_processed_with_none_lost(live_worker, post_signed):
    outcomes = [OutcomeLabelFactory(delivered=False) for _ in range(OUTCOMES)]
    late = [MessageFactory() for _ in range(LATE_MESSAGES)]
    batches = _batches(outcomes, late)
    unique = {event["sg_event_id"]: event for batch in batches for event in batch}
    assert sum(map(len, batches)) == BATCHES * BATCH_SIZE == 10_000

    seen: set[str] = set()
    for batch in batches:
        response = post_signed(body_of(batch))
        assert response.status_code == 200
        ids = {event["sg_event_id"] for event in batch}
        assert response.json() == {"received": BATCH_SIZE, "new": len(ids - seen)}
        seen |= ids
    deadline = time.monotonic() + TIMEOUT
    _wait_until_none([WebhookEvent.State.RECEIVED], deadline)

    late_ids = {key for key, event in unique.items() if "rex_outcome_id" not in event}
    unmatched = WebhookEvent.objects.filter(state=WebhookEvent.State.UNMATCHED)
    assert set(unmatched.values_list("provider_event_id", flat=True)) == late_ids
    late_outcomes = [
        OutcomeLabelFactory(message=m, organization=m.organization, lead=m.lead, delivered=False) for m in late
    ]
    unmatched.update(next_attempt_at=timezone.now())  # as if their first backoff (a minute) had passed
    assert webhook_events_sweep(older_than_seconds=0, limit=len(late_ids)) == len(late_ids)
    _wait_until_none([WebhookEvent.State.RECEIVED, WebhookEvent.State.UNMATCHED], deadline)

    # Every unique event stored exactly once, and in its final state.
    stored = Counter(WebhookEvent.objects.values_list("provider_event_id", flat=True))
    assert set(stored) == set(unique) and set(stored.values()) == {1}
    states = dict(WebhookEvent.objects.values_list("provider_event_id", "state"))
    for key, event in unique.items():
        expected = WebhookEvent.State.IGNORED if event["event"] == "processed" else WebhookEvent.State.PROCESSED
        assert states[key] == expected, (key, states[key])

    # Each open and click counted once on its outcome: none lost, none counted twice, none taken for a bot.
    by_message = {str(row.message_id): row for row in (*outcomes, *late_outcomes)}
    expected_counts = Counter((by_message[event["rex_message_id"]].pk, event["event"]) for event in unique.values())
    for row in OutcomeLabel.objects.filter(pk__in=[row.pk for row in by_message.values()]):
        assert (row.open_count, row.click_count) == (expected_counts[row.pk, "open"], expected_counts[row.pk, "click"])
        assert (row.bot_open_count, row.bot_click_count) == (0, 0)
        assert row.delivered and row.opened and row.clicked


# --- The batch task -------------------------------------------------------------------------------


def _stored(outcome, *types: str) -> list[int]:
    events = [sendgrid_event(outcome, event_type, n, useragent=BROWSER) for n, event_type in enumerate(types)]
    return sendgrid_events_store(events=events, headers={}, signature=WebhookEvent.Signature.VALID)


@pytest.mark.django_db
def test_the_receiver_enqueues_one_task_per_batch_with_only_the_new_events(
    post_signed, outcome, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(process_webhook_events, "delay", lambda event_ids: sent.append(event_ids))
    first = [sendgrid_event(outcome, "delivered", 1), sendgrid_event(outcome, "open", 2)]

    with django_capture_on_commit_callbacks(execute=True):
        post_signed(body_of(first))
        post_signed(body_of([*first, sendgrid_event(outcome, "click", 3)]))  # SendGrid retries, plus a new event
        post_signed(body_of(first))  # nothing new: nothing to enqueue

    ids = dict(WebhookEvent.objects.values_list("provider_event_id", "id"))
    assert sent == [[ids["evt-delivered-1"], ids["evt-open-2"]], [ids["evt-click-3"]]]


@pytest.mark.django_db
def test_a_failing_event_does_not_stop_the_rest_of_its_batch(outcome, monkeypatch):
    ids = _stored(outcome, "delivered", "open", "click")

    def broken_open(outcome, payload, at):
        raise KeyError("a bug in one handler")

    monkeypatch.setitem(services.SENDGRID_HANDLERS, "open", broken_open)
    process_webhook_events(ids)

    states = dict(WebhookEvent.objects.values_list("event_type", "state"))
    assert states == {"delivered": "processed", "open": "received", "click": "processed"}  # open: left for the sweep
    broken = WebhookEvent.objects.get(event_type="open")
    assert broken.attempts == 1 and "KeyError" in broken.error and broken.next_attempt_at is not None
    outcome.refresh_from_db()
    assert outcome.clicked and outcome.click_count == 1


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_transient_error_retries_the_batch_and_a_retry_counts_nothing_twice(outcome, monkeypatch, error):
    ids = _stored(outcome, "open", "click", "open")
    real = tasks.webhook_event_process
    calls = []

    def flaky(*, event_id):
        calls.append(event_id)
        if len(calls) == 1:
            raise error("connection lost")
        return real(event_id=event_id)

    monkeypatch.setattr(tasks, "webhook_event_process", flaky)
    with pytest.raises(error):  # in a worker: autoretry with backoff (called directly, the error surfaces)
        process_webhook_events(ids)
    assert calls == ids  # the others were not held up
    process_webhook_events(ids)  # the retry

    outcome.refresh_from_db()
    assert (outcome.open_count, outcome.click_count) == (2, 1)
    assert set(WebhookEvent.objects.values_list("state", flat=True)) == {WebhookEvent.State.PROCESSED}
    assert WebhookEvent.objects.get(pk=ids[1]).attempts == 1  # done on the first pass, untouched by the retry
    assert process_webhook_events.autoretry_for == (OperationalError, InterfaceError)
