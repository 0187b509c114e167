"""The world's provider credentials, and signatures made the way each provider documents them.

Deliberately independent of ``webhooks.signatures`` (REX's checks): the world signs like SendGrid, Twilio and
REX's documented HMAC scheme, so a test that posts the world's webhooks fails if REX's checks drift.
"""

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
REX_TIMESTAMP_HEADER = "X-Rex-Timestamp"
REX_SIGNATURE_HEADER = "X-Rex-Signature"


@dataclass(frozen=True)
class Credentials:
    """What the world's SendGrid account, Twilio account, inbox connector and CRM sign with."""

    sendgrid_key: ec.EllipticCurvePrivateKey
    twilio_account_sid: str
    twilio_auth_token: str
    inbox_secret: str
    crm_secret: str

    @classmethod
    def generate(cls) -> "Credentials":
        """Fresh secrets for one run (never derived from the world seed: a seed is public)."""
        return cls(
            sendgrid_key=ec.generate_private_key(ec.SECP256R1()),
            twilio_account_sid="AC" + secrets.token_hex(16),
            twilio_auth_token=secrets.token_hex(16),
            inbox_secret=secrets.token_urlsafe(32),
            crm_secret=secrets.token_urlsafe(32),
        )

    @property
    def sendgrid_public_key(self) -> str:
        """Base64 DER SubjectPublicKeyInfo: what SendGrid shows as the verification key."""
        der = self.sendgrid_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def rex_settings(self) -> dict[str, str]:
        """The settings REX's web process verifies with. TWILIO_ACCOUNT_SID is left out on purpose: with only the
        auth token set, REX checks Twilio signatures but keeps sending SMS through its sandbox provider."""
        return {
            "SENDGRID_WEBHOOK_PUBLIC_KEY": self.sendgrid_public_key,
            "TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "INBOX_WEBHOOK_SECRET": self.inbox_secret,
            "CRM_WEBHOOK_SECRET": self.crm_secret,
        }


def sendgrid_headers(*, key: ec.EllipticCurvePrivateKey, body: str, timestamp: int) -> dict[str, str]:
    """SendGrid's Signed Event Webhook: ECDSA P-256/SHA-256 over ``timestamp + body``, base64 DER."""
    signature = key.sign((str(timestamp) + body).encode(), ec.ECDSA(hashes.SHA256()))
    return {
        SENDGRID_SIGNATURE_HEADER: base64.b64encode(signature).decode(),
        SENDGRID_TIMESTAMP_HEADER: str(timestamp),
    }


def twilio_headers(*, auth_token: str, url: str, params: dict[str, str]) -> dict[str, str]:
    """X-Twilio-Signature with Twilio's own helper: HMAC-SHA1 over the URL and the sorted form parameters."""
    return {TWILIO_SIGNATURE_HEADER: RequestValidator(auth_token).compute_signature(url, params)}


def rex_headers(*, secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """REX's documented scheme for inbox sync and the generic CRM format:
    ``X-Rex-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {REX_TIMESTAMP_HEADER: str(timestamp), REX_SIGNATURE_HEADER: f"sha256={digest}"}
