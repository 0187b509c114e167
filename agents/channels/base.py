from dataclasses import dataclass, field


@dataclass
class SendResult:
    provider: str
    provider_message_id: str
    request: dict = field(default_factory=dict)  # what went (or would have gone) to the provider


class ProviderError(Exception):
    """A provider refused or failed. ``retryable`` for 429/5xx; other errors fail at once."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.status = status
