import base64
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.factories import OutcomeLabelFactory

SENDGRID_PATH = "/webhooks/sendgrid"


class SendGridSigner:
    """Signs like SendGrid's Signed Event Webhook: base64 DER ECDSA-SHA256 over timestamp + body."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: str, timestamp: int | None = None) -> dict:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private_key.sign((stamp + body).encode(), ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }


@pytest.fixture
def signer(settings):
    signer = SendGridSigner()
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = signer.public_key
    return signer


@pytest.fixture
def outcome(db):
    row = OutcomeLabelFactory(delivered=False)
    row.message.custom_args = {"rex_message_id": str(row.message.pk), "rex_outcome_id": str(row.pk)}
    row.message.save(update_fields=["custom_args"])
    return row


def sendgrid_event(outcome, event: str, n: int, **fields) -> dict:
    """One event as SendGrid sends it: REX's custom args come back as top-level keys."""
    return {
        "email": outcome.message.to_address if outcome is not None else "nobody@example.com",
        "timestamp": 1_760_000_000 + n * 600,
        "event": event,
        "smtp-id": "<abc@sendgrid.net>",
        "sg_event_id": f"evt-{event}-{n}",
        "sg_message_id": f"{outcome.message.provider_message_id if outcome else 'unknown'}.filter-{n}",
        **(outcome.message.custom_args if outcome is not None else {}),
        **fields,
    }


def body_of(events: list[dict]) -> str:
    return json.dumps(events, separators=(",", ":")) + "\r\n"


@pytest.fixture
def post_signed(client, signer):
    def post(body: str, path: str = SENDGRID_PATH, **header_overrides):
        headers = {**signer.headers(body), **header_overrides}
        return client.post(path, data=body, content_type="application/json", headers=headers)

    return post
