"""An inbound STOP marks the last SMS's outcome unsubscribed (in every organization), besides suppressing."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone
from twilio.request_validator import RequestValidator

from agents.models import Message, Suppression
from tests.factories import LeadFactory, MessageFactory, OutcomeLabelFactory
from webhooks.models import WebhookEvent
from webhooks.tasks import process_webhook_event

pytestmark = pytest.mark.django_db

TOKEN = "12345"
BASE_URL = "https://rex.example.com"
TWILIO_PATH = "/webhooks/twilio"
PHONE = "+14155550123"


@pytest.fixture(autouse=True)
def twilio_settings(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = BASE_URL
    settings.DEBUG = False


def sms_outcome(*, lead=None, channel=Message.Channel.SMS, sent_minutes_ago: int = 60):
    """A sent message (each of its own mission) and its outcome."""
    lead = lead or LeadFactory(phone=PHONE)
    message = MessageFactory(
        organization=lead.organization,
        lead=lead,
        mission__organization=lead.organization,
        channel=channel,
        status=Message.Status.SENT,
        sending_domain=None,
        to_address=PHONE if channel == Message.Channel.SMS else lead.email,
        sent_at=timezone.now() - timedelta(minutes=sent_minutes_ago),
    )
    return OutcomeLabelFactory(message=message, organization=lead.organization, delivered=True)


def receive_sms(client, body: str, sid: str) -> WebhookEvent:
    """The real receiver, signed like Twilio, then what the enqueued task runs."""
    params = {"MessageSid": sid, "From": PHONE, "To": "+15005550006", "Body": body, "SmsStatus": "received"}
    signature = RequestValidator(TOKEN).compute_signature(BASE_URL + TWILIO_PATH, params)
    response = client.post(
        TWILIO_PATH,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 200
    event = WebhookEvent.objects.get(provider=WebhookEvent.Provider.TWILIO, provider_event_id=sid)
    process_webhook_event(event.pk)
    event.refresh_from_db()
    return event


def test_stop_marks_the_latest_sms_outcome_in_each_organization(client):
    lead = LeadFactory(phone=PHONE)
    older = sms_outcome(lead=lead, sent_minutes_ago=600)
    latest = sms_outcome(lead=lead, sent_minutes_ago=60)
    email = sms_outcome(lead=lead, channel=Message.Channel.EMAIL, sent_minutes_ago=5)
    elsewhere = sms_outcome()  # the same number, a lead of another organization

    event = receive_sms(client, "STOP", "SMstop1")

    assert event.state == WebhookEvent.State.PROCESSED
    for row in (older, latest, email, elsewhere):
        row.refresh_from_db()
    assert (latest.unsubscribed, elsewhere.unsubscribed) == (True, True)
    assert (older.unsubscribed, email.unsubscribed) == (False, False)
    reasons = Suppression.objects.filter(kind=Suppression.Kind.PHONE, value=PHONE).values_list("reason", flat=True)
    assert list(reasons) == [Suppression.Reason.SMS_STOP] * 2  # the STOP reason, not overwritten by the tracker


def test_stop_with_no_sms_sent_yet_only_suppresses(client):
    lead = LeadFactory(phone=PHONE)
    email = sms_outcome(lead=lead, channel=Message.Channel.EMAIL)

    event = receive_sms(client, "unsubscribe", "SMstop2")

    assert event.state == WebhookEvent.State.PROCESSED
    email.refresh_from_db()
    assert not email.unsubscribed
    assert Suppression.objects.filter(organization=lead.organization, kind=Suppression.Kind.PHONE).exists()


def test_start_does_not_touch_the_outcome(client):
    outcome = sms_outcome()

    receive_sms(client, "START", "SMstart1")

    outcome.refresh_from_db()
    assert not outcome.unsubscribed
