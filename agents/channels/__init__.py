"""The channel layer: one small interface per provider, picked by channel and configuration.

Sandbox providers (the default with no keys, and the demo) record exactly what would have
been sent and answer with provider-like ids. A real provider is used once its keys are set.
"""

from django.conf import settings

from agents.channels.base import ProviderError, SendResult
from agents.channels.sandbox import SandboxEmail, SandboxSMS
from agents.channels.sendgrid import SendGridEmail
from agents.channels.twilio_sms import TwilioSMS

__all__ = ["ProviderError", "SendResult", "provider_for"]


def provider_for(channel: str):
    # Settings are read per call so a deploy (or a test) switches providers without code changes.
    if channel == "sms":
        if settings.TWILIO_ACCOUNT_SID and settings.TWILIO_AUTH_TOKEN:
            return TwilioSMS()
        return SandboxSMS()
    if settings.SENDGRID_API_KEY:
        return SendGridEmail()
    return SandboxEmail()
