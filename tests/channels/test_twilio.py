"""TwilioSMS against a real local HTTP server, plus provider selection by settings."""

import base64
import re
import time
from urllib.parse import parse_qs

import pytest
from werkzeug import Response

from agents.channels import ProviderError, provider_for, twilio_sms
from agents.channels.sandbox import SandboxEmail, SandboxSMS
from agents.channels.sendgrid import SendGridEmail
from agents.channels.twilio_sms import TwilioSMS
from agents.models import Message
from tests.factories import MessageFactory
from tests.local_server import wait_for_requests

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture
def twilio_settings(settings, httpserver):
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = "x"
    settings.TWILIO_API_BASE_URL = httpserver.url_for("").rstrip("/")
    settings.PUBLIC_BASE_URL = "https://rex.example.com"
    return settings


@pytest.fixture
def message():
    return MessageFactory(
        channel=Message.Channel.SMS, to_address="+14155550123", from_address="+15005550006", subject=""
    )


def _twilio_message(message) -> dict:
    sid = "SM" + "f" * 32
    return {
        "account_sid": ACCOUNT_SID,
        "api_version": "2010-04-01",
        "body": message.body,
        "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
        "date_sent": None,
        "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": message.from_address,
        "messaging_service_sid": None,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": None,
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media.json"},
        "to": message.to_address,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
    }


def test_send_posts_the_form_and_returns_the_sid(twilio_settings, httpserver, message):
    httpserver.expect_request(MESSAGES_PATH, method="POST").respond_with_json(_twilio_message(message), status=201)

    result = TwilioSMS().send(message, custom_args={"rex_message_id": "1"})

    assert result.provider == "twilio"
    assert result.provider_message_id == "SM" + "f" * 32
    [(request, _response)] = httpserver.log
    scheme, credentials = request.headers["Authorization"].split(" ", 1)
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode() == f"{ACCOUNT_SID}:x"
    form = {key: values[0] for key, values in parse_qs(request.get_data(as_text=True)).items()}
    expected = {
        "To": "+14155550123",
        "From": "+15005550006",
        "Body": message.body,
        "StatusCallback": "https://rex.example.com/webhooks/twilio",
    }
    assert form == expected
    assert result.request == expected


def test_opted_out_recipient_is_final(twilio_settings, httpserver, message):
    httpserver.expect_request(MESSAGES_PATH, method="POST").respond_with_json(
        {
            "code": 21610,
            "message": "Attempt to send to unsubscribed recipient",
            "more_info": "https://www.twilio.com/docs/errors/21610",
            "status": 400,
        },
        status=400,
    )

    with pytest.raises(ProviderError) as caught:
        TwilioSMS().send(message, custom_args={})

    assert caught.value.retryable is False
    assert caught.value.status == 400
    assert "21610" in str(caught.value)
    assert "unsubscribed recipient" in str(caught.value)


@pytest.mark.parametrize("status", [429, 503])
def test_rate_limit_and_outage_are_retryable(twilio_settings, httpserver, message, status):
    httpserver.expect_request(MESSAGES_PATH, method="POST").respond_with_json(
        {"code": 20003 if status == 503 else 20429, "message": "Unavailable", "status": status}, status=status
    )

    with pytest.raises(ProviderError) as caught:
        TwilioSMS().send(message, custom_args={})

    assert caught.value.retryable is True
    assert caught.value.status == status


def test_connection_refused_is_retryable(twilio_settings, message):
    twilio_settings.TWILIO_API_BASE_URL = "http://127.0.0.1:9"

    with pytest.raises(ProviderError) as caught:
        TwilioSMS().send(message, custom_args={})

    assert caught.value.retryable is True


@pytest.mark.parametrize(
    ("channel", "keys", "expected"),
    [
        ("sms", {}, SandboxSMS),
        ("sms", {"TWILIO_ACCOUNT_SID": ACCOUNT_SID}, SandboxSMS),  # both sid and token are needed
        ("sms", {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "x"}, TwilioSMS),
        ("sms", {"SENDGRID_API_KEY": "SG.test"}, SandboxSMS),
        ("email", {}, SandboxEmail),
        ("email", {"SENDGRID_API_KEY": "SG.test"}, SendGridEmail),
        ("email", {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "x"}, SandboxEmail),
    ],
)
def test_provider_for_picks_by_settings(settings, channel, keys, expected):
    settings.SENDGRID_API_KEY = ""
    settings.TWILIO_ACCOUNT_SID = ""
    settings.TWILIO_AUTH_TOKEN = ""
    for name, value in keys.items():
        setattr(settings, name, value)

    assert type(provider_for(channel)) is expected


def test_no_answer_in_time_is_ambiguous_and_never_retried(twilio_settings, httpserver, message, monkeypatch):
    monkeypatch.setattr(twilio_sms, "TIMEOUT_SECONDS", 0.2)

    def slow(request):
        time.sleep(0.6)
        return Response("{}", status=201, content_type="application/json")

    httpserver.expect_request(re.compile(".*/Messages.json"), method="POST").respond_with_handler(slow)
    with pytest.raises(ProviderError) as excinfo:
        TwilioSMS().send(message, custom_args={})
    assert excinfo.value.ambiguous and not excinfo.value.retryable
    wait_for_requests(httpserver, 1)
