"""A 10,000-event SendGrid burst through the real receiver and a real worker: nothing lost, nothing counted twice."""

import time
from collections import Counter

import pytest

from outcomes.models import OutcomeLabel
from tests.factories import MessageFactory, OutcomeLabelFactory
from tests.webhooks.conftest import body_of
from webhooks.models import WebhookEvent
from webhooks.services import webhook_events_sweep

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

BATCHES = 100
BATCH_SIZE = 100
REPEATS = 10  # events of the previous batch that SendGrid delivers again in each batch
OUTCOMES = 40
LATE_MESSAGES = 10  # sent messages whose outcome row is created only after the burst
LATE_EVERY = 25  # one new event in LATE_EVERY is for a late message
EVENT_TYPES = ("delivered", "open", "click", "processed")
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
TIMEOUT = 120


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


def _wait_until_none(states: list[str]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while (left := WebhookEvent.objects.filter(state__in=states).count()) and time.monotonic() < deadline:
        time.sleep(0.25)
    assert left == 0, f"{left} events still {states} after {TIMEOUT}s"


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
    _wait_until_none([WebhookEvent.State.RECEIVED])

    late_ids = {key for key, event in unique.items() if "rex_outcome_id" not in event}
    unmatched = WebhookEvent.objects.filter(state=WebhookEvent.State.UNMATCHED)
    assert set(unmatched.values_list("provider_event_id", flat=True)) == late_ids
    late_outcomes = [
        OutcomeLabelFactory(message=m, organization=m.organization, lead=m.lead, delivered=False) for m in late
    ]
    assert webhook_events_sweep(older_than_seconds=0, limit=len(late_ids)) == len(late_ids)
    _wait_until_none([WebhookEvent.State.RECEIVED, WebhookEvent.State.UNMATCHED])

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
