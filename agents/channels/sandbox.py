"""Sandbox providers: build the request the real provider's SDK would send, keep it, send nothing."""

import uuid

from agents.channels.base import SendResult
from agents.channels.sendgrid import SendGridEmail
from agents.channels.twilio_sms import TwilioSMS
from agents.models import Message


class SandboxEmail:
    name = "sandbox-email"

    def send(self, message: Message, *, custom_args: dict) -> SendResult:
        request = SendGridEmail().build_mail(message, custom_args=custom_args).get()
        return SendResult(provider=self.name, provider_message_id=f"sbx-{uuid.uuid4().hex}", request=request)


class SandboxSMS:
    name = "sandbox-sms"

    def send(self, message: Message, *, custom_args: dict) -> SendResult:
        request = TwilioSMS.build_request(message)
        return SendResult(provider=self.name, provider_message_id=f"SM{uuid.uuid4().hex}", request=request)
