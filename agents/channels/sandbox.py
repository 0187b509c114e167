"""Sandbox providers: build the provider's real request body, keep it, send nothing."""

import uuid

from agents.channels.base import SendResult
from agents.models import Message


class SandboxEmail:
    name = "sandbox-email"

    def send(self, message: Message, *, custom_args: dict) -> SendResult:
        # The body SendGrid's v3 /mail/send would receive.
        request = {
            "personalizations": [{"to": [{"email": message.to_address}], "custom_args": custom_args}],
            "from": {"email": message.from_address},
            "subject": message.subject,
            "content": [{"type": "text/plain", "value": message.body}],
            "headers": message.headers,
            "categories": [f"campaign-{message.campaign_id}"] if message.campaign_id else [],
        }
        return SendResult(provider=self.name, provider_message_id=f"sbx-{uuid.uuid4().hex}", request=request)


class SandboxSMS:
    name = "sandbox-sms"

    def send(self, message: Message, *, custom_args: dict) -> SendResult:
        # The form fields Twilio's Messages.json would receive.
        request = {"To": message.to_address, "From": message.from_address, "Body": message.body}
        return SendResult(provider=self.name, provider_message_id=f"SM{uuid.uuid4().hex}", request=request)
