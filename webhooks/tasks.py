"""Thin task entry points: an event id in, one service call."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from webhooks.services import webhook_event_process, webhook_events_sweep

# Only transient database failures are retried; processing is idempotent (a final state returns at once).
RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(**RETRY)
def process_webhook_event(event_id: int) -> None:
    webhook_event_process(event_id=event_id)


@shared_task
def sweep_webhook_events() -> int:
    return webhook_events_sweep()
