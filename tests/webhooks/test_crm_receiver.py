"""The CRM receivers (/webhooks/crm/deals, /webhooks/crm/meetings): every format with real-shaped payloads,
signed the way each CRM signs, then processed as the Celery task would (webhook_event_process)."""

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from agents.models import Suppression
from outcomes.models import OutcomeLabel
from tests.factories import LeadFactory, OutcomeLabelFactory
from webhooks.models import WebhookEvent
from webhooks.services import webhook_event_process
from webhooks.signatures import CredentialsRejected, pipedrive_basic_auth_check

pytestmark = pytest.mark.django_db

PUBLIC_BASE_URL = "https://rex.example.com"
DEALS_PATH = "/webhooks/crm/deals"
MEETINGS_PATH = "/webhooks/crm/meetings"
CRM_SECRET = "crm-webhook-secret"
HUBSPOT_SECRET = "hubspot-client-secret"
PIPEDRIVE_USER = "rex-hook"
PIPEDRIVE_PASSWORD = "pd-pass-w0rd"
SALESFORCE_ORG = "00D5g000004XyZaEAK"  # the 18-character form
SALESFORCE_TOKEN = "sf-0utb0und-t0ken"


def rex_headers(body: bytes, *, secret: str = CRM_SECRET, timestamp: int | None = None) -> dict:
    """REX's generic scheme: hex HMAC-SHA256 over "<unix seconds>.<raw body>"."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Rex-Timestamp": stamp, "X-Rex-Signature": f"sha256={digest}"}


def hubspot_headers(body: bytes, *, uri: str, secret: str = HUBSPOT_SECRET, timestamp_ms: int | None = None) -> dict:
    """HubSpot's v3 signature, computed as its guide says: base64(HMAC-SHA256(secret, method + URI + body +
    timestamp)), the URI being the one HubSpot called (with the listed escapes decoded)."""
    stamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    source = "POST" + uri + body.decode() + stamp
    digest = hmac.new(secret.encode(), source.encode(), hashlib.sha256).digest()
    return {"X-HubSpot-Signature-v3": base64.b64encode(digest).decode(), "X-HubSpot-Request-Timestamp": stamp}


def basic_auth(user: str = PIPEDRIVE_USER, password: str = PIPEDRIVE_PASSWORD) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def dumps(value) -> bytes:
    return json.dumps(value).encode()


def hubspot_event(event_id: int, subscription: str, object_id: int = 1234, **fields) -> dict:
    return {
        "eventId": event_id,
        "subscriptionId": 2881778,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": 1_760_000_000_000 + event_id,
        "subscriptionType": subscription,
        "attemptNumber": 0,
        "objectId": object_id,
        "changeSource": "CRM_UI",
        **fields,
    }


def pipedrive_body(entity: str, action: str, data: dict | None, *, event_id: str = "7e0c6a2c-1b4b", **meta) -> dict:
    return {
        "meta": {
            "action": action,
            "entity": entity,
            "entity_id": str((data or {}).get("id", 1)),
            "company_id": "12345",
            "user_id": "67890",
            "id": event_id,
            "timestamp": "2025-05-01T10:00:00.000Z",
            "type": "general",
            "version": "2.0",
            "webhook_id": "222",
            "attempt": 1,
            **meta,
        },
        "data": data,
        "previous": None,
    }


def salesforce_envelope(notifications: list[tuple[str, str, dict]], *, organization_id: str = SALESFORCE_ORG) -> bytes:
    """An Outbound Message as Salesforce sends it; ``notifications`` is ``[(notification id, sObject type,
    {field: value or None})]``."""
    items = []
    for notification_id, sobject_type, fields in notifications:
        values = "".join(
            f'<sf:{name} xsi:nil="true"/>' if value is None else f"<sf:{name}>{value}</sf:{name}>"
            for name, value in fields.items()
        )
        items.append(
            f"<Notification><Id>{notification_id}</Id>"
            f'<sObject xsi:type="sf:{sobject_type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"{values}</sObject></Notification>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{organization_id}</OrganizationId>"
        "<ActionId>04k5g000000GmaNAAS</ActionId>"
        "<SessionId>00D5g000004XyZa!AQ4AQLive.Session.Token</SessionId>"
        "<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/59.0/00D5g000004XyZa</EnterpriseUrl>"
        "<PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/59.0/00D5g000004XyZa</PartnerUrl>"
        + "".join(items)
        + "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


SENT_AT = datetime(2025, 5, 1, 12, tzinfo=UTC)
JSON = "application/json"


@pytest.fixture(autouse=True)
def crm_settings(settings):
    settings.DEBUG = False
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    settings.CRM_WEBHOOK_SECRET = CRM_SECRET
    settings.HUBSPOT_CLIENT_SECRET = HUBSPOT_SECRET
    settings.PIPEDRIVE_WEBHOOK_USER = PIPEDRIVE_USER
    settings.PIPEDRIVE_WEBHOOK_PASSWORD = PIPEDRIVE_PASSWORD
    settings.SALESFORCE_ORGANIZATION_ID = SALESFORCE_ORG[:15]  # the 15-character form matches the 18
    settings.SALESFORCE_WEBHOOK_TOKEN = SALESFORCE_TOKEN
    settings.HUBSPOT_ACCESS_TOKEN = ""  # no CRM API lookups here (tests/webhooks/test_crm_lookup.py has them)
    settings.PIPEDRIVE_API_TOKEN = ""
    return settings


@pytest.fixture
def outcome(db):
    return OutcomeLabelFactory(sent_at=SENT_AT)


def process_all() -> dict[str, WebhookEvent]:
    """What the enqueued task runs, for every stored event; returns them by provider event id."""
    for event_id in WebhookEvent.objects.order_by("id").values_list("id", flat=True):
        webhook_event_process(event_id=event_id)
    return {event.provider_event_id: event for event in WebhookEvent.objects.all()}


def post_generic(client, events, *, path: str = DEALS_PATH, headers: dict | None = None):
    body = dumps(events)
    return client.post(path, data=body, content_type=JSON, headers=rex_headers(body) if headers is None else headers)


# --- Generic JSON ---------------------------------------------------------------------------------


def test_a_signed_generic_batch_is_stored_once_and_records_the_won_deal(
    client, outcome, django_capture_on_commit_callbacks
):
    events = [
        {
            "event_id": "crm-1",
            "event": "opportunity.created",
            "occurred_at": "2025-05-02T09:00:00Z",
            "outcome_id": outcome.pk,
            "deal": {"id": "D-9", "value": "9000.00", "currency": "USD"},
        },
        {
            "event_id": "crm-2",
            "event": "deal.won",
            "occurred_at": 1_747_843_200,
            "outcome_id": outcome.pk,
            "deal": {"id": "D-9", "value": 12000.5, "currency": "USD", "closed_at": "2025-05-21T16:00:00+00:00"},
        },
    ]
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_generic(client, events)

    assert response.status_code == 200
    assert response.json() == {"received": 2, "new": 2}
    assert len(callbacks) == 1  # one task for the batch
    stored = WebhookEvent.objects.order_by("id")
    assert [(e.provider, e.provider_event_id, e.event_type, e.signature) for e in stored] == [
        (WebhookEvent.Provider.CRM_GENERIC, "crm-1", "opportunity.created", WebhookEvent.Signature.VALID),
        (WebhookEvent.Provider.CRM_GENERIC, "crm-2", "deal.won", WebhookEvent.Signature.VALID),
    ]
    assert json.loads(stored[1].raw_body) == events[1]

    processed = process_all()
    assert {event.state for event in processed.values()} == {WebhookEvent.State.PROCESSED}
    assert {event.organization_id for event in processed.values()} == {outcome.organization_id}
    outcome.refresh_from_db()
    assert outcome.opportunity_created and outcome.deal_closed and not outcome.deal_lost
    assert outcome.deal_value == Decimal("12000.50")
    assert outcome.deal_closed_at == datetime(2025, 5, 21, 16, tzinfo=UTC)
    assert outcome.time_to_close_days == 20
    assert (outcome.training_label, outcome.training_weight) == (OutcomeLabel.Label.POSITIVE, 10.0)

    # The CRM delivers the same batch again: acknowledged, nothing new stored or enqueued.
    with django_capture_on_commit_callbacks() as callbacks:
        again = post_generic(client, events)
    assert again.status_code == 200
    assert again.json() == {"received": 2, "new": 0}
    assert callbacks == []
    assert WebhookEvent.objects.count() == 2


def test_a_single_generic_object_on_the_meetings_endpoint_records_a_completed_meeting(client, outcome):
    event = {"event_id": "mtg-7", "event": "meeting.completed", "lead_id": outcome.lead_id, "meeting": {"id": "M-1"}}

    response = post_generic(client, event, path=MEETINGS_PATH + "/")

    assert response.status_code == 200
    assert response.json() == {"received": 1, "new": 1}
    assert process_all()["mtg-7"].state == WebhookEvent.State.PROCESSED
    outcome.refresh_from_db()
    assert outcome.meeting_booked and outcome.meeting_completed
    assert (outcome.training_label, outcome.training_weight) == (OutcomeLabel.Label.POSITIVE, 7.0)


def test_an_event_of_the_other_endpoint_is_stored_as_ignored_and_the_rest_of_the_batch_recorded(
    client, outcome, django_capture_on_commit_callbacks
):
    events = [
        {"event_id": "ok-1", "event": "meeting.booked", "outcome_id": outcome.pk},
        {"event_id": "other-2", "event": "deal.won", "outcome_id": outcome.pk, "deal": {"value": 500}},
        {"event_id": "dnc-3", "event": "contact.do_not_contact", "outcome_id": outcome.pk},  # either endpoint
    ]

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_generic(client, events, path=MEETINGS_PATH)

    assert response.status_code == 200
    assert response.json() == {"received": 3, "new": 2}  # the ignored one is stored, not queued
    assert len(callbacks) == 1
    ignored = WebhookEvent.objects.get(provider_event_id="other-2")
    assert ignored.state == WebhookEvent.State.IGNORED and ignored.processed_at is not None
    assert "/webhooks/crm/meetings" in ignored.error and "/webhooks/crm/deals" in ignored.error
    stored = process_all()
    assert stored["ok-1"].state == stored["dnc-3"].state == WebhookEvent.State.PROCESSED
    assert stored["other-2"].state == WebhookEvent.State.IGNORED
    outcome.refresh_from_db()
    assert outcome.meeting_booked and not outcome.deal_closed and outcome.deal_value is None
    assert Suppression.objects.filter(value=outcome.lead.email.lower()).exists()

    # The same events on /deals: the meeting is the one ignored now (a new event id, else it is a repeat).
    again = post_generic(client, [{**events[0], "event_id": "ok-4"}], path=DEALS_PATH)
    assert again.json() == {"received": 1, "new": 0}
    assert WebhookEvent.objects.get(provider_event_id="ok-4").state == WebhookEvent.State.IGNORED


def test_an_upper_case_hex_signature_is_the_same_signature(client, outcome):
    body = dumps({"event_id": "hex-1", "event": "deal.lost", "outcome_id": outcome.pk})
    headers = rex_headers(body)
    headers["X-Rex-Signature"] = "sha256=" + headers["X-Rex-Signature"].removeprefix("sha256=").upper()

    response = client.post(DEALS_PATH, data=body, content_type=JSON, headers=headers)

    assert response.status_code == 200
    assert WebhookEvent.objects.get().signature == WebhookEvent.Signature.VALID


def test_a_generic_event_with_a_meta_key_is_not_taken_for_pipedrive(client, outcome):
    event = {"event_id": "m-1", "event": "deal.lost", "outcome_id": outcome.pk, "meta": {"source": "zapier"}}

    signed = post_generic(client, event)
    unsigned = client.post(DEALS_PATH, data=dumps({**event, "event_id": "m-2"}), content_type=JSON)

    assert signed.status_code == 200
    assert WebhookEvent.objects.get().provider == WebhookEvent.Provider.CRM_GENERIC
    assert unsigned.status_code == 401  # REX's HMAC is missing, not Pipedrive's basic credentials
    assert unsigned.json() == {"detail": "Missing signature."}


VALID = {"event_id": "e-1", "event": "deal.won", "email": "maya@brightlane.example.com"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "neither JSON"),
        (b"[]", "empty array"),
        (dumps([{"event": "deal.won", "outcome_id": 1}]), "'event_id'"),
        (dumps([{**VALID, "event_id": "x" * 256}]), "'event_id'"),
        (dumps([{"event_id": "e-1", "event": "deal.won"}]), "one of 'outcome_id', 'lead_id' or 'email'"),
        (dumps([{**VALID, "event": "deal.signed"}]), "'event' must be one of"),
        (dumps([{**VALID, "event": ["deal.won"]}]), "'event' must be one of"),
        (dumps([{**VALID, "occurred_at": "yesterday"}]), "'occurred_at'"),
        (dumps([{**VALID, "outcome_id": True}]), "'outcome_id'"),
        (dumps([{**VALID, "lead_id": "twelve"}]), "'lead_id'"),
        (dumps([{**VALID, "email": "not-an-email"}]), "'email'"),
        (dumps([{**VALID, "deal": "12000"}]), "'deal' must be an object"),
        (dumps([{**VALID, "deal": {"value": "12k"}}]), "'deal.value'"),
        (dumps([{**VALID, "deal": {"value": -5}}]), "'deal.value'"),
        (dumps([{**VALID, "deal": {"closed_at": "21/05/2025"}}]), "'deal.closed_at'"),
        (dumps([{**VALID, "meeting": {"starts_at": 10**20}}]), "'meeting.starts_at'"),
        (dumps([VALID, "deal.won"]), "Event 1 is not an object"),
    ],
)
def test_a_malformed_generic_body_is_refused_with_the_reason_and_nothing_stored(client, body, reason):
    response = client.post(DEALS_PATH, data=body, content_type=JSON, headers=rex_headers(body))

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("make_headers", "status"),
    [
        (lambda body: rex_headers(body, secret="not-the-secret"), 403),
        (lambda body: rex_headers(body, timestamp=int(time.time()) - 301), 403),
        (lambda body: rex_headers(body, timestamp=int(time.time()) + 301), 403),
        (lambda body: rex_headers(body + b" "), 403),  # signed another body
        (lambda body: {**rex_headers(body), "X-Rex-Signature": "sha256=\u00e9t\u00e9"}, 403),  # non-ASCII
        (lambda body: {"X-Rex-Timestamp": str(int(time.time()))}, 401),
    ],
    ids=["wrong-secret", "stale", "future", "other-body", "non-ascii", "missing"],
)
def test_a_generic_request_with_a_bad_signature_is_refused(client, make_headers, status):
    body = dumps([VALID])

    response = client.post(DEALS_PATH, data=body, content_type=JSON, headers=make_headers(body))

    assert response.status_code == status
    assert WebhookEvent.objects.count() == 0


def test_without_a_secret_the_generic_format_is_refused_unless_debug(client, settings):
    settings.CRM_WEBHOOK_SECRET = ""
    body = dumps([VALID])

    refused = client.post(DEALS_PATH, data=body, content_type=JSON)
    settings.DEBUG = True
    accepted = client.post(DEALS_PATH, data=body, content_type=JSON)

    assert refused.status_code == 403
    assert refused.json() == {"detail": "Webhook verification is not configured."}
    assert accepted.status_code == 200
    assert WebhookEvent.objects.get().signature == WebhookEvent.Signature.NOT_CONFIGURED


# --- HubSpot --------------------------------------------------------------------------------------


def post_hubspot(client, events, *, path: str = DEALS_PATH, signed_uri: str | None = None, **signing):
    body = dumps(events)
    headers = hubspot_headers(body, uri=signed_uri or PUBLIC_BASE_URL + path, **signing)
    return client.post(path, data=body, content_type=JSON, headers=headers)


def test_a_signed_hubspot_batch_is_stored_per_event_and_links_what_it_can(client, outcome):
    events = [
        hubspot_event(101, "deal.creation"),
        hubspot_event(102, "deal.propertyChange", propertyName="dealstage", propertyValue="closedwon"),
        # eventId is not unique on its own: the same id at another time is another event.
        {**hubspot_event(102, "deal.propertyChange", propertyName="amount", propertyValue="15000"), "occurredAt": 5},
        hubspot_event(103, "contact.propertyChange", 77, propertyName="hs_email_optout", propertyValue="true"),
        hubspot_event(104, "contact.propertyChange", 78, propertyName="firstname", propertyValue="Maya"),
        # Linked: the event carries REX's outcome id (added by the portal's integration).
        {
            **hubspot_event(105, "deal.propertyChange", 55, propertyName="dealstage", propertyValue="closedwon"),
            "rex_outcome_id": str(outcome.pk),
        },
    ]

    response = post_hubspot(client, events)

    assert response.status_code == 200
    assert response.json() == {"received": 6, "new": 6}
    stored = process_all()
    assert set(stored) == {f"{e['eventId']}:{e['occurredAt']}" for e in events}
    assert {e.provider for e in stored.values()} == {WebhookEvent.Provider.HUBSPOT}
    states = {key.split(":")[0] + (":amount" if key.endswith(":5") else ""): e for key, e in stored.items()}
    assert states["101"].state == WebhookEvent.State.UNMATCHED
    assert "HubSpot deal 1234" in states["101"].error
    assert "set HUBSPOT_ACCESS_TOKEN" in states["101"].error  # the lookup that would link it is not configured
    assert states["102"].state == states["102:amount"].state == WebhookEvent.State.UNMATCHED
    assert states["103"].state == WebhookEvent.State.UNMATCHED and "HubSpot contact 77" in states["103"].error
    assert states["104"].state == WebhookEvent.State.IGNORED
    assert states["105"].state == WebhookEvent.State.PROCESSED
    outcome.refresh_from_db()
    assert outcome.deal_closed
    assert outcome.deal_closed_at == datetime.fromtimestamp(1_760_000_000.105, tz=UTC)

    again = post_hubspot(client, events)
    assert again.json() == {"received": 6, "new": 0}


def test_a_hubspot_association_change_is_stored_as_ignored_and_the_rest_of_the_batch_goes_on(client, outcome):
    association = {
        "eventId": 401,
        "subscriptionId": 2881779,
        "portalId": 62515,
        "appId": 1160452,
        "occurredAt": 1_760_000_000_401,
        "subscriptionType": "deal.associationChange",
        "attemptNumber": 0,
        "changeSource": "USER",
        "associationType": "DEAL_TO_CONTACT",
        "fromObjectId": 1234,
        "toObjectId": 77,
        "associationRemoved": False,
        "isPrimaryAssociation": True,
        "sourceId": "userId:82088707",
    }
    won = {
        **hubspot_event(402, "deal.propertyChange", 55, propertyName="dealstage", propertyValue="closedwon"),
        "rex_outcome_id": str(outcome.pk),
    }
    shapeless = {"subscriptionType": "deal.propertyChange", "portalId": 62515, "propertyName": "dealstage"}

    response = post_hubspot(client, [association, won, shapeless])

    assert response.status_code == 200
    assert response.json() == {"received": 3, "new": 1}
    stored = process_all()
    assert stored["401:1760000000401"].state == WebhookEvent.State.IGNORED
    assert stored["401:1760000000401"].event_type == "deal.associationChange"
    assert "association changes are not recorded" in stored["401:1760000000401"].error
    [shapeless_id] = [key for key in stored if key.startswith("sha256:")]  # no eventId: a digest dedupes it
    assert stored[shapeless_id].state == WebhookEvent.State.IGNORED and "'eventId'" in stored[shapeless_id].error
    assert stored["402:1760000000402"].state == WebhookEvent.State.PROCESSED
    outcome.refresh_from_db()
    assert outcome.deal_closed

    assert post_hubspot(client, [association, shapeless]).json() == {"received": 2, "new": 0}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "not a JSON array of HubSpot events"),
        ({"eventId": 1, "subscriptionType": "deal.creation", "objectId": 1}, "not a JSON array of HubSpot events"),
        ([hubspot_event(1, "deal.creation"), "deal.creation"], "Event 1 is not an object"),
    ],
    ids=["empty", "object", "not-an-object"],
)
def test_a_hubspot_body_that_is_not_an_array_of_objects_is_refused(client, body, reason):
    response = post_hubspot(client, body)

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert WebhookEvent.objects.count() == 0


def test_hubspot_deal_events_on_the_meetings_endpoint_are_ignored_contact_events_are_not(client, outcome):
    deal = {**hubspot_event(501, "deal.creation"), "rex_outcome_id": str(outcome.pk)}
    object_deal = {**hubspot_event(502, "object.creation"), "objectTypeId": "0-3", "rex_outcome_id": str(outcome.pk)}
    contact = {
        **hubspot_event(503, "contact.propertyChange", 77, propertyName="hs_email_optout", propertyValue="true"),
        "rex_lead_id": str(outcome.lead_id),
    }

    response = post_hubspot(client, [deal, object_deal, contact], path=MEETINGS_PATH)

    assert response.json() == {"received": 3, "new": 1}
    stored = {key.split(":")[0]: event for key, event in process_all().items()}
    assert stored["501"].state == stored["502"].state == WebhookEvent.State.IGNORED
    assert "only /webhooks/crm/deals records them" in stored["501"].error
    assert stored["503"].state == WebhookEvent.State.PROCESSED
    outcome.refresh_from_db()
    assert not outcome.opportunity_created


def test_hubspot_signs_the_uri_with_its_listed_escapes_decoded(client):
    events = [hubspot_event(201, "deal.creation")]
    path = DEALS_PATH + "?source=hub%3Aspot%2Cv3"

    decoded = post_hubspot(client, events, path=path, signed_uri=f"{PUBLIC_BASE_URL}{DEALS_PATH}?source=hub:spot,v3")
    encoded = post_hubspot(client, [hubspot_event(202, "deal.creation")], path=path)

    assert decoded.status_code == 200
    assert encoded.status_code == 403


@pytest.mark.parametrize(
    ("signing", "status"),
    [
        ({"secret": "another-app"}, 403),
        ({"timestamp_ms": int(time.time() * 1000) - 6 * 60 * 1000}, 403),
        ({"timestamp_ms": int(time.time())}, 403),  # seconds, not milliseconds
        ({"timestamp_ms": int("9" * 400)}, 403),  # absurd: refused, not an overflow
    ],
    ids=["wrong-secret", "stale", "seconds", "absurd"],
)
def test_a_hubspot_request_with_a_bad_signature_is_refused(client, signing, status):
    response = post_hubspot(client, [hubspot_event(301, "deal.creation")], **signing)

    assert response.status_code == status
    assert WebhookEvent.objects.count() == 0


def test_a_hubspot_batch_without_a_signature_is_refused(client):
    response = client.post(DEALS_PATH, data=dumps([hubspot_event(302, "deal.creation")]), content_type=JSON)

    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0


def test_without_a_client_secret_hubspot_is_refused_unless_debug(client, settings):
    settings.HUBSPOT_CLIENT_SECRET = ""

    refused = post_hubspot(client, [hubspot_event(303, "deal.creation")])
    settings.DEBUG = True
    accepted = post_hubspot(client, [hubspot_event(303, "deal.creation")])

    assert refused.status_code == 403
    assert accepted.status_code == 200
    assert WebhookEvent.objects.get().signature == WebhookEvent.Signature.NOT_CONFIGURED


# --- Pipedrive ------------------------------------------------------------------------------------


def post_pipedrive(client, body: dict, *, path: str = DEALS_PATH, headers: dict | None = None):
    return client.post(path, data=dumps(body), content_type=JSON, headers=basic_auth() if headers is None else headers)


def test_pipedrive_deal_won_activity_done_and_person_do_not_contact(client, outcome):
    lead = outcome.lead
    won = pipedrive_body(
        "deal",
        "change",
        {
            "id": 42,
            "title": "Brightlane expansion",
            "value": 12000,
            "currency": "USD",
            "status": "won",
            "won_time": "2025-05-21T16:00:00Z",
            "person_id": 9,
            "custom_fields": {
                "d0b1f2c3a4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9": {"type": "varchar", "value": "irrelevant"},
                "rex_outcome_id": {"type": "double", "value": outcome.pk},
            },
        },
        event_id="evt-deal-won",
    )
    meeting = pipedrive_body(
        "activity",
        "change",
        {"id": 5, "type": "meeting", "done": True, "attendees": [{"email_address": lead.email.upper()}]},
        event_id="evt-activity-done",
    )
    person = pipedrive_body(
        "person",
        "change",
        {
            "id": 9,
            "name": "Maya Patel",
            "emails": [
                {"label": "home", "value": "old@example.com", "primary": False},
                {"label": "work", "value": lead.email, "primary": True},
            ],
            "custom_fields": {"do_not_contact": {"type": "enum", "value": "true"}},
        },
        event_id="evt-person-dnc",
    )
    deleted = pipedrive_body("deal", "delete", None, event_id="evt-deal-deleted")

    responses = [post_pipedrive(client, won), post_pipedrive(client, meeting, path=MEETINGS_PATH)]
    responses += [post_pipedrive(client, person), post_pipedrive(client, deleted)]

    assert [r.json() for r in responses] == [{"received": 1, "new": 1}] * 4
    stored = process_all()
    assert {key: e.event_type for key, e in stored.items()} == {
        "evt-deal-won": "deal.change",
        "evt-activity-done": "activity.change",
        "evt-person-dnc": "person.change",
        "evt-deal-deleted": "deal.delete",
    }
    assert "Authorization" not in stored["evt-deal-won"].headers
    assert stored["evt-deal-deleted"].state == WebhookEvent.State.IGNORED
    assert {stored[key].state for key in ("evt-deal-won", "evt-activity-done", "evt-person-dnc")} == {
        WebhookEvent.State.PROCESSED
    }
    outcome.refresh_from_db()
    assert outcome.deal_closed and outcome.deal_value == Decimal("12000.00") and outcome.time_to_close_days == 20
    assert outcome.meeting_completed
    suppression = Suppression.objects.get(organization=outcome.organization, value=lead.email.lower())
    assert suppression.reason == Suppression.Reason.CRM_DO_NOT_CONTACT
    assert not Suppression.objects.filter(value="old@example.com").exists()

    assert post_pipedrive(client, won).json() == {"received": 1, "new": 0}


@pytest.mark.parametrize(
    "headers",
    [{}, basic_auth(password="guess"), basic_auth(user="admin"), {"Authorization": "Basic !!!"}],
    ids=["none", "wrong-password", "wrong-user", "garbled"],
)
def test_a_pipedrive_request_without_the_right_credentials_is_refused(client, headers):
    response = post_pipedrive(client, pipedrive_body("deal", "create", {"id": 1}), headers=headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert WebhookEvent.objects.count() == 0


def test_without_credentials_configured_pipedrive_is_refused_unless_debug(client, settings):
    settings.PIPEDRIVE_WEBHOOK_PASSWORD = ""
    body = pipedrive_body("deal", "create", {"id": 1, "status": "open"})

    refused = post_pipedrive(client, body, headers={})
    settings.DEBUG = True
    accepted = post_pipedrive(client, body, headers={})

    assert refused.status_code == 403
    assert accepted.status_code == 200
    assert WebhookEvent.objects.get().signature == WebhookEvent.Signature.NOT_CONFIGURED


def test_a_pipedrive_request_with_wrong_credentials_gets_a_basic_challenge():
    with pytest.raises(CredentialsRejected) as refused:
        pipedrive_basic_auth_check(headers=basic_auth(password="guess"))

    assert refused.value.status == 401
    assert refused.value.headers["WWW-Authenticate"].startswith('Basic realm="REX CRM webhooks"')


def pipedrive_v1_body(obj: str, action: str, current: dict | None, previous: dict | None = None, **meta) -> dict:
    """A webhooks v1 notification as Pipedrive sends it: ``meta.id`` is the object's id, times are Unix seconds
    in meta and "YYYY-MM-DD HH:MM:SS" (UTC) in the object, custom fields are top-level 40-character hash keys."""
    object_id = (current or previous or {}).get("id", 1)
    return {
        "v": 1,
        "matches_filters": {"current": []},
        "meta": {
            "v": 1,
            "action": action,
            "object": obj,
            "id": object_id,
            "company_id": 12345,
            "user_id": 67890,
            "host": "acme.pipedrive.com",
            "timestamp": 1_747_843_200,
            "timestamp_micro": 1_747_843_200_123_456,
            "permitted_user_ids": [67890],
            "trans_pending": False,
            "is_bulk_update": False,
            "pipedrive_service_name": False,
            "change_source": "app",
            "webhook_id": "221",
            **meta,
        },
        "current": current,
        "previous": previous,
        "event": f"{action}.{obj}",
        "retry": 0,
    }


def test_pipedrive_v1_bodies_are_accepted_stored_as_received_and_read_as_v2(client, outcome):
    lead = outcome.lead
    person = pipedrive_v1_body(
        "person",
        "updated",
        {
            "id": 9,
            "name": "Maya Patel",
            "email": [{"label": "work", "value": lead.email, "primary": True}],
            "marketing_status": "unsubscribed",
            "8f4b27a2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6": "VIP",
        },
        {"marketing_status": "subscribed"},
    )
    meeting = pipedrive_v1_body(
        "activity",
        "updated",
        {
            "id": 5,
            "type": "meeting",
            "done": True,
            "marked_as_done_time": "2025-05-10 09:30:00",
            "person_id": 9,
            "attendees": [{"email_address": lead.email, "is_organizer": 0, "name": "Maya Patel"}],
        },
    )
    deleted = pipedrive_v1_body("deal", "deleted", None, {"id": 42, "status": "open"})

    responses = [post_pipedrive(client, person), post_pipedrive(client, meeting, path=MEETINGS_PATH)]
    responses.append(post_pipedrive(client, deleted))

    assert [r.status_code for r in responses] == [200, 200, 200]
    stored = {e.event_type: e for e in process_all().values()}
    assert set(stored) == {"person.change", "activity.change", "deal.delete"}
    assert stored["person.change"].provider_event_id == "v1:12345:person:9:updated:1747843200123456"
    assert json.loads(stored["person.change"].raw_body) == person  # as received
    assert stored["person.change"].state == stored["activity.change"].state == WebhookEvent.State.PROCESSED
    assert stored["deal.delete"].state == WebhookEvent.State.IGNORED
    outcome.refresh_from_db()
    assert outcome.meeting_completed
    assert Suppression.objects.filter(value=lead.email.lower(), reason=Suppression.Reason.CRM_DO_NOT_CONTACT).exists()

    assert post_pipedrive(client, person).json() == {"received": 1, "new": 0}  # a repeat


def test_a_pipedrive_event_of_the_other_endpoint_is_stored_as_ignored(client, outcome):
    deal = pipedrive_body("deal", "change", {"id": 42, "status": "won", "value": 10, "person_id": 9}, event_id="d-1")
    meeting = pipedrive_body("activity", "create", {"id": 5, "type": "meeting"}, event_id="a-1")

    responses = [post_pipedrive(client, deal, path=MEETINGS_PATH), post_pipedrive(client, meeting, path=DEALS_PATH)]

    assert [r.json() for r in responses] == [{"received": 1, "new": 0}] * 2
    stored = process_all()
    assert {e.state for e in stored.values()} == {WebhookEvent.State.IGNORED}
    assert "only /webhooks/crm/deals records them" in stored["d-1"].error
    assert "only /webhooks/crm/meetings records them" in stored["a-1"].error


@pytest.mark.parametrize(
    "body",
    [
        {"meta": {"action": "change", "entity": "deal"}},  # neither data nor current
        {"meta": {"entity": "deal"}, "payload": {"id": 1}},
        {"meta": "deal", "data": {"id": 1}},
    ],
    ids=["no-data", "other-key", "meta-not-object"],
)
def test_a_body_that_only_looks_like_pipedrive_is_read_as_the_generic_format(client, body):
    response = post_pipedrive(client, body)  # basic credentials, no REX signature

    assert response.status_code == 401
    assert response.json() == {"detail": "Missing signature."}


# --- Salesforce -----------------------------------------------------------------------------------


def post_salesforce(client, body: bytes, *, path: str = DEALS_PATH, token: str | None = SALESFORCE_TOKEN):
    """As Salesforce posts to the endpoint URL configured on the outbound message: ``path?token=...``."""
    url = path if token is None else f"{path}?{urlencode({'token': token})}"
    return client.post(url, data=body, content_type="text/xml; charset=utf-8", headers={"SOAPAction": '""'})


def test_a_salesforce_outbound_message_is_acknowledged_and_each_notification_stored(client, outcome):
    lead = outcome.lead
    other = LeadFactory(organization=outcome.organization)
    envelope = salesforce_envelope(
        [
            (
                "04l5g00000AbCd1AAB",
                "Opportunity",
                {
                    "Id": "0065g00000XyZ12AAB",
                    "Amount": "12000.0",
                    "CloseDate": "2025-05-21",
                    "IsWon": "true",
                    "StageName": "Closed Won",
                    "Rex_Outcome_Id__c": f"{outcome.pk}.0",
                    "Description": None,
                },
            ),
            ("04l5g00000AbCd3AAB", "Contact", {"Id": "0035g1", "Email": other.email, "HasOptedOutOfEmail": "true"}),
            ("04l5g00000AbCd4AAB", "Account", {"Id": "0015g1", "Name": "Brightlane"}),
        ]
    )
    # Meetings come from their own outbound message (one per object), posted to the meetings endpoint.
    meetings = salesforce_envelope(
        [("04l5g00000AbCd2AAB", "Event", {"Id": "00U5g1", "Meeting_Status__c": "Completed", "Rex_Lead_Id__c": lead.pk})]
    )

    response = post_salesforce(client, envelope)
    meetings_response = post_salesforce(client, meetings, path=MEETINGS_PATH)

    assert response.status_code == meetings_response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert b"<Ack>true</Ack>" in response.content and b"notificationsResponse" in response.content
    stored = process_all()
    assert {key: e.event_type for key, e in stored.items()} == {
        "04l5g00000AbCd1AAB": "Opportunity",
        "04l5g00000AbCd2AAB": "Event",
        "04l5g00000AbCd3AAB": "Contact",
        "04l5g00000AbCd4AAB": "Account",
    }
    assert all("Session" not in e.raw_body for e in stored.values())  # a live credential is never stored
    assert json.loads(stored["04l5g00000AbCd1AAB"].raw_body)["sObject"]["Description"] is None
    assert [stored[f"04l5g00000AbCd{n}AAB"].state for n in range(1, 5)] == [
        WebhookEvent.State.PROCESSED,
        WebhookEvent.State.PROCESSED,
        WebhookEvent.State.PROCESSED,
        WebhookEvent.State.IGNORED,
    ]
    outcome.refresh_from_db()
    assert outcome.deal_closed and outcome.deal_value == Decimal("12000.00")
    assert outcome.deal_closed_at == datetime(2025, 5, 21, tzinfo=UTC)
    assert outcome.time_to_close_days == 19
    assert outcome.meeting_completed
    assert Suppression.objects.filter(value=other.email, reason=Suppression.Reason.CRM_DO_NOT_CONTACT).exists()

    again = post_salesforce(client, envelope)
    assert again.status_code == 200 and b"<Ack>true</Ack>" in again.content
    assert WebhookEvent.objects.count() == 4
    assert {e.signature for e in WebhookEvent.objects.all()} == {WebhookEvent.Signature.VALID}


@pytest.mark.parametrize(
    ("token", "status", "detail"),
    [
        (None, 401, "Missing token."),
        ("", 401, "Missing token."),
        ("sf-0utb0und-t0keN", 403, "Invalid token."),
        ("t\u00f6ken", 403, "Invalid token."),
    ],
    ids=["none", "empty", "wrong", "non-ascii"],
)
def test_a_salesforce_message_without_the_url_token_is_refused_even_from_the_right_organization(
    client, token, status, detail
):
    envelope = salesforce_envelope([("04l1", "Opportunity", {"Id": "006", "StageName": "Closed Won"})])

    response = post_salesforce(client, envelope, token=token)

    assert response.status_code == status
    assert response.json() == {"detail": detail}
    assert WebhookEvent.objects.count() == 0


def test_a_repeated_token_parameter_is_refused(client):
    envelope = salesforce_envelope([("04l1", "Opportunity", {"Id": "006"})])
    url = f"{DEALS_PATH}?token={SALESFORCE_TOKEN}&token=other"

    response = client.post(url, data=envelope, content_type="text/xml")

    assert response.status_code == 403


def test_the_salesforce_token_is_checked_before_the_body_is_read(client):
    response = post_salesforce(client, b"<not-xml", token="wrong")

    assert response.status_code == 403  # not a 400 that would tell a stranger about the parser


def test_without_a_salesforce_token_configured_salesforce_is_refused_unless_debug(client, settings, caplog):
    settings.SALESFORCE_WEBHOOK_TOKEN = ""
    envelope = salesforce_envelope([("04l1", "Opportunity", {"Id": "006"})])

    refused = post_salesforce(client, envelope, token=None)
    settings.DEBUG = True
    accepted = post_salesforce(client, envelope, token=None)

    assert refused.status_code == 403
    assert refused.json() == {"detail": "Webhook verification is not configured."}
    assert "SALESFORCE_WEBHOOK_TOKEN is not set" in caplog.text
    assert accepted.status_code == 200
    assert WebhookEvent.objects.get().signature == WebhookEvent.Signature.NOT_CONFIGURED


def test_a_salesforce_event_of_the_other_endpoint_is_stored_as_ignored(client, outcome):
    envelope = salesforce_envelope(
        [
            ("04l5g0000Opp1", "Opportunity", {"Id": "0065g1", "IsWon": "true", "Rex_Outcome_Id__c": outcome.pk}),
            ("04l5g0000Evt1", "Event", {"Id": "00U5g1", "Rex_Outcome_Id__c": outcome.pk}),
        ]
    )

    response = post_salesforce(client, envelope, path=MEETINGS_PATH)

    assert response.status_code == 200 and b"<Ack>true</Ack>" in response.content
    stored = process_all()
    assert stored["04l5g0000Opp1"].state == WebhookEvent.State.IGNORED
    assert stored["04l5g0000Evt1"].state == WebhookEvent.State.PROCESSED
    outcome.refresh_from_db()
    assert outcome.meeting_booked and not outcome.deal_closed


def test_a_salesforce_message_from_another_organization_is_refused(client):
    envelope = salesforce_envelope([("04l1", "Opportunity", {"Id": "006"})], organization_id="00D000000000062EAA")

    response = post_salesforce(client, envelope)

    assert response.status_code == 403
    assert WebhookEvent.objects.count() == 0


def test_without_an_organization_id_salesforce_is_refused_unless_debug(client, settings):
    settings.SALESFORCE_ORGANIZATION_ID = ""
    envelope = salesforce_envelope([("04l1", "Opportunity", {"Id": "006"})])

    refused = post_salesforce(client, envelope)
    settings.DEBUG = True
    accepted = post_salesforce(client, envelope)

    assert refused.status_code == 403
    assert accepted.status_code == 200
    assert WebhookEvent.objects.get().signature == WebhookEvent.Signature.NOT_CONFIGURED


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<notifications><OrganizationId>&lol2;</OrganizationId></notifications>"""


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (BILLION_LAUGHS, "not a well-formed XML document"),
        (b"<soapenv:Envelope><unclosed>", "not a well-formed XML document"),
        (b"<Envelope><Body><somethingElse/></Body></Envelope>", "no 'notifications'"),
        (salesforce_envelope([]), "no Notification"),
        (salesforce_envelope([("", "Opportunity", {"Id": "006"})]), "Notification 0 has no usable 'Id'"),
    ],
    ids=["entities", "truncated", "not-outbound", "empty", "no-id"],
)
def test_a_malformed_salesforce_message_is_refused_with_the_reason(client, body, reason):
    response = post_salesforce(client, body)

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert WebhookEvent.objects.count() == 0
