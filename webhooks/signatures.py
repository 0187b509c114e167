"""Webhook signature checks. Each returns the ``WebhookEvent.Signature`` value to store, or raises
``SignatureRejected`` with the HTTP status and reason to answer.

A rejected signature is answered 4xx and never retried on our side: a forged or replayed request does not become
valid later, and the provider retries a genuine one on its own.
"""

import base64
import binascii
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import parse_qs, urlsplit

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
    # SendGrid shows the bare base64 key; a PEM pasted instead (header, footer, line breaks) is accepted too.
    lines = [line.strip() for line in public_key.strip().splitlines()]
    return EventWebhook(public_key="".join(line for line in lines if line and not line.startswith("-----")))


def _check_timestamp(timestamp: str) -> None:
    """Unix seconds within MAX_SKEW_SECONDS of now. Digits only and at most 12 of them: an absurd value must be a
    403, not an overflow in the arithmetic."""
    timestamp = (timestamp or "").strip()
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise SignatureRejected(403, "Missing or malformed signature timestamp.")
    if abs(_now() - int(timestamp)) > MAX_SKEW_SECONDS:
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
        # The usual cause behind a proxy: PUBLIC_BASE_URL is not the address Twilio was given.
        logger.warning("Twilio signature does not match for %s (check PUBLIC_BASE_URL)", url)
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
    # Hex in either case (and "SHA256=") is the same signature. Bytes, not str: compare_digest raises TypeError on
    # a non-ASCII str (a garbled header must be a 403).
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise SignatureRejected(403, "Invalid signature.")
    return WebhookEvent.Signature.VALID


# --- CRMs -----------------------------------------------------------------------------------------

HUBSPOT_SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
HUBSPOT_TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
# HubSpot decodes these escapes in the request URI before signing it (its "Validating requests" guide).
HUBSPOT_URI_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_HUBSPOT_ESCAPES = re.compile("|".join(HUBSPOT_URI_DECODED), re.IGNORECASE)


def _not_configured(setting: str, provider: str) -> str:
    if settings.DEBUG:
        logger.warning("%s is not set: accepting an unverified %s webhook (DEBUG)", setting, provider)
        return WebhookEvent.Signature.NOT_CONFIGURED
    logger.error("%s is not set: refusing the %s webhook", setting, provider)
    raise SignatureRejected(403, "Webhook verification is not configured.")


def hubspot_signature(*, secret: str, method: str, uri: str, raw_body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature: base64(HMAC-SHA256(client secret, method + URI + raw body + timestamp))."""
    signed_uri = _HUBSPOT_ESCAPES.sub(lambda match: HUBSPOT_URI_DECODED[match.group(0).upper()], uri)
    message = method.upper().encode() + signed_uri.encode() + raw_body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def hubspot_signature_check(*, method: str, uri: str, raw_body: bytes, headers: Mapping[str, str]) -> str:
    """Verify ``X-HubSpot-Signature-v3`` with the app's client secret (HUBSPOT_CLIENT_SECRET). ``uri`` must be the
    one HubSpot called: PUBLIC_BASE_URL + path + query string. The timestamp is in milliseconds."""
    secret = settings.HUBSPOT_CLIENT_SECRET
    if not secret:
        return _not_configured("HUBSPOT_CLIENT_SECRET", "HubSpot")
    signature = headers.get(HUBSPOT_SIGNATURE_HEADER) or ""
    if not signature:
        raise SignatureRejected(401, "Missing signature.")
    timestamp = (headers.get(HUBSPOT_TIMESTAMP_HEADER) or "").strip()
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 15):  # ms; absurd values are a 403
        raise SignatureRejected(403, "Missing or malformed signature timestamp.")
    if abs(_now() * 1000 - int(timestamp)) > MAX_SKEW_SECONDS * 1000:
        raise SignatureRejected(403, "Signature timestamp is outside the allowed window.")
    expected = hubspot_signature(secret=secret, method=method, uri=uri, raw_body=raw_body, timestamp=timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureRejected(403, "Invalid signature.")
    return WebhookEvent.Signature.VALID


class CredentialsRejected(SignatureRejected):
    """HTTP basic auth refused: 401, and the answer carries the challenge in ``headers`` (RFC 9110 §11.6.1)."""

    headers = {"WWW-Authenticate": 'Basic realm="REX CRM webhooks", charset="UTF-8"'}

    def __init__(self, reason: str):
        super().__init__(401, reason)


def _basic_credentials(headers: Mapping[str, str]) -> tuple[str, str]:
    scheme, _, token = (headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise CredentialsRejected("Missing HTTP basic credentials.")
    try:
        user, colon, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise CredentialsRejected("Malformed HTTP basic credentials.") from None
    if not colon:
        raise CredentialsRejected("Malformed HTTP basic credentials.")
    return user, password


def pipedrive_basic_auth_check(*, headers: Mapping[str, str]) -> str:
    """Pipedrive cannot sign its webhooks: HTTP basic auth (PIPEDRIVE_WEBHOOK_USER / PIPEDRIVE_WEBHOOK_PASSWORD,
    set on the webhook in Pipedrive) is the check, compared in constant time."""
    user, password = settings.PIPEDRIVE_WEBHOOK_USER, settings.PIPEDRIVE_WEBHOOK_PASSWORD
    if not (user and password):
        return _not_configured("PIPEDRIVE_WEBHOOK_USER/PIPEDRIVE_WEBHOOK_PASSWORD", "Pipedrive")
    given_user, given_password = _basic_credentials(headers)
    # Both comparisons always run, so the timing does not tell which half was wrong.
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    if not (user_ok and password_ok):
        raise CredentialsRejected("Invalid credentials.")
    return WebhookEvent.Signature.VALID


SALESFORCE_TOKEN_PARAMETER = "token"


def salesforce_token_check(*, uri: str) -> str:
    """Salesforce Outbound Messages carry no signature. The endpoint URL configured on the outbound message
    carries a shared secret instead, ``?token=<SALESFORCE_WEBHOOK_TOKEN>``, compared in constant time. ``uri`` is
    the URL as called (PUBLIC_BASE_URL + path + query string). Query strings show up in access logs: keep those
    private, and rotate the token like a password."""
    expected = settings.SALESFORCE_WEBHOOK_TOKEN
    if not expected:
        return _not_configured("SALESFORCE_WEBHOOK_TOKEN", "Salesforce")
    given = parse_qs(urlsplit(uri).query).get(SALESFORCE_TOKEN_PARAMETER) or []
    if not any(given):
        raise SignatureRejected(401, "Missing token.")
    if len(given) != 1 or not hmac.compare_digest(given[0].encode(), expected.encode()):
        raise SignatureRejected(403, "Invalid token.")
    return WebhookEvent.Signature.VALID


def salesforce_organization_check(*, organization_id: str) -> str:
    """Besides the token, accept only the configured org (SALESFORCE_ORGANIZATION_ID). Org ids are not secret:
    the token is what authenticates; an IP allowlist at the proxy adds to it."""
    expected = settings.SALESFORCE_ORGANIZATION_ID.strip()
    if not expected:
        return _not_configured("SALESFORCE_ORGANIZATION_ID", "Salesforce")
    given = (organization_id or "").strip()
    # Ids come as 15 case-sensitive characters or 18 (the 15 plus a checksum suffix): compare the 15.
    if len(given) not in (15, 18) or not hmac.compare_digest(given[:15].encode(), expected[:15].encode()):
        raise SignatureRejected(403, "Unknown Salesforce organization.")
    return WebhookEvent.Signature.VALID
