"""Pieces every receiver shares (kept apart from services.py so per-provider modules can import them)."""

import logging

from django.db import transaction

from webhooks.models import WebhookEvent

logger = logging.getLogger("rex.webhooks")

DROPPED_HEADERS = {"authorization", "cookie"}


class MalformedPayload(Exception):
    """The body is not what the provider sends: answered 400 with ``reason``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def kept_headers(headers: dict) -> dict:
    """The request headers worth storing with the event (credentials dropped)."""
    return {name: value for name, value in headers.items() if name.lower() not in DROPPED_HEADERS}


def mark(event: WebhookEvent, state: str, error: str = "") -> None:
    event.state = state
    event.error = error


def enqueue_on_commit(task, *args) -> None:
    """``task.delay(*args)`` once the transaction commits. If the broker cannot take it, the events are stored
    anyway: the request still succeeds (the provider must not resend what we have) and the beat sweep enqueues
    them later."""

    def send() -> None:
        try:
            task.delay(*args)
        except Exception:
            logger.exception("could not enqueue %s; the webhook sweep will pick the events up", task.name)

    transaction.on_commit(send)
