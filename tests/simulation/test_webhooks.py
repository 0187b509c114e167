"""The world's webhooks against REX's signature checks, parsers and receivers. If REX's checks or formats drift
from what the providers (and the world) send, these fail."""

import json
from urllib.parse import parse_qsl

import pytest
from django.conf import settings
from django.db.models import Q

from agents.models import Message, Suppression
from outcomes.models import OutcomeLabel
from tests.simulation.conftest import (
    ClientTransport,
    RecordingTransport,
    install,
    process_stored_events,
    responder_for,
    scripted_channel,
    scripted_world,
    send,
)
from webhooks.crm_formats import generic_events_parse
from webhooks.inbox import inbox_messages_parse
from webhooks.models import WebhookEvent
from webhooks.services import sendgrid_events_parse, twilio_event_identity
from webhooks.signatures import (
    SignatureRejected,
    rex_hmac_signature_check,
    sendgrid_signature_check,
    twilio_signature_check,
)

pytestmark = pytest.mark.django_db
VALID = WebhookEvent.Signature.VALID
MONTHS = 90 * 86400.0


def _sms_when_possible(lead) -> str:
    return "sms" if lead.phone and lead.key % 2 else "email"


@pytest.fixture
def recorded(credentials):
    world = scripted_world()
    setup = install(world)
    send(setup, world, channel_of=scripted_channel)
    transport = RecordingTransport()
    responder = responder_for(world, setup, credentials, transport)
    assert responder.collect() == len(world.leads)
    responder.advance(MONTHS)
    assert responder.pending() == 0
    return transport.requests


def _by_path(requests, path: str) -> list:
    return [request for request in requests if request.path.split("?")[0] == path]


def test_sendgrid_batches_pass_rexs_signature_check_and_parser(recorded):
    batches = _by_path(recorded, "/webhooks/sendgrid")
    assert batches
    event_ids = []
    for request in batches:
        raw = request.body.decode()
        assert raw.endswith("\r\n")
        assert sendgrid_signature_check(raw_body=raw, headers=request.headers) == VALID
        for event in sendgrid_events_parse(raw_body=raw):
            message = Message.objects.get(pk=int(event["rex_message_id"]))
            assert event["rex_outcome_id"] == message.custom_args["rex_outcome_id"]
            assert event["sg_message_id"].startswith(message.provider_message_id + ".filter")
            assert event["email"] == message.to_address
            event_ids.append(event["sg_event_id"])
    assert len(event_ids) == len(set(event_ids))


def test_a_tampered_sendgrid_batch_is_refused(recorded):
    request = _by_path(recorded, "/webhooks/sendgrid")[0]
    tampered = request.body.decode().replace('"delivered"', '"bounce"', 1)
    with pytest.raises(SignatureRejected):
        sendgrid_signature_check(raw_body=tampered, headers=request.headers)


def test_twilio_posts_pass_rexs_signature_check(recorded):
    posts = _by_path(recorded, "/webhooks/twilio")
    kinds = set()
    for request in posts:
        params = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        url = settings.PUBLIC_BASE_URL + request.path
        assert twilio_signature_check(url=url, params=params, headers=request.headers) == VALID
        kinds.add(twilio_event_identity(params)[1])
    assert {"status.sent", "status.delivered"} <= kinds


def test_inbox_and_crm_posts_pass_rexs_hmac_check_and_parsers(recorded):
    inbox = _by_path(recorded, "/inbox/sync")
    crm = _by_path(recorded, "/webhooks/crm/meetings") + _by_path(recorded, "/webhooks/crm/deals")
    assert inbox and crm
    for request in inbox:
        assert rex_hmac_signature_check(raw_body=request.body, headers=request.headers, setting="INBOX_WEBHOOK_SECRET")
        assert inbox_messages_parse(raw_body=request.body)
    for request in crm:
        assert rex_hmac_signature_check(raw_body=request.body, headers=request.headers, setting="CRM_WEBHOOK_SECRET")
        endpoint = request.path.rsplit("/", 1)[-1]
        assert generic_events_parse(body=json.loads(request.body), endpoint=endpoint)
    with pytest.raises(SignatureRejected):
        rex_hmac_signature_check(
            raw_body=inbox[0].body + b" ", headers=inbox[0].headers, setting="INBOX_WEBHOOK_SECRET"
        )


