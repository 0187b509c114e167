"""SendGrid email through the official SDK (v3 ``/mail/send``)."""

import json
from urllib.error import URLError

from django.conf import settings
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Category, CustomArg, Header, Mail

from agents.channels.base import ProviderError, SendResult
from agents.models import Message

# SendGridAPIClient has no timeout option and urllib waits forever by default.
TIMEOUT_SECONDS = 30


def _is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _error_text(exc: HTTPError) -> str:
    # SendGrid answers errors with {"errors": [{"message", "field", "help"}]}.
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
    try:
        detail = json.loads(body)["errors"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        detail = body[:500] or exc.reason
    return f"SendGrid HTTP {exc.status_code}: {detail}"


class SendGridEmail:
    name = "sendgrid"

    def build_mail(self, message: Message, *, custom_args: dict) -> Mail:
        mail = Mail(
            from_email=message.from_address,
            to_emails=message.to_address,
            subject=message.subject,
            plain_text_content=message.body,
        )
        for key, value in custom_args.items():
            mail.add_custom_arg(CustomArg(key, str(value)))
        if message.campaign_id:
            mail.add_category(Category(f"campaign-{message.campaign_id}"))
        for key, value in (message.headers or {}).items():
            mail.add_header(Header(key, str(value)))
        return mail

    def send(self, message: Message, *, custom_args: dict) -> SendResult:
        request = self.build_mail(message, custom_args=custom_args).get()
        client = SendGridAPIClient(api_key=settings.SENDGRID_API_KEY, host=settings.SENDGRID_API_HOST)
        try:
            response = client.client.mail.send.post(request_body=request, timeout=TIMEOUT_SECONDS)
        except HTTPError as exc:
            status = int(exc.status_code)
            raise ProviderError(_error_text(exc), retryable=_is_retryable(status), status=status) from exc
        except (TimeoutError, URLError, ConnectionError) as exc:
            if isinstance(exc, TimeoutError) or isinstance(getattr(exc, "reason", None), TimeoutError):
                # No answer in time: SendGrid may have accepted it, so it must not go out again by itself.
                raise ProviderError(f"SendGrid did not answer: {exc}", ambiguous=True) from exc
            raise ProviderError(f"SendGrid unreachable: {exc}", retryable=True) from exc
        return SendResult(
            provider=self.name, provider_message_id=response.headers.get("X-Message-Id", ""), request=request
        )
