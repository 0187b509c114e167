"""The channel layer: one small interface per provider, picked by channel and configuration.

Sandbox providers (the default with no keys, and the demo) record exactly what would have
been sent and answer with provider-like ids.
"""

from agents.channels.base import ProviderError, SendResult
from agents.channels.sandbox import SandboxEmail, SandboxSMS

__all__ = ["ProviderError", "SendResult", "provider_for"]


def provider_for(channel: str):
    if channel == "sms":
        return SandboxSMS()
    return SandboxEmail()