def test_sms_stays_on_the_sandbox_while_twilio_signatures_are_checked(small_world, credentials):
    """The world gives REX the Twilio auth token (to verify callbacks) but no account SID, so REX keeps its
    sandbox SMS provider: nothing could reach a real carrier."""
    setup = install(small_world)
    sent = send(setup, small_world, channel_of=_sms_when_possible)

    providers = {message.channel: message.provider for message in sent}
    assert providers == {"email": "sandbox-email", "sms": "sandbox-sms"}
    assert settings.TWILIO_AUTH_TOKEN


# --- End to end through REX's views ------------------------------------------------------------------------


def _posted_everything(transport: ClientTransport, responder) -> None:
    rejected = [(path, status) for path, status in transport.statuses if not 200 <= status < 300]
    assert rejected == [] and responder.errors == []
    assert WebhookEvent.objects.exists()
    assert set(WebhookEvent.objects.values_list("signature", flat=True)) == {VALID}


def test_a_natural_run_ends_with_rexs_outcomes_matching_the_world(small_world, credentials, client):
    setup = install(small_world)
    send(setup, small_world, channel_of=_sms_when_possible)
    transport = ClientTransport(client)
    responder = responder_for(small_world, setup, credentials, transport)

    responder.collect()
    responder.advance(MONTHS)
    process_stored_events()

    _posted_everything(transport, responder)
    states = set(WebhookEvent.objects.values_list("state", flat=True))
    assert states <= {WebhookEvent.State.PROCESSED, WebhookEvent.State.IGNORED}
    truth = [fate.truth for fate in responder.fates.values()]
    outcomes = OutcomeLabel.objects.filter(organization=setup.organization)
    assert outcomes.filter(delivered=True).count() == sum(bool(t.get("delivered")) for t in truth)
    hard = sum(t.get("bounced") in ("bounce", "blocked", "landline", "dead") for t in truth)
    assert outcomes.filter(bounced=True).count() == hard
    human_replies = sum(bool(t.get("replied")) for t in truth)
    assert outcomes.filter(replied=True).count() == human_replies  # auto-replies are not counted
    assert outcomes.filter(meeting_booked=True).count() == sum(bool(t.get("meeting")) for t in truth)
    assert outcomes.filter(deal_closed=True).count() == sum(t.get("deal") == "won" for t in truth)


def test_every_kind_of_answer_lands_on_the_right_outcome(credentials, client):
    world = scripted_world()
    setup = install(world)
    send(setup, world, channel_of=scripted_channel)
    transport = ClientTransport(client)
    responder = responder_for(world, setup, credentials, transport)

    responder.collect()
    responder.advance(MONTHS)
    process_stored_events()

    _posted_everything(transport, responder)
    row = {o.lead.email: o for o in OutcomeLabel.objects.filter(organization=setup.organization).select_related("lead")}
    by_key = {lead.key: row[lead.email] for lead in world.leads}
    suppressed = set(Suppression.objects.filter(organization=setup.organization).values_list("value", "reason"))
    lead = {w.key: w for w in world.leads}

    assert by_key[0].bounced and by_key[0].bounce_type == "hard" and not by_key[0].delivered
    assert (lead[0].email, Suppression.Reason.HARD_BOUNCE) in suppressed
    assert by_key[1].bounced and by_key[1].bounce_type == "blocked"
    assert by_key[2].delivered and by_key[2].bot_open_count >= 1 and not by_key[2].opened
    assert by_key[3].bot_click_count >= 1 and not by_key[3].clicked
    won = by_key[4]
    assert won.replied and won.meeting_booked and won.meeting_completed and won.opportunity_created
    assert won.deal_closed and won.deal_value and won.training_label == OutcomeLabel.Label.POSITIVE
    assert by_key[5].spam_reported and (lead[5].email, Suppression.Reason.SPAM_REPORT) in suppressed
    assert (lead[6].email, Suppression.Reason.UNSUBSCRIBE) in suppressed  # one-click POST
    assert (lead[7].email, Suppression.Reason.UNSUBSCRIBE) in suppressed and by_key[7].click_count == 1  # page
    assert by_key[8].delivered and not by_key[8].replied  # out-of-office: not a reply
    assert WebhookEvent.objects.filter(provider=WebhookEvent.Provider.INBOX, error__icontains="auto-reply").exists()
    sms_won = by_key[9]
    assert sms_won.channel == "sms" and sms_won.replied and sms_won.deal_closed
    assert (lead[10].phone, Suppression.Reason.SMS_STOP) in suppressed
    assert by_key[11].bounced and (lead[11].phone, Suppression.Reason.HARD_BOUNCE) in suppressed
    assert not WebhookEvent.objects.filter(~Q(state__in=["processed", "ignored"])).exists()
