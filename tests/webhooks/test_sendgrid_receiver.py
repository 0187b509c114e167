import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone

from outcomes.models import OutcomeLabel
from tests.webhooks.conftest import SENDGRID_PATH, body_of, sendgrid_event
from webhooks.models import WebhookEvent
from webhooks.services import webhook_events_sweep
from webhooks.signatures import SignatureRejected, sendgrid_signature_check
from webhooks.tasks import process_webhook_event, process_webhook_events

pytestmark = pytest.mark.django_db

# A well-formed signature from SendGrid's tests, made by another key over another payload.
WRONG_SIGNATURE = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0="
MOZILLA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"


def every_event_type(outcome) -> list[dict]:
    return [
        sendgrid_event(outcome, "processed", 0),
        sendgrid_event(outcome, "deferred", 1, response="421 try later", attempt="1"),
        sendgrid_event(outcome, "delivered", 2, response="250 OK"),
        sendgrid_event(outcome, "open", 3, useragent=MOZILLA, ip="203.0.113.9"),
        sendgrid_event(outcome, "click", 4, url="https://example.com/pricing", useragent=MOZILLA, ip="203.0.113.9"),
        sendgrid_event(outcome, "dropped", 5, reason="Bounced Address"),
        sendgrid_event(outcome, "bounce", 6, type="blocked", reason="550 blocked by policy"),
        sendgrid_event(outcome, "bounce", 7, type="bounce", status="5.0.0", reason="550 no such user"),
        sendgrid_event(outcome, "spamreport", 8),
        sendgrid_event(outcome, "unsubscribe", 9),
        sendgrid_event(outcome, "group_unsubscribe", 10, asm_group_id=42, url="https://x", useragent=MOZILLA),
    ]


def test_a_signed_batch_of_every_event_type_updates_the_outcome(
    post_signed, outcome, django_capture_on_commit_callbacks
):
    body = body_of(every_event_type(outcome))

    with django_capture_on_commit_callbacks() as callbacks:
        response = post_signed(body)

    assert response.status_code == 200
    assert response.json() == {"received": 11, "new": 11}
    assert len(callbacks) == 1
    events = WebhookEvent.objects.order_by("id")
    assert {event.signature for event in events} == {WebhookEvent.Signature.VALID}
    for event in events:
        process_webhook_event(event.pk)

    outcome.refresh_from_db()
    assert outcome.delivered
    assert outcome.opened and outcome.open_count == 1
    assert outcome.clicked and outcome.click_count == 1
    assert outcome.bounced and outcome.bounce_type == OutcomeLabel.BounceType.HARD
    assert outcome.bounce_reason == "550 no such user"
    assert outcome.spam_reported and outcome.unsubscribed
    states = dict(events.values_list("provider_event_id", "state"))
    assert states.pop("evt-processed-0") == WebhookEvent.State.IGNORED
    assert set(states.values()) == {WebhookEvent.State.PROCESSED}
    events = WebhookEvent.objects.all()
    assert {event.organization_id for event in events} == {outcome.organization_id}
    assert all(event.processed_at and event.attempts == 1 for event in events)

    # SendGrid delivers the same batch again: acknowledged, nothing new, counters unchanged.
    with django_capture_on_commit_callbacks() as callbacks:
        again = post_signed(body)
    assert again.status_code == 200
    assert again.json() == {"received": 11, "new": 0}
    assert callbacks == []
    for event in WebhookEvent.objects.all():
        process_webhook_event(event.pk)
    outcome.refresh_from_db()
    assert (outcome.open_count, outcome.click_count) == (1, 1)
    assert WebhookEvent.objects.count() == 11


def test_the_alias_path_is_served_too(post_signed, outcome):
    response = post_signed(body_of([sendgrid_event(outcome, "delivered", 1)]), path="/webhook/sendgrid/")

    assert response.status_code == 200
    assert response.json()["new"] == 1


def test_stored_headers_drop_credentials(post_signed, outcome):
    post_signed(body_of([sendgrid_event(outcome, "delivered", 1)]), Cookie="x", Authorization="Bearer s")

    headers = {name.lower() for name in WebhookEvent.objects.get().headers}
    assert "authorization" not in headers and "cookie" not in headers
    assert "x-twilio-email-event-webhook-signature" in headers


@pytest.mark.parametrize(
    "overrides",
    [
        {"X-Twilio-Email-Event-Webhook-Signature": WRONG_SIGNATURE},
        {"X-Twilio-Email-Event-Webhook-Signature": "not base64!"},
        {"X-Twilio-Email-Event-Webhook-Signature": ""},
        {"X-Twilio-Email-Event-Webhook-Timestamp": "yesterday"},
        {"X-Twilio-Email-Event-Webhook-Timestamp": "9" * 400},
        {"X-Twilio-Email-Event-Webhook-Timestamp": "-1"},
    ],
    ids=["wrong", "malformed", "missing", "bad-timestamp", "absurd-timestamp", "negative-timestamp"],
)
def test_a_bad_signature_is_refused(post_signed, outcome, overrides):
    response = post_signed(body_of([sendgrid_event(outcome, "delivered", 1)]), **overrides)

    assert response.status_code == 403
    assert response.json()["detail"]
    assert not WebhookEvent.objects.exists()


