"""Thin task entry points: event ids in, one service call per event."""

import logging

from celery import shared_task

from rex_project.retry import RETRY, TRANSIENT
from webhooks.services import webhook_event_process, webhook_events_sweep

logger = logging.getLogger("rex.webhooks")


@shared_task(**RETRY)
def process_webhook_event(event_id: int) -> None:
    webhook_event_process(event_id=event_id)


@shared_task(**RETRY)
def process_webhook_events(event_ids: list[int]) -> None:
    """One task per received batch (a message per event would cost a broker round trip each and flood the
    queue under a burst). Every event is processed in its own transaction and a failing one does not stop the
    rest: afterwards a transient error retries the whole list (the events already done return at once), any
    other error fails the task and leaves its event for the sweep."""
    transient: Exception | None = None
    failure: Exception | None = None
    for event_id in event_ids:
        try:
            webhook_event_process(event_id=event_id)
        except TRANSIENT as exc:
            transient = exc
        except Exception as exc:  # logged here, the first re-raised below once the other events are done
            logger.exception("webhook event %s failed", event_id)
            failure = failure or exc
    if transient is not None:
        raise transient
    if failure is not None:
        raise failure


@shared_task
def sweep_webhook_events() -> int:
    return webhook_events_sweep()
