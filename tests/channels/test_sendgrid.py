"""SendGridEmail against a real local HTTP server: what the SDK sends and how errors map."""

import json
import time

import pytest
from werkzeug import Response

from agents.channels import ProviderError
from agents.channels import sendgrid as sendgrid_channel
from agents.channels.sendgrid import SendGridEmail
from agents.sending import message_send
from tests.factories import MessageFactory
from tests.local_server import wait_for_requests

pytestmark = pytest.mark.django_db

CUSTOM_ARGS = {"rex_message_id": "42", "rex_outcome_id": 7}


@pytest.fixture
def sendgrid_settings(settings, httpserver):
    settings.SENDGRID_API_KEY = "SG.test"
    settings.SENDGRID_API_HOST = httpserver.url_for("").rstrip("/")
    return settings


@pytest.fixture
def message():
    return MessageFactory(headers={"List-Unsubscribe": "<https://x/u>"})


def test_send_posts_the_mail_and_returns_the_message_id(sendgrid_settings, httpserver, message):
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_data(
        "", status=202, headers={"X-Message-Id": "sg-abc123"}
    )

    result = SendGridEmail().send(message, custom_args=CUSTOM_ARGS)

    assert result.provider == "sendgrid"
    assert result.provider_message_id == "sg-abc123"
    [(request, _response)] = httpserver.log
    assert request.headers["Authorization"] == "Bearer SG.test"
    sent = json.loads(request.get_data())
    assert sent["personalizations"][0]["to"] == [{"email": message.to_address}]
    assert sent["from"] == {"email": message.from_address}
    assert sent["subject"] == message.subject
    assert sent["content"] == [{"type": "text/plain", "value": message.body}]
    assert sent["custom_args"] == {"rex_message_id": "42", "rex_outcome_id": "7"}
    assert message.campaign_id
    assert sent["categories"] == [f"campaign-{message.campaign_id}"]
    assert sent["headers"] == {"List-Unsubscribe": "<https://x/u>"}
    assert result.request == sent


def test_no_category_without_campaign(sendgrid_settings, httpserver):
    message = MessageFactory(campaign=None)
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_data(
        "", status=202, headers={"X-Message-Id": "sg-1"}
    )

    SendGridEmail().send(message, custom_args={})

    assert "categories" not in json.loads(httpserver.log[0][0].get_data())


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limit_and_server_errors_are_retryable(sendgrid_settings, httpserver, message, status):
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_json(
        {"errors": [{"message": "try later", "field": None, "help": None}]}, status=status
    )

    with pytest.raises(ProviderError) as caught:
        SendGridEmail().send(message, custom_args=CUSTOM_ARGS)

    assert caught.value.retryable is True
    assert caught.value.status == status


def test_bad_request_is_final_and_carries_sendgrids_message(sendgrid_settings, httpserver, message):
    error = "The from address does not match a verified Sender Identity."
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_json(
        {"errors": [{"message": error, "field": "from", "help": None}]}, status=400
    )

    with pytest.raises(ProviderError) as caught:
        SendGridEmail().send(message, custom_args=CUSTOM_ARGS)

    assert caught.value.retryable is False
    assert caught.value.status == 400
    assert error in str(caught.value)


def test_non_json_error_body_is_kept(sendgrid_settings, httpserver, message):
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_response(
        Response("upstream exploded", status=502)
    )

    with pytest.raises(ProviderError) as caught:
        SendGridEmail().send(message, custom_args=CUSTOM_ARGS)

    assert caught.value.retryable is True
    assert "upstream exploded" in str(caught.value)


def test_connection_refused_is_retryable(settings, message):
    settings.SENDGRID_API_KEY = "SG.test"
    settings.SENDGRID_API_HOST = "http://127.0.0.1:9"  # discard port: nothing listens

    with pytest.raises(ProviderError) as caught:
        SendGridEmail().send(message, custom_args=CUSTOM_ARGS)

    assert caught.value.retryable is True


def _slow(request):
    time.sleep(0.6)
    return Response("", status=202)


def test_no_answer_in_time_is_ambiguous_and_never_retried(sendgrid_settings, httpserver, message, monkeypatch):
    monkeypatch.setattr(sendgrid_channel, "TIMEOUT_SECONDS", 0.2)
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_handler(_slow)
    with pytest.raises(ProviderError) as excinfo:
        SendGridEmail().send(message, custom_args=CUSTOM_ARGS)
    assert excinfo.value.ambiguous and not excinfo.value.retryable
    wait_for_requests(httpserver, 1)


def test_an_ambiguous_failure_leaves_the_message_sending_for_an_operator(sendgrid_settings, httpserver, monkeypatch):
    monkeypatch.setattr(sendgrid_channel, "TIMEOUT_SECONDS", 0.2)
    httpserver.expect_request("/v3/mail/send", method="POST").respond_with_handler(_slow)
    queued = MessageFactory(status="queued", from_address="hello@mail.example.com")
    with pytest.raises(ProviderError):
        message_send(message_id=queued.pk)
    queued.refresh_from_db()
    assert queued.status == "sending" and "did not answer" in queued.error
    assert message_send(message_id=queued.pk).status == "sending"  # a retry does not send again
    wait_for_requests(httpserver, 1)
    assert len(httpserver.log) == 1
