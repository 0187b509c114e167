"""Pieces every receiver shares (kept apart from services.py so per-provider modules can import them)."""

from webhooks.models import WebhookEvent

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
