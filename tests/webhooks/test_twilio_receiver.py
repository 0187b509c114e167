from urllib.parse import urlencode

import pytest
from django.utils import timezone
from twilio.request_validator import RequestValidator

from agents.models import Lead, Message, Suppression
from outcomes.models import OutcomeLabel
from tests.factories import LeadFactory, MessageFactory, OutcomeLabelFactory, SuppressionFactory
from webhooks.models import WebhookEvent
from webhooks.tasks import process_webhook_event

pytestmark = pytest.mark.django_db

TOKEN = "12345"
BASE_URL = "https://rex.example.com"
TWILIO_PATH = "/webhooks/twilio"
PHONE = "+14155550123"
TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@pytest.fixture(autouse=True)
def twilio_settings(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.PUBLIC_BASE_URL = BASE_URL
    settings.DEBUG = False


@pytest.fixture
def sms_outcome(db):
    message = MessageFactory(
        channel=Message.Channel.SMS,
        status=Message.Status.SENT,
        sending_domain=None,
        from_address="+15005550006",
        to_address=PHONE,
        lead__phone=PHONE,
        provider="twilio",
        provider_message_id="SM0123456789abcdef0123456789abcdef",
        sent_at=timezone.now(),
    )
    return OutcomeLabelFactory(message=message, organization=message.organization, delivered=False)


@pytest.fixture
def post_twilio(client, django_capture_on_commit_callbacks):
    """POSTs form params signed like Twilio (URL = public base + path + query), then processes what it stored."""

    def post(params: dict, path: str = TWILIO_PATH, signature: str | None = None, **headers):
        if signature is None:
            signature = RequestValidator(TOKEN).compute_signature(BASE_URL + path, params)
        before = set(WebhookEvent.objects.values_list("id", flat=True))
        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post(
                path,
                data=urlencode(params),
                content_type="application/x-www-form-urlencoded",
                headers={"X-Twilio-Signature": signature, **headers},
            )
        new_ids = set(WebhookEvent.objects.values_list("id", flat=True)) - before
        assert len(callbacks) == len(new_ids)
        for event_id in sorted(new_ids):
            process_webhook_event(event_id)
        return response

    return post


def status_callback(outcome, status: str, **fields) -> dict:
    message = outcome.message
    return {
        "MessageSid": message.provider_message_id,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": message.from_address,
        "To": message.to_address,
        "ApiVersion": "2010-04-01",
        "SmsStatus": status,
        "MessageStatus": status,
        **fields,
    }


def inbound(body: str, sender: str = PHONE, sid: str = "SMinbound0001") -> dict:
    return {
        "MessageSid": sid,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "MessagingServiceSid": "MG0123456789abcdef0123456789abcdef",
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "FromCountry": "US",
    }


def test_the_twilio_docs_vector():
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+12349013030",
        "Digits": "1234",
        "From": "+12349013030",
        "To": "+18005551212",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"

    assert RequestValidator("12345").compute_signature(url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert RequestValidator("12345").validate(url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")


def test_delivered_marks_the_outcome_and_a_repeat_or_late_sent_changes_nothing(post_twilio, sms_outcome):
    response = post_twilio(status_callback(sms_outcome, "delivered"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    event = WebhookEvent.objects.get()
    assert event.provider == WebhookEvent.Provider.TWILIO
    assert event.provider_event_id == "SM0123456789abcdef0123456789abcdef:delivered"
    assert event.event_type == "status.delivered"
    assert event.signature == WebhookEvent.Signature.VALID
    assert event.state == WebhookEvent.State.PROCESSED
    assert event.organization_id == sms_outcome.organization_id
    assert "MessageStatus=delivered" in event.raw_body
    sms_outcome.refresh_from_db()
    assert sms_outcome.delivered and sms_outcome.delivered_at
    delivered_at = sms_outcome.delivered_at

    assert post_twilio(status_callback(sms_outcome, "delivered")).status_code == 200
    assert WebhookEvent.objects.count() == 1

    post_twilio(status_callback(sms_outcome, "sent"))
    sent = WebhookEvent.objects.get(event_type="status.sent")
    assert sent.state == WebhookEvent.State.PROCESSED
    sms_outcome.refresh_from_db()
    assert sms_outcome.delivered and sms_outcome.delivered_at == delivered_at
    assert not sms_outcome.bounced


def test_the_alias_path_is_served_too(post_twilio, sms_outcome):
    response = post_twilio(status_callback(sms_outcome, "delivered"), path="/webhook/twilio/")

    assert response.status_code == 200
    assert WebhookEvent.objects.get().state == WebhookEvent.State.PROCESSED


def test_failed_with_21610_is_a_hard_bounce_and_suppresses_the_number(post_twilio, sms_outcome):
    response = post_twilio(status_callback(sms_outcome, "failed", ErrorCode="21610"))

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.state == WebhookEvent.State.PROCESSED, event.error
    sms_outcome.refresh_from_db()
    assert sms_outcome.bounced
    assert sms_outcome.bounce_type == OutcomeLabel.BounceType.HARD
    assert sms_outcome.bounce_reason == "Twilio 21610"
    assert Suppression.objects.filter(
        organization=sms_outcome.organization, kind=Suppression.Kind.PHONE, value=PHONE
    ).exists()


def test_undelivered_with_another_code_is_a_soft_bounce_and_no_suppression(post_twilio, sms_outcome):
    post_twilio(status_callback(sms_outcome, "undelivered", ErrorCode="30007"))  # carrier filtering

    assert WebhookEvent.objects.get().state == WebhookEvent.State.PROCESSED
    sms_outcome.refresh_from_db()
    assert sms_outcome.bounced  # final for this message
    assert not Suppression.objects.exists()  # the number may work another time
    assert sms_outcome.bounce_type == OutcomeLabel.BounceType.SOFT
    assert sms_outcome.bounce_reason == "Twilio 30007"


def test_a_status_for_an_unknown_sid_is_kept_unmatched(post_twilio, sms_outcome):
    post_twilio({**status_callback(sms_outcome, "delivered"), "MessageSid": "SMunknown"})

    assert WebhookEvent.objects.get().state == WebhookEvent.State.UNMATCHED


@pytest.mark.parametrize("signature", ["", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="], ids=["missing", "wrong"])
def test_a_bad_signature_is_refused(post_twilio, sms_outcome, signature):
    response = post_twilio(status_callback(sms_outcome, "delivered"), signature=signature)

    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()


def test_a_signature_over_another_url_is_refused(client, sms_outcome):
    params = status_callback(sms_outcome, "delivered")
    signature = RequestValidator(TOKEN).compute_signature("http://testserver" + TWILIO_PATH, params)

    response = client.post(
        TWILIO_PATH,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
    )

    assert response.status_code == 403


def test_a_query_string_is_part_of_the_signed_url(post_twilio, sms_outcome):
    response = post_twilio(status_callback(sms_outcome, "delivered"), path=TWILIO_PATH + "?org=7")

    assert response.status_code == 200


def test_no_token_is_refused_unless_debug(post_twilio, sms_outcome, settings):
    settings.TWILIO_AUTH_TOKEN = ""

    refused = post_twilio(status_callback(sms_outcome, "delivered"), signature="x")
    assert refused.status_code == 403
    assert not WebhookEvent.objects.exists()

    settings.DEBUG = True
    accepted = post_twilio(status_callback(sms_outcome, "delivered"), signature="")
    assert accepted.status_code == 200
    assert WebhookEvent.objects.get().signature == WebhookEvent.Signature.NOT_CONFIGURED


def test_no_message_sid_is_malformed(post_twilio, sms_outcome):
    params = status_callback(sms_outcome, "delivered")
    del params["MessageSid"]

    response = post_twilio(params)

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_inbound_stop_suppresses_the_number_in_every_organization_and_start_lifts_it(post_twilio, sms_outcome):
    other_lead = LeadFactory(phone=PHONE)

    response = post_twilio(inbound(" stop ", sid="SMstop"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content.decode() == TWIML
    event = WebhookEvent.objects.get()
    assert (event.provider_event_id, event.event_type, event.state) == ("SMstop", "inbound", "processed")
    suppressions = Suppression.objects.filter(kind=Suppression.Kind.PHONE, value=PHONE)
    assert set(suppressions.values_list("organization_id", flat=True)) == {
        sms_outcome.organization_id,
        other_lead.organization_id,
    }
    assert set(suppressions.values_list("reason", flat=True)) == {Suppression.Reason.SMS_STOP}
    other_lead.refresh_from_db()
    assert other_lead.state == Lead.State.SUPPRESSED
    sms_outcome.refresh_from_db()
    assert not sms_outcome.replied

    post_twilio(inbound("START", sid="SMstart"))

    assert not Suppression.objects.filter(kind=Suppression.Kind.PHONE, value=PHONE).exists()
    other_lead.refresh_from_db()
    assert other_lead.state == Lead.State.NEW


def test_start_leaves_other_suppressions_alone(post_twilio, sms_outcome):
    SuppressionFactory(organization=sms_outcome.organization, kind=Suppression.Kind.PHONE, value="+14155550199")

    post_twilio(inbound("Start"))

    assert Suppression.objects.filter(value="+14155550199").exists()


def test_start_lifts_only_the_sms_opt_out_not_a_bounce_or_crm_block(post_twilio, sms_outcome):
    for reason in (Suppression.Reason.HARD_BOUNCE, Suppression.Reason.CRM_DO_NOT_CONTACT):
        other = LeadFactory(phone=PHONE)
        SuppressionFactory(organization=other.organization, kind=Suppression.Kind.PHONE, value=PHONE, reason=reason)

    post_twilio(inbound("UNSTOP"))

    kept = Suppression.objects.filter(kind=Suppression.Kind.PHONE, value=PHONE).values_list("reason", flat=True)
    assert sorted(kept) == sorted([Suppression.Reason.HARD_BOUNCE, Suppression.Reason.CRM_DO_NOT_CONTACT])


def test_yes_is_a_reply_unless_the_number_opted_out(post_twilio, sms_outcome):
    post_twilio(inbound("Yes", sid="SMyes1"))

    sms_outcome.refresh_from_db()
    assert sms_outcome.replied  # an answer to the message, not an opt-in

    post_twilio(inbound("STOP", sid="SMstop1"))
    post_twilio(inbound("yes", sid="SMyes2"))

    assert not Suppression.objects.filter(kind=Suppression.Kind.PHONE, value=PHONE).exists()  # opted back in


def test_advanced_opt_out_type_is_followed_for_custom_keywords(post_twilio, sms_outcome):
    post_twilio({**inbound("ARRET", sid="SMarret"), "OptOutType": "STOP"})

    assert Suppression.objects.filter(
        kind=Suppression.Kind.PHONE, value=PHONE, reason=Suppression.Reason.SMS_STOP
    ).exists()
    sms_outcome.refresh_from_db()
    assert not sms_outcome.replied and sms_outcome.unsubscribed


def test_an_inbound_reply_marks_the_latest_sms_outcome_replied(post_twilio, sms_outcome):
    response = post_twilio(inbound("Sounds good, call me Tuesday"))

    assert response.status_code == 200
    assert response.content.decode() == TWIML
    event = WebhookEvent.objects.get()
    assert event.state == WebhookEvent.State.PROCESSED, event.error
    assert event.organization_id == sms_outcome.organization_id
    sms_outcome.refresh_from_db()
    assert sms_outcome.replied and sms_outcome.delivered
    assert sms_outcome.reply_text == "Sounds good, call me Tuesday"

    assert post_twilio(inbound("Sounds good, call me Tuesday")).status_code == 200
    assert WebhookEvent.objects.count() == 1


def test_an_inbound_from_an_unknown_number_is_kept_unmatched(post_twilio, sms_outcome):
    post_twilio(inbound("who is this?", sender="+14155550188"))

    event = WebhookEvent.objects.get()
    assert event.state == WebhookEvent.State.UNMATCHED
    sms_outcome.refresh_from_db()
    assert not sms_outcome.replied


def test_processing_twice_is_a_no_op(post_twilio, sms_outcome):
    post_twilio(inbound("yes please"))
    event = WebhookEvent.objects.get()

    process_webhook_event(event.pk)

    event.refresh_from_db()
    assert event.attempts == 1
