"""Every email carries the CAN-SPAM footer, one-click unsubscribe headers and a Message-ID REX can match."""

import re

import pytest
from django.core import signing

from agents.compliance import email_compliance, unsubscribe_target, unsubscribe_token, unsubscribe_url
from agents.models import Message
from agents.sending import message_send
from tests.factories import MessageFactory

pytestmark = pytest.mark.django_db

ONE_CLICK = "List-Unsubscribe=One-Click"


@pytest.fixture
def message():
    return MessageFactory(status=Message.Status.QUEUED, provider="", provider_message_id="", rfc_message_id="")


def _token_of(list_unsubscribe: str) -> str:
    match = re.fullmatch(r"<https://rex\.example\.com/unsubscribe/([^>]+)>", list_unsubscribe)
    assert match, list_unsubscribe
    return match.group(1)


def test_footer_and_headers(message):
    body, headers, rfc_message_id = email_compliance(message)

    organization = message.organization
    assert body.startswith(message.body)
    assert f"{organization.name}\n{organization.postal_address}\nUnsubscribe: {unsubscribe_url(message)}" in body
    assert headers["List-Unsubscribe-Post"] == ONE_CLICK
    token = _token_of(headers["List-Unsubscribe"])
    assert unsubscribe_target(token) == (organization.pk, message.lead.email)
    assert headers["Message-ID"] == rfc_message_id
    domain = re.escape(message.sending_domain.domain)
    assert re.fullmatch(rf"<rex-{message.pk}-[0-9a-f]{{16}}@{domain}>", rfc_message_id)


def test_message_id_falls_back_to_the_public_host_without_a_sending_domain():
    message = MessageFactory(sending_domain=None, from_address="", rfc_message_id="")

    _body, _headers, rfc_message_id = email_compliance(message)

    assert re.fullmatch(rf"<rex-{message.pk}-[0-9a-f]{{16}}@rex\.example\.com>", rfc_message_id)


def test_applying_twice_changes_nothing(message):
    body, headers, rfc_message_id = email_compliance(message)
    message.body, message.headers, message.rfc_message_id = body, headers, rfc_message_id

    assert email_compliance(message) == (body, headers, rfc_message_id)
    assert body.count("Unsubscribe: ") == 1


def test_existing_headers_are_kept(message):
    message.headers = {"X-Campaign": "spring"}

    _body, headers, _id = email_compliance(message)

    assert headers["X-Campaign"] == "spring"


def test_token_round_trip_and_tampering():
    token = unsubscribe_token(organization_id=7, email="Maya@Example.com")

    assert unsubscribe_target(token) == (7, "maya@example.com")
    with pytest.raises(signing.BadSignature):
        unsubscribe_target(token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(signing.BadSignature):
        unsubscribe_target(signing.Signer(salt="other").sign_object([7, "maya@example.com"]))


def test_message_send_carries_footer_headers_and_ids(message):
    written = message.body

    sent = message_send(message_id=message.pk)

    assert sent.status == Message.Status.SENT
    request = sent.provider_request
    assert request["from"] == {"email": message.from_address}
    assert request["content"][0]["value"] == sent.body
    assert "Unsubscribe: https://rex.example.com/unsubscribe/" in sent.body
    assert request["headers"]["List-Unsubscribe-Post"] == ONE_CLICK
    assert unsubscribe_target(_token_of(request["headers"]["List-Unsubscribe"]))[1] == message.lead.email
    assert request["headers"]["Message-ID"] == sent.rfc_message_id
    assert sent.rfc_message_id.startswith(f"<rex-{message.pk}-")
    assert request["custom_args"] == {"rex_message_id": str(message.pk), "rex_outcome_id": str(message.outcome.pk)}
    assert request["categories"] == [f"campaign-{message.campaign_id}"]
    message.refresh_from_db()
    assert message.body == sent.body and message.headers == request["headers"]
    # The outcome keeps what the writer wrote, without the footer, for training.
    assert message.outcome.message_body == written
