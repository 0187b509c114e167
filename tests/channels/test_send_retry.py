"""Provider errors through the real send path: 429 then success, 400 fails fast, no double send."""

import datetime as dt

import pytest
from django.utils import timezone

from agents import tasks
from agents.decisions.rules import rules_install_defaults
from agents.models import DecisionRule, Lead, Message
from agents.pipeline.outreach import gate_and_send
from tests.factories import LeadFactory, MailboxFactory, MessageFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

SEND = "/v3/mail/send"


@pytest.fixture
def queued(settings, httpserver):
    settings.SENDGRID_API_KEY = "SG.test"
    settings.SENDGRID_API_HOST = httpserver.url_for("").rstrip("/")
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    # Email windows skip weekends; these tests are about provider errors, not the clock.
    DecisionRule.objects.filter(organization=organization, name="Outside the send window waits").delete()
    mailbox = MailboxFactory(sending_domain__organization=organization, min_gap_seconds=0)
    lead = LeadFactory(organization=organization, state=Lead.State.PERSONALIZED, timezone="UTC")
    return MessageFactory(
        organization=organization, lead=lead, channel="email", status="queued", to_address=lead.email,
        mailbox=mailbox, sending_domain=mailbox.sending_domain, from_address=mailbox.address,
    )  # fmt: skip


def _due_now(message):
    Message.objects.filter(pk=message.pk).update(scheduled_for=timezone.now() - dt.timedelta(seconds=1))


def test_rate_limited_then_sent(queued, httpserver):
    httpserver.expect_ordered_request(SEND, method="POST").respond_with_json(
        {"errors": [{"message": "slow down"}]}, 429
    )
    httpserver.expect_ordered_request(SEND, method="POST").respond_with_data("", 202, {"X-Message-Id": "sg-123"})

    result = gate_and_send(lead=queued.lead, message=queued)
    queued.refresh_from_db()
    assert result.proceed is False and result.output["retry"] is True
    assert queued.status == "queued" and queued.scheduled_for is not None and "429" in queued.error

    _due_now(queued)
    assert tasks.release_due_messages() == 1
    queued.refresh_from_db()
    assert (queued.status, queued.provider_message_id, queued.send_attempts) == ("sent", "sg-123", 2)
    assert len(httpserver.log) == 2


def test_bad_request_fails_fast_with_the_providers_message(queued, httpserver):
    body = {"errors": [{"message": "The from address does not match a verified Sender Identity."}]}
    httpserver.expect_request(SEND, method="POST").respond_with_json(body, 400)
    result = gate_and_send(lead=queued.lead, message=queued)
    queued.refresh_from_db()
    assert result.final_status == "failed"
    assert queued.status == "failed" and "verified Sender Identity" in queued.error
    assert tasks.release_due_messages() == 0 and len(httpserver.log) == 1


def test_gives_up_after_the_last_attempt(queued, httpserver):
    httpserver.expect_request(SEND, method="POST").respond_with_data("busy", 503)
    for _ in range(5):
        gate_and_send(lead=queued.lead, message=Message.objects.get(pk=queued.pk))
        _due_now(queued)
    queued.refresh_from_db()
    assert queued.status == "failed" and "gave up after 5 attempts" in queued.error
    assert len(httpserver.log) == 5
