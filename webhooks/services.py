"""Webhook services: store the raw events first, then turn each into outcome updates (in a Celery task)."""

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from agents.compliance import unsuppress
from agents.models import Suppression
from outcomes import tracker
from outcomes.models import OutcomeLabel
from webhooks.models import WebhookEvent

logger = logging.getLogger("rex.webhooks")

DROPPED_HEADERS = {"authorization", "cookie"}
FINAL_STATES = (WebhookEvent.State.PROCESSED, WebhookEvent.State.IGNORED, WebhookEvent.State.FAILED)
# An event that never matches (e.g. mail sent by another system on the same SendGrid account) stays stored as
# unmatched, but the sweep stops re-enqueuing it after this many attempts so it cannot starve newer ones.
SWEEP_MAX_ATTEMPTS = 30


class MalformedPayload(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# --- Store ----------------------------------------------------------------------------------------


def _required_str(event: dict, key: str, index: int) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedPayload(f"Event {index} has no '{key}'.")
    return value


def sendgrid_events_parse(*, raw_body: str) -> list[dict]:
    """The Event Webhook's JSON array; MalformedPayload says why it is not one."""
    try:
        events = json.loads(raw_body)
    except ValueError as exc:
        raise MalformedPayload(f"Body is not JSON: {exc}") from None
    if not isinstance(events, list):
        raise MalformedPayload("Body is not a JSON array of events.")
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise MalformedPayload(f"Event {index} is not an object.")
        if len(_required_str(event, "sg_event_id", index)) > 255:
            raise MalformedPayload(f"Event {index} has an over-long 'sg_event_id'.")
        _required_str(event, "event", index)
    return events


def sendgrid_events_store(*, raw_body: str, headers: dict, signature: str) -> list[int]:
    """One WebhookEvent per event (a repeat of an sg_event_id is ignored). Returns the ids of the new rows."""
    events = sendgrid_events_parse(raw_body=raw_body)
    kept_headers = {name: value for name, value in headers.items() if name.lower() not in DROPPED_HEADERS}
    provider = WebhookEvent.Provider.SENDGRID
    rows = {
        event["sg_event_id"]: WebhookEvent(
            provider=provider,
            provider_event_id=event["sg_event_id"],
            event_type=event["event"][:64],
            raw_body=json.dumps(event),
            headers=kept_headers,
            signature=signature,
        )
        for event in events
    }
    existing = set(
        WebhookEvent.objects.filter(provider=provider, provider_event_id__in=rows).values_list(
            "provider_event_id", flat=True
        )
    )
    WebhookEvent.objects.bulk_create(rows.values(), ignore_conflicts=True)
    new = WebhookEvent.objects.filter(
        provider=provider, provider_event_id__in=set(rows) - existing, state=WebhookEvent.State.RECEIVED
    )
    return list(new.order_by("id").values_list("id", flat=True))


# --- Match ----------------------------------------------------------------------------------------


def _int_arg(payload: dict, key: str) -> int | None:
    value = str(payload.get(key) or "")
    return int(value) if value.isdigit() else None


def _sendgrid_outcome(payload: dict) -> OutcomeLabel | None:
    """By REX's custom args (outcome, then message), else by the X-Message-Id prefix of sg_message_id."""
    outcomes = OutcomeLabel.objects.select_related("organization", "message", "lead")
    outcome_id = _int_arg(payload, "rex_outcome_id")
    if outcome_id is not None and (outcome := outcomes.filter(pk=outcome_id).first()):
        return outcome
    message_id = _int_arg(payload, "rex_message_id")
    if message_id is not None and (outcome := outcomes.filter(message_id=message_id).first()):
        return outcome
    provider_message_id = str(payload.get("sg_message_id") or "").split(".", 1)[0]
    if provider_message_id:
        return outcomes.filter(message__provider_message_id=provider_message_id).first()
    return None


# --- Process --------------------------------------------------------------------------------------


def _event_time(payload: dict, event: WebhookEvent) -> datetime:
    try:
        return datetime.fromtimestamp(int(payload["timestamp"]), tz=UTC)
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return event.received_at


def _resubscribe(outcome: OutcomeLabel, payload: dict, at: datetime) -> None:
    message = outcome.message
    address = payload.get("email") or (message.to_address if message else "") or outcome.lead.email
    unsuppress(organization=outcome.organization, kind=Suppression.Kind.EMAIL, value=address)


def _bounce(bounce_type: str) -> Callable[[OutcomeLabel, dict, datetime], None]:
    def apply(outcome: OutcomeLabel, payload: dict, at: datetime) -> None:
        kind = bounce_type or (
            OutcomeLabel.BounceType.BLOCKED if payload.get("type") == "blocked" else OutcomeLabel.BounceType.HARD
        )
        reason = str(payload.get("reason") or payload.get("status") or payload.get("event"))
        tracker.track_bounced(outcome, at=at, bounce_type=kind, reason=reason)

    return apply


SENDGRID_HANDLERS: dict[str, Callable[[OutcomeLabel, dict, datetime], None]] = {
    "delivered": lambda outcome, payload, at: tracker.track_delivered(outcome, at=at),
    # Dropped: SendGrid will not deliver (its own suppression list, invalid address...): a block with the reason.
    "dropped": _bounce(OutcomeLabel.BounceType.BLOCKED),
    "bounce": _bounce(""),
    "deferred": lambda outcome, payload, at: tracker.track_deferred(
        outcome, at=at, reason=str(payload.get("response") or payload.get("reason") or "")
    ),
    "open": lambda outcome, payload, at: tracker.track_opened(
        outcome, at=at, user_agent=str(payload.get("useragent") or ""), ip=str(payload.get("ip") or "")
    ),
    "click": lambda outcome, payload, at: tracker.track_clicked(
        outcome, at=at, url=str(payload.get("url") or ""), user_agent=str(payload.get("useragent") or "")
    ),
    "spamreport": lambda outcome, payload, at: tracker.track_spam_report(outcome, at=at),
    "unsubscribe": lambda outcome, payload, at: tracker.track_unsubscribed(outcome, at=at),
    "group_unsubscribe": lambda outcome, payload, at: tracker.track_unsubscribed(outcome, at=at),
    "group_resubscribe": _resubscribe,
}
# Accepted by SendGrid, nothing to record on the outcome.
SENDGRID_NO_OP = {"processed"}


def _sendgrid_process(event: WebhookEvent) -> None:
    payload = json.loads(event.raw_body)
    outcome = _sendgrid_outcome(payload)
    if outcome is None:
        # Kept, not dropped: the sweep retries it once the message or outcome exists.
        event.state = WebhookEvent.State.UNMATCHED
        event.error = "No outcome matches this event yet."
        return
    event.organization = outcome.organization
    handler = SENDGRID_HANDLERS.get(event.event_type)
    if handler is None:
        event.state = WebhookEvent.State.IGNORED
        event.error = "" if event.event_type in SENDGRID_NO_OP else f"Unknown event type '{event.event_type}'."
        return
    try:
        handler(outcome, payload, _event_time(payload, event))
    except (ValueError, ValidationError) as exc:  # bad data does not get better on retry
        event.state = WebhookEvent.State.FAILED
        event.error = str(exc)
        return
    event.state = WebhookEvent.State.PROCESSED
    event.error = ""


PROCESSORS: dict[str, Callable[[WebhookEvent], None]] = {WebhookEvent.Provider.SENDGRID: _sendgrid_process}


def webhook_event_process(*, event_id: int) -> WebhookEvent | None:
    """Apply one stored event to its outcome (idempotent: an event in a final state returns at once)."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            logger.warning("webhook event %s no longer exists", event_id)
            return None
        if event.state in FINAL_STATES:
            return event
        processor = PROCESSORS.get(event.provider)
        event.attempts = min(event.attempts + 1, 32767)
        if processor is None:
            event.state = WebhookEvent.State.FAILED
            event.error = f"No processor for provider '{event.provider}'."
        else:
            processor(event)
        if event.state in FINAL_STATES:
            event.processed_at = timezone.now()
        event.save()
    return event


def webhook_events_sweep(*, older_than_seconds: int = 60, limit: int = 500) -> int:
    """Re-enqueue stored events not processed yet (lost enqueue, crash, or still unmatched). Returns how many."""
    from webhooks.tasks import process_webhook_event  # the tasks module imports this one

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        WebhookEvent.objects.filter(
            provider__in=list(PROCESSORS),
            state__in=[WebhookEvent.State.RECEIVED, WebhookEvent.State.UNMATCHED],
            received_at__lte=cutoff,
            attempts__lt=SWEEP_MAX_ATTEMPTS,
        )
        .order_by("attempts", "received_at")
        .values_list("id", flat=True)[:limit]
    )
    for event_id in ids:
        process_webhook_event.delay_on_commit(event_id)
    return len(ids)
