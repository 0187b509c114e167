from dataclasses import dataclass, field


@dataclass
class SendResult:
    provider: str
    provider_message_id: str
    request: dict = field(default_factory=dict)  # what went (or would have gone) to the provider


class ProviderError(Exception):
    """A provider refused or failed. ``retryable`` for 429/5xx and requests that never arrived;
    other errors fail at once. ``ambiguous``: no answer after the request went out, so the provider
    may have accepted it — never retried automatically (that could send twice)."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None, ambiguous: bool = False):
        super().__init__(message)
        self.retryable = retryable and not ambiguous
        self.status = status
        self.ambiguous = ambiguous