def test_a_tampered_body_is_refused(client, signer, outcome):
    body = body_of([sendgrid_event(outcome, "delivered", 1)])
    headers = signer.headers(body)

    response = client.post(
        SENDGRID_PATH, data=body.replace("delivered", "bounce"), content_type="application/json", headers=headers
    )

    assert response.status_code == 403


@pytest.mark.parametrize("skew", [-301, 301])
def test_a_timestamp_outside_five_minutes_is_refused(client, signer, outcome, skew):
    body = body_of([sendgrid_event(outcome, "delivered", 1)])
    headers = signer.headers(body, timestamp=int(time.time()) + skew)

    response = client.post(SENDGRID_PATH, data=body, content_type="application/json", headers=headers)

    assert response.status_code == 403
    assert "window" in response.json()["detail"]


def test_no_key_outside_debug_refuses_everything(client, settings, outcome, caplog):
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = ""
    settings.DEBUG = False

    response = client.post(
        SENDGRID_PATH, data=body_of([sendgrid_event(outcome, "delivered", 1)]), content_type="application/json"
    )

    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()
    assert "not set" in caplog.text


def test_no_key_in_debug_accepts_and_says_so(client, settings, outcome, caplog):
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = ""
    settings.DEBUG = True

    response = client.post(
        SENDGRID_PATH, data=body_of([sendgrid_event(outcome, "delivered", 1)]), content_type="application/json"
    )

    assert response.status_code == 200
    assert WebhookEvent.objects.get().signature == WebhookEvent.Signature.NOT_CONFIGURED
    assert "DEBUG" in caplog.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "not JSON"),
        ('{"event": "delivered"}', "not a JSON array"),
        ('[{"event": "delivered"}]', "sg_event_id"),
        ('[{"sg_event_id": "e1"}]', "'event'"),
        ("[1]", "not an object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
    ids=["not-json", "object", "no-event-id", "no-event", "not-objects", "deep"],
)
def test_a_malformed_body_gets_400_and_nothing_is_stored(post_signed, body, reason):
    response = post_signed(body)

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert not WebhookEvent.objects.exists()


def test_a_broker_outage_still_answers_2xx_and_the_sweep_gets_the_events(
    post_signed, outcome, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    def broker_down(*args, **kwargs):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(process_webhook_events, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signed(body_of([sendgrid_event(outcome, "delivered", 1)]))

    assert response.status_code == 200  # stored: SendGrid must not resend it
    event = WebhookEvent.objects.get()
    assert event.state == WebhookEvent.State.RECEIVED
    assert "sweep will pick the events up" in caplog.text
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(minutes=2))
    with (
        mock.patch("webhooks.tasks.process_webhook_events.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert webhook_events_sweep() == 1
    delay.assert_called_once_with([event.pk])


def test_only_post_is_allowed(client, signer):
    assert client.get(SENDGRID_PATH).status_code == 405


# SendGrid's own signed test vector (sendgrid-python test/unit/test_eventwebhook.py): compact sorted JSON + CRLF.
VECTOR_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpV"
    "KS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
VECTOR_SIGNATURE = "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM="
VECTOR_TIMESTAMP = "1600112502"
VECTOR_BODY = (
    '[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address",'
    '"sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",'
    '"sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",'
    '"smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]\r\n'
)
VECTOR_HEADERS = {
    "X-Twilio-Email-Event-Webhook-Signature": VECTOR_SIGNATURE,
    "X-Twilio-Email-Event-Webhook-Timestamp": VECTOR_TIMESTAMP,
}


@pytest.fixture
def at_vector_time(settings, monkeypatch):
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = VECTOR_KEY
    monkeypatch.setattr("webhooks.signatures._now", lambda: int(VECTOR_TIMESTAMP) + 10)


def test_sendgrid_test_vector_verifies(at_vector_time):
    assert sendgrid_signature_check(raw_body=VECTOR_BODY, headers=VECTOR_HEADERS) == WebhookEvent.Signature.VALID
    with pytest.raises(SignatureRejected):  # without the trailing CRLF it is not what SendGrid signed
        sendgrid_signature_check(raw_body=VECTOR_BODY.rstrip(), headers=VECTOR_HEADERS)


def test_sendgrid_test_vector_is_received(client, at_vector_time, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(SENDGRID_PATH, data=VECTOR_BODY, content_type="application/json", headers=VECTOR_HEADERS)

    assert response.status_code == 200
    assert response.json() == {"received": 1, "new": 1}
    assert len(callbacks) == 1
    event = WebhookEvent.objects.get()
    assert (event.provider_event_id, event.event_type) == (
        "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
        "dropped",
    )


def test_a_public_key_pasted_as_pem_works_too(post_signed, signer, settings, outcome):
    body64 = signer.public_key
    lines = [body64[i : i + 64] for i in range(0, len(body64), 64)]
    settings.SENDGRID_WEBHOOK_PUBLIC_KEY = "\n".join(["-----BEGIN PUBLIC KEY-----", *lines, "-----END PUBLIC KEY-----"])

    response = post_signed(body_of([sendgrid_event(outcome, "delivered", 1)]))

    assert response.status_code == 200
