"""Twilio SMS through the official SDK (``POST /2010-04-01/Accounts/{sid}/Messages.json``)."""

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from agents.channels.base import ProviderError, SendResult
from agents.models import Message

TWILIO_API_ORIGIN = "https://api.twilio.com"
TIMEOUT_SECONDS = 30


class _RebasedHttpClient(TwilioHttpClient):
    """Sends what the SDK would send to api.twilio.com to another base URL (a local server or a proxy).

    The SDK has no ``base_url`` option; rewriting at the HTTP layer also survives region/edge settings.
    """

    def __init__(self, base_url: str, **kwargs):
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def request(self, method, url, *args, **kwargs):
        if url.startswith(TWILIO_API_ORIGIN):
            url = self.base_url + url[len(TWILIO_API_ORIGIN) :]
        return super().request(method, url, *args, **kwargs)


def _client() -> Client:
    base_url = settings.TWILIO_API_BASE_URL
    if base_url:
        http_client = _RebasedHttpClient(base_url, timeout=TIMEOUT_SECONDS)
    else:
        http_client = TwilioHttpClient(timeout=TIMEOUT_SECONDS)
    return Client(settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, http_client=http_client)


def _error_text(exc: TwilioRestException | TwilioServiceException) -> str:
    # str(exc) is ANSI-coloured when stderr is a TTY, so build the text from the fields.
    detail = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "")
    return f"Twilio HTTP {exc.status} error {exc.code}: {detail}"


class TwilioSMS:
    name = "twilio"

    @staticmethod
    def build_request(message: Message) -> dict:
        """The form fields of POST /2010-04-01/Accounts/{sid}/Messages.json."""
        return {
            "To": message.to_address,
            "From": message.from_address,
            "Body": message.body,
            "StatusCallback": f"{settings.PUBLIC_BASE_URL}/webhooks/twilio",
        }

    def send(self, message: Message, *, custom_args: dict) -> SendResult:
        request = self.build_request(message)
        try:
            sent = _client().messages.create(
                to=request["To"], from_=request["From"], body=request["Body"], status_callback=request["StatusCallback"]
            )
        except (TwilioRestException, TwilioServiceException) as exc:
            status = int(exc.status)
            retryable = status == 429 or status >= 500
            raise ProviderError(_error_text(exc), retryable=retryable, status=status) from exc
        except requests.ConnectionError as exc:  # never reached Twilio (includes connect timeouts)
            raise ProviderError(f"Twilio unreachable: {exc}", retryable=True) from exc
        except requests.RequestException as exc:
            # Sent but no usable answer: Twilio may have accepted it, so it must not go out again by itself.
            raise ProviderError(f"Twilio did not answer: {exc}", ambiguous=True) from exc
        return SendResult(provider=self.name, provider_message_id=sent.sid, request=request)
