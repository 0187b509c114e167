"""Webhook signature checks. Each returns the ``WebhookEvent.Signature`` value to store, or raises
``SignatureRejected`` with the HTTP status and reason to answer.

A rejected signature is answered 4xx and never retried on our side: a forged or replayed request does not become
valid later, and the provider retries a genuine one on its own.
"""

import binascii
import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from functools import lru_cache

from django.conf import settings
from sendgrid.helpers.eventwebhook import EventWebhook
from twilio.request_validator import RequestValidator

from webhooks.models import WebhookEvent

logger = logging.getLogger("rex.webhooks")

MAX_SKEW_SECONDS = 300
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"


class SignatureRejected(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _now() -> float:
    return time.time()


@lru_cache(maxsize=4)
def _sendgrid_verifier(public_key: str) -> EventWebhook:
    return EventWebhook(public_key=public_key)


def _check_timestamp(timestamp: str) -> None:
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        raise SignatureRejected(403, "Missing or malformed signature timestamp.") from None
    if abs(_now() - sent_at) > MAX_SKEW_SECONDS:
        raise SignatureRejected(403, "Signature timestamp is outside the allowed window.")


def sendgrid_signature_check(*, raw_body: str, headers: Mapping[str, str]) -> str:
    """Verify SendGrid's Signed Event Webhook (ECDSA P-256 over timestamp + raw body) with the configured
    public key. ``raw_body`` must be the body exactly as received, decoded as UTF-8 (never re-serialised)."""
    public_key = settings.SENDGRID_WEBHOOK_PUBLIC_KEY
    if not public_key:
        if settings.DEBUG:
            logger.warning("SENDGRID_WEBHOOK_PUBLIC_KEY is not set: accepting an unsigned SendGrid webhook (DEBUG)")
            return WebhookEvent.Signature.NOT_CONFIGURED
        logger.error("SENDGRID_WEBHOOK_PUBLIC_KEY is not set: refusing the SendGrid webhook")
        raise SignatureRejected(403, "Webhook verification is not configured.")

    signature = headers.get(SENDGRID_SIGNATURE_HEADER) or ""
    timestamp = headers.get(SENDGRID_TIMESTAMP_HEADER) or ""
    if not signature:
        raise SignatureRejected(403, "Missing signature.")
    _check_timestamp(timestamp)
    try:
        verifier = _sendgrid_verifier(public_key)
    except ValueError:
        logger.exception("SENDGRID_WEBHOOK_PUBLIC_KEY cannot be loaded as a public key")
        raise SignatureRejected(403, "Webhook verification is misconfigured.") from None
    try:
        valid = verifier.verify_signature(raw_body, signature, timestamp)
    except (binascii.Error, ValueError):  # the helper raises on malformed base64 instead of returning False
        valid = False
    if not valid:
        raise SignatureRejected(403, "Invalid signature.")
    return WebhookEvent.Signature.VALID


def twilio_signature_check(*, url: str, params: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """Verify Twilio's X-Twilio-Signature (HMAC-SHA1 of the URL and the sorted form params) with the account Auth
    Token. ``url`` must be the one Twilio called: PUBLIC_BASE_URL + path + query string, never the proxied one."""
    token = settings.TWILIO_AUTH_TOKEN
    if not token:
        if settings.DEBUG:
            logger.warning("TWILIO_AUTH_TOKEN is not set: accepting an unsigned Twilio webhook (DEBUG)")
            return WebhookEvent.Signature.NOT_CONFIGURED
        logger.error("TWILIO_AUTH_TOKEN is not set: refusing the Twilio webhook")
        raise SignatureRejected(403, "Webhook verification is not configured.")

    signature = headers.get(TWILIO_SIGNATURE_HEADER) or ""
    if not signature:
        raise SignatureRejected(403, "Missing signature.")
    if not RequestValidator(token).validate(url, dict(params), signature):
        raise SignatureRejected(403, "Invalid signature.")
    return WebhookEvent.Signature.VALID


REX_TIMESTAMP_HEADER = "X-Rex-Timestamp"
REX_SIGNATURE_HEADER = "X-Rex-Signature"


def rex_hmac_signature(*, secret: str, timestamp: str, raw_body: bytes) -> str:
    """The ``X-Rex-Signature`` value: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def rex_hmac_signature_check(*, raw_body: bytes, headers: Mapping[str, str], setting: str) -> str:
    """Verify REX's own HMAC scheme (generic CRM format, inbox sync) with the secret in ``settings.<setting>``
    (``CRM_WEBHOOK_SECRET``, ``INBOX_WEBHOOK_SECRET``): a fresh ``X-Rex-Timestamp`` (Unix seconds) and
    ``X-Rex-Signature`` over ``"<timestamp>.<raw body>"``, compared in constant time."""
    secret = getattr(settings, setting)
    if not secret:
        if settings.DEBUG:
            logger.warning("%s is not set: accepting an unsigned webhook (DEBUG)", setting)
            return WebhookEvent.Signature.NOT_CONFIGURED
        logger.error("%s is not set: refusing the webhook", setting)
        raise SignatureRejected(403, "Webhook verification is not configured.")

    signature = headers.get(REX_SIGNATURE_HEADER) or ""
    if not signature:
        raise SignatureRejected(401, "Missing signature.")
    timestamp = headers.get(REX_TIMESTAMP_HEADER) or ""
    _check_timestamp(timestamp)
    expected = rex_hmac_signature(secret=secret, timestamp=timestamp, raw_body=raw_body)
    if not hmac.compare_digest(expected, signature.strip()):
        raise SignatureRejected(403, "Invalid signature.")
    return WebhookEvent.Signature.VALID
