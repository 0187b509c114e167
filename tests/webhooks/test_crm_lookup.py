"""Real HubSpot and Pipedrive webhooks carry no REX ids: the Celery task looks the deal, contact or person up in
the CRM's REST API (webhooks.crm_lookup). Requests go through the receivers; the CRM APIs are a local HTTP server
(pytest-httpserver) answering the real paths with the real response shapes."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from agents.models import Suppression
from tests.factories import LeadFactory, OutcomeLabelFactory
from tests.webhooks.test_crm_receiver import (
    CRM_SECRET,
    HUBSPOT_SECRET,
    MEETINGS_PATH,
    PIPEDRIVE_PASSWORD,
    PIPEDRIVE_USER,
    PUBLIC_BASE_URL,
    SENT_AT,
    hubspot_event,
    pipedrive_body,
    pipedrive_v1_body,
    post_hubspot,
    post_pipedrive,
    process_all,
)
from webhooks.crm_lookup import HUBSPOT_CONTACT_PROPERTIES, HUBSPOT_DEAL_PROPERTIES, lookup_pauses_reset
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

HUBSPOT_TOKEN = "pat-na1-0b4e1c2d-3f4a-5b6c-7d8e-9f0a1b2c3d4e"
PIPEDRIVE_TOKEN = "659c9fddb16335e48cc67114694b52074e812e03"
UNMATCHED, PROCESSED = WebhookEvent.State.UNMATCHED, WebhookEvent.State.PROCESSED


@pytest.fixture(autouse=True)
def crm_settings(settings):
    settings.DEBUG = False
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    settings.CRM_WEBHOOK_SECRET = CRM_SECRET
    settings.HUBSPOT_CLIENT_SECRET = HUBSPOT_SECRET
    settings.PIPEDRIVE_WEBHOOK_USER = PIPEDRIVE_USER
    settings.PIPEDRIVE_WEBHOOK_PASSWORD = PIPEDRIVE_PASSWORD
    settings.HUBSPOT_ACCESS_TOKEN = ""
    settings.PIPEDRIVE_API_TOKEN = ""
    lookup_pauses_reset()
    yield settings
    lookup_pauses_reset()


@pytest.fixture
def hubspot_api(settings, httpserver):
    settings.HUBSPOT_ACCESS_TOKEN = HUBSPOT_TOKEN
    settings.HUBSPOT_API_BASE_URL = httpserver.url_for("/")
    return httpserver


@pytest.fixture
def pipedrive_api(settings, httpserver):
    settings.PIPEDRIVE_API_TOKEN = PIPEDRIVE_TOKEN
    settings.PIPEDRIVE_API_URL = httpserver.url_for("")
    return httpserver


@pytest.fixture
def outcome(db):
    return OutcomeLabelFactory(sent_at=SENT_AT)


# --- HubSpot's API, as it answers -----------------------------------------------------------------


def hubspot_deal(deal_id: int, *, stage="closedwon", won="true", closed="true", amount="12000.50", contacts=None):
    """``GET /crm/v3/objects/deals/{id}?properties=...&associations=contacts``: properties are strings; the
    primary contact is listed as ``deal_to_contact`` and again as ``deal_to_contact_unlabeled``."""
    if contacts is None:
        contacts = [
            ("501", "deal_to_contact_unlabeled"),
            ("77", "deal_to_contact"),
            ("77", "deal_to_contact_unlabeled"),
        ]
    deal = {
        "id": str(deal_id),
        "properties": {
            "amount": amount,
            "closedate": "2025-05-21T16:00:00Z",
            "createdate": "2025-05-02T09:00:00.000Z",
            "dealstage": stage,
            "hs_is_closed": closed,
            "hs_is_closed_won": won,
            "hs_lastmodifieddate": "2025-05-21T16:00:05.123Z",
            "hs_object_id": str(deal_id),
        },
        "createdAt": "2025-05-02T09:00:00Z",
        "updatedAt": "2025-05-21T16:00:05.123Z",
        "archived": False,
    }
    if contacts:
        deal["associations"] = {"contacts": {"results": [{"id": cid, "type": kind} for cid, kind in contacts]}}
    return deal


def hubspot_contact(contact_id: str, email: str | None, optout: str = "false") -> dict:
    return {
        "id": contact_id,
        "properties": {
            "createdate": "2025-04-01T08:00:00Z",
            "email": email,
            "hs_email_optout": optout,
            "hs_object_id": contact_id,
            "lastmodifieddate": "2025-05-21T16:00:00Z",
        },
        "createdAt": "2025-04-01T08:00:00Z",
        "updatedAt": "2025-05-21T16:00:00Z",
        "archived": False,
    }


HUBSPOT_NOT_FOUND = {
    "status": "error",
    "message": "Object not found.  objectId are usually numeric.",
    "correlationId": "9a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    "context": {"id": ["1234"]},
    "category": "OBJECT_NOT_FOUND",
}


def expect_deal(server, deal_id: int, *, body=None, status: int = 200, headers=None):
    server.expect_request(
        f"/crm/v3/objects/deals/{deal_id}",
        method="GET",
        query_string={"properties": HUBSPOT_DEAL_PROPERTIES, "associations": "contacts"},
        headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
    ).respond_with_json(hubspot_deal(deal_id) if body is None else body, status=status, headers=headers)


def expect_contact(server, contact_id: str, email: str | None):
    server.expect_request(
        f"/crm/v3/objects/contacts/{contact_id}",
        method="GET",
        query_string={"properties": HUBSPOT_CONTACT_PROPERTIES},
        headers={"Authorization": f"Bearer {HUBSPOT_TOKEN}"},
    ).respond_with_json(hubspot_contact(contact_id, email))


def stage_change(event_id: int, value: str, object_id: int = 1234) -> dict:
    return hubspot_event(event_id, "deal.propertyChange", object_id, propertyName="dealstage", propertyValue=value)


def processed_one(client, events) -> WebhookEvent:
    assert post_hubspot(client, events).status_code == 200
    [event] = process_all().values()
    return event


# --- HubSpot --------------------------------------------------------------------------------------


def test_a_real_hubspot_deal_creation_is_linked_through_the_deal_s_primary_contact(client, hubspot_api, outcome):
    deal = hubspot_deal(1234, stage="appointmentscheduled", won="false", closed="false", amount="9000")
    expect_deal(hubspot_api, 1234, body=deal)
    expect_contact(hubspot_api, "77", outcome.lead.email.upper())

    event = processed_one(client, [hubspot_event(101, "deal.creation")])

    assert (event.state, event.error) == (PROCESSED, "")
    assert event.organization_id == outcome.organization_id
    outcome.refresh_from_db()
    assert outcome.opportunity_created and outcome.deal_value == Decimal("9000.00") and not outcome.deal_closed
    assert [request.path for request, _ in hubspot_api.log] == [
        "/crm/v3/objects/deals/1234",
        "/crm/v3/objects/contacts/77",  # the primary contact, not the first listed
    ]


def test_a_hubspot_deal_won_records_its_amount_close_date_and_time_to_close(client, hubspot_api, outcome):
    expect_deal(hubspot_api, 1234)
    expect_contact(hubspot_api, "77", outcome.lead.email)

    event = processed_one(client, [stage_change(102, "closedwon")])

    assert event.state == PROCESSED
    outcome.refresh_from_db()
    assert outcome.deal_closed and outcome.deal_value == Decimal("12000.50")
    assert outcome.deal_closed_at == datetime(2025, 5, 21, 16, tzinfo=UTC)
    assert outcome.time_to_close_days == 20


@pytest.mark.parametrize(
    ("won", "closed", "flags"),
    [
        ("true", "true", (True, False, True)),
        ("false", "true", (False, True, True)),
        ("false", "false", (False, False, True)),
    ],
    ids=["won", "lost", "open"],
)
def test_a_custom_pipeline_stage_is_read_from_hs_is_closed_won_and_hs_is_closed(
    client, hubspot_api, outcome, won, closed, flags
):
    expect_deal(hubspot_api, 1234, body=hubspot_deal(1234, stage="98765432", won=won, closed=closed))
    expect_contact(hubspot_api, "77", outcome.lead.email)

    event = processed_one(client, [stage_change(103, "98765432")])

    assert event.state == PROCESSED
    outcome.refresh_from_db()
    assert (outcome.deal_closed, outcome.deal_lost, outcome.opportunity_created) == flags


def test_a_hubspot_opt_out_looks_up_the_contact_s_email_and_suppresses_it(client, hubspot_api):
    lead = LeadFactory()  # no outcome yet: a do-not-contact needs only the lead
    expect_contact(hubspot_api, "77", lead.email)
    opt_out = hubspot_event(104, "contact.propertyChange", 77, propertyName="hs_email_optout", propertyValue="true")

    event = processed_one(client, [opt_out])

    assert event.state == PROCESSED and event.organization_id == lead.organization_id
    suppression = Suppression.objects.get(organization=lead.organization)
    assert (suppression.value, suppression.reason) == (lead.email.lower(), Suppression.Reason.CRM_DO_NOT_CONTACT)


def test_without_an_access_token_the_event_waits_unmatched_then_links_once_it_is_set(client, settings, httpserver):
    outcome = OutcomeLabelFactory(sent_at=SENT_AT)
    won_elsewhere = {**stage_change(106, "98765432", 55), "rex_outcome_id": str(outcome.pk)}
    assert post_hubspot(client, [stage_change(105, "closedwon"), won_elsewhere]).status_code == 200

    stored = {key.split(":")[0]: event for key, event in process_all().items()}

    assert stored["105"].state == stored["106"].state == UNMATCHED
    assert stored["105"].error == (
        "HubSpot deal 1234 carries no REX outcome id, REX lead id or contact email: "
        "set HUBSPOT_ACCESS_TOKEN so that REX can look it up in HubSpot."
    )
    assert "deal stage REX cannot read" in stored["106"].error and "HUBSPOT_ACCESS_TOKEN" in stored["106"].error
    assert httpserver.log == []

    settings.HUBSPOT_ACCESS_TOKEN = HUBSPOT_TOKEN  # the operator fills it in; the sweep retries
    settings.HUBSPOT_API_BASE_URL = httpserver.url_for("/")
    expect_deal(httpserver, 1234)
    expect_deal(httpserver, 55, body=hubspot_deal(55, stage="98765432", contacts=[]))
    expect_contact(httpserver, "77", outcome.lead.email)
    stored = {key.split(":")[0]: event for key, event in process_all().items()}

    assert stored["105"].state == stored["106"].state == PROCESSED
    outcome.refresh_from_db()
    assert outcome.deal_closed and outcome.deal_value == Decimal("12000.50")


def test_with_rex_ids_and_no_token_a_default_stage_win_is_recorded_without_a_lookup(client, httpserver, outcome):
    won = {**stage_change(107, "closedwon", 55), "rex_outcome_id": str(outcome.pk)}

    event = processed_one(client, [won])

    assert event.state == PROCESSED and httpserver.log == []
    outcome.refresh_from_db()
    assert outcome.deal_closed and outcome.deal_value is None
    assert outcome.deal_closed_at == datetime.fromtimestamp(1_760_000_000.107, tz=UTC)  # occurredAt


def test_with_rex_ids_a_deal_the_api_cannot_find_is_recorded_without_its_facts(client, hubspot_api, outcome):
    expect_deal(hubspot_api, 55, body=HUBSPOT_NOT_FOUND, status=404)
    won = {**stage_change(108, "closedwon", 55), "rex_outcome_id": str(outcome.pk)}

    event = processed_one(client, [won])

    assert event.state == PROCESSED
    outcome.refresh_from_db()
    assert outcome.deal_closed and outcome.deal_value is None


@pytest.mark.parametrize(
    ("deal", "status", "error"),
    [
        (HUBSPOT_NOT_FOUND, 404, "HubSpot deal 1234 was not found in HubSpot (404)"),
        ({"status": "error", "category": "INVALID_AUTHENTICATION"}, 401, "HubSpot refused HUBSPOT_ACCESS_TOKEN (401)"),
        ({"status": "error", "category": "MISSING_SCOPES"}, 403, "HubSpot refused HUBSPOT_ACCESS_TOKEN (403)"),
        (hubspot_deal(1234, contacts=[]), 200, "HubSpot deal 1234 has no contact in HubSpot"),
        (["not", "an", "object"], 200, "did not answer HubSpot deal 1234 with a JSON object"),
    ],
    ids=["not-found", "bad-token", "missing-scope", "no-contact", "not-an-object"],
)
def test_a_lookup_that_cannot_link_leaves_the_event_unmatched_with_the_reason(
    client, hubspot_api, outcome, deal, status, error
):
    expect_deal(hubspot_api, 1234, body=deal, status=status)

    event = processed_one(client, [stage_change(109, "closedwon")])

    assert event.state == UNMATCHED and event.processed_at is None
    assert error in event.error
    outcome.refresh_from_db()
    assert not outcome.deal_closed


def test_a_contact_without_an_email_leaves_the_deal_unmatched(client, hubspot_api):
    expect_deal(hubspot_api, 1234)
    expect_contact(hubspot_api, "77", None)

    event = processed_one(client, [stage_change(110, "closedwon")])

    assert event.state == UNMATCHED
    assert event.error == "HubSpot contact 77 of HubSpot deal 1234 has no email address in HubSpot."


def test_an_outage_pauses_lookups_for_the_batch_and_the_events_link_on_retry(client, hubspot_api, outcome, caplog):
    for deal_id in (1234, 1235, 1236):
        expect_deal(hubspot_api, deal_id, body={"status": "error", "message": "internal error"}, status=503)
    events = [stage_change(111 + n, "closedwon", deal_id) for n, deal_id in enumerate((1234, 1235, 1236))]
    assert post_hubspot(client, events).json() == {"received": 3, "new": 3}

    first = process_all()

    assert {event.state for event in first.values()} == {UNMATCHED}
    assert len(hubspot_api.log) == 1  # one call answered 503; the other events did not wait on the API
    errors = {key.split(":")[0]: event.error for key, event in first.items()}
    assert errors["111"] == "HubSpot API answered 503 looking up HubSpot deal 1234; retried later."
    assert (
        errors["112"]
        == errors["113"]
        == ("HubSpot API answered 503 looking up HubSpot deal 1234; HubSpot lookups are paused, retried later.")
    )
    assert "no HubSpot lookups for 30 s" in caplog.text

    hubspot_api.clear()  # HubSpot is back
    lookup_pauses_reset()
    for deal_id in (1234, 1235, 1236):
        expect_deal(hubspot_api, deal_id)
    expect_contact(hubspot_api, "77", outcome.lead.email)
    second = process_all()

    assert {event.state for event in second.values()} == {PROCESSED}
    outcome.refresh_from_db()
    assert outcome.deal_closed


def test_a_rate_limited_lookup_waits_as_long_as_hubspot_asks(client, hubspot_api, caplog):
    expect_deal(hubspot_api, 1234, body={"status": "error", "policyName": "TEN_SECONDLY_ROLLING"}, status=429,
                headers={"Retry-After": "7"})  # fmt: skip

    event = processed_one(client, [stage_change(114, "closedwon")])

    assert event.state == UNMATCHED and "answered 429" in event.error
    assert "no HubSpot lookups for 7 s" in caplog.text


def test_an_unreachable_api_leaves_the_event_unmatched_and_retryable(client, settings, outcome):
    settings.HUBSPOT_ACCESS_TOKEN = HUBSPOT_TOKEN
    settings.HUBSPOT_API_BASE_URL = "http://127.0.0.1:9"  # nothing listens on the discard port

    event = processed_one(client, [stage_change(115, "closedwon")])

    assert event.state == UNMATCHED
    assert event.error == "HubSpot API unreachable looking up HubSpot deal 1234 (ConnectionError); retried later."


def test_a_redirect_is_not_followed_with_the_token(client, hubspot_api):
    hubspot_api.expect_request("/crm/v3/objects/deals/1234").respond_with_data(
        "", status=302, headers={"Location": "https://elsewhere.example.com/steal"}
    )

    event = processed_one(client, [stage_change(116, "closedwon")])

    assert event.state == UNMATCHED
    assert "HubSpot API answered 302 looking up HubSpot deal 1234 (check HUBSPOT_API_BASE_URL)" in event.error
    assert len(hubspot_api.log) == 1


# --- Pipedrive ------------------------------------------------------------------------------------


def pipedrive_person(person_id: int, email: str) -> dict:
    """``GET /api/v2/persons/{id}``: ``{"success": true, "data": {..., "emails": [{value, primary, label}]}}``."""
    return {
        "success": True,
        "data": {
            "id": person_id,
            "name": "Maya Patel",
            "first_name": "Maya",
            "last_name": "Patel",
            "owner_id": 67890,
            "org_id": 5,
            "add_time": "2025-04-01T10:00:00Z",
            "update_time": "2025-05-21T16:00:00Z",
            "emails": [
                {"value": "maya.home@example.com", "primary": False, "label": "home"},
                {"value": email, "primary": True, "label": "work"},
            ],
            "phones": [{"value": "+14155550100", "primary": True, "label": "work"}],
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "custom_fields": {},
        },
    }


def expect_person(server, person_id: int, *, body: dict, status: int = 200):
    server.expect_request(
        f"/api/v2/persons/{person_id}", method="GET", headers={"x-api-token": PIPEDRIVE_TOKEN}
    ).respond_with_json(body, status=status)


V2_WON_DEAL = {
    "id": 42,
    "title": "Brightlane expansion",
    "creator_user_id": 67890,
    "owner_id": 67890,
    "person_id": 9,
    "org_id": 5,
    "stage_id": 4,
    "pipeline_id": 1,
    "value": 12000,
    "currency": "USD",
    "status": "won",
    "add_time": "2025-05-01T10:00:00Z",
    "update_time": "2025-05-21T16:00:00Z",
    "won_time": "2025-05-21T16:00:00Z",
    "lost_time": None,
    "close_time": "2025-05-21T16:00:00Z",
    # Custom fields are keyed by 40-character hashes: REX's ids are not found among them.
    "custom_fields": {"d0b1f2c3a4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9": {"type": "double", "value": 7}},
}


def test_a_real_pipedrive_v2_deal_won_is_linked_through_its_person(client, pipedrive_api, outcome):
    expect_person(pipedrive_api, 9, body=pipedrive_person(9, outcome.lead.email))

    assert post_pipedrive(client, pipedrive_body("deal", "change", V2_WON_DEAL, event_id="v2-won")).status_code == 200
    event = process_all()["v2-won"]

    assert (event.state, event.error) == (PROCESSED, "")
    outcome.refresh_from_db()
    assert outcome.deal_closed and outcome.deal_value == Decimal("12000.00") and outcome.time_to_close_days == 20
    [(request, _)] = pipedrive_api.log
    assert request.headers["x-api-token"] == PIPEDRIVE_TOKEN and "api_token" not in request.query_string.decode()


def test_a_pipedrive_v1_deal_won_is_linked_the_same_way(client, pipedrive_api, outcome):
    expect_person(pipedrive_api, 9, body=pipedrive_person(9, outcome.lead.email))
    current = {
        "id": 42,
        "title": "Brightlane expansion",
        "value": 8000,
        "currency": "USD",
        "status": "won",
        "add_time": "2025-05-01 10:00:00",
        "won_time": "2025-05-11 12:00:00",
        "close_time": "2025-05-11 12:00:00",
        "person_id": 9,
        "org_id": 5,
        "d0b1f2c3a4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9": 7,
    }

    response = post_pipedrive(client, pipedrive_v1_body("deal", "updated", current, {"status": "open"}))

    assert response.json() == {"received": 1, "new": 1}
    [event] = process_all().values()
    assert (event.event_type, event.state) == ("deal.change", PROCESSED)
    outcome.refresh_from_db()
    assert outcome.deal_closed and outcome.deal_value == Decimal("8000.00")
    assert outcome.deal_closed_at == datetime(2025, 5, 11, 12, tzinfo=UTC) and outcome.time_to_close_days == 10


def test_a_pipedrive_meeting_links_through_its_primary_participant(client, pipedrive_api, outcome):
    expect_person(pipedrive_api, 9, body=pipedrive_person(9, outcome.lead.email))
    activity = {
        "id": 5,
        "type": "meeting",
        "done": False,
        "subject": "Intro call",
        "add_time": "2025-05-03T10:00:00Z",
        "participants": [{"person_id": 11, "primary": False}, {"person_id": 9, "primary": True}],
    }

    response = post_pipedrive(
        client, pipedrive_body("activity", "create", activity, event_id="mtg"), path=MEETINGS_PATH
    )

    assert response.status_code == 200
    assert process_all()["mtg"].state == PROCESSED
    outcome.refresh_from_db()
    assert outcome.meeting_booked and outcome.meeting_booked_at == datetime(2025, 5, 3, 10, tzinfo=UTC)


def test_without_a_pipedrive_token_the_deal_waits_unmatched_naming_the_setting(client, httpserver, outcome):
    post_pipedrive(client, pipedrive_body("deal", "change", V2_WON_DEAL, event_id="no-token"))

    event = process_all()["no-token"]

    assert event.state == UNMATCHED
    assert event.error == (
        "Pipedrive deal 42 carries no REX outcome id, REX lead id or contact email: "
        "set PIPEDRIVE_API_TOKEN so that REX can look it up in Pipedrive."
    )
    assert httpserver.log == []


def test_a_person_pipedrive_cannot_find_leaves_the_deal_unmatched(client, pipedrive_api):
    expect_person(pipedrive_api, 9, body={"success": False, "error": "Person not found", "code": 404}, status=404)
    post_pipedrive(client, pipedrive_body("deal", "change", V2_WON_DEAL, event_id="gone"))

    event = process_all()["gone"]

    assert event.state == UNMATCHED
    assert event.error.startswith("Pipedrive person 9 of Pipedrive deal 42 was not found in Pipedrive (404)")


def test_a_pipedrive_deal_with_rex_ids_is_not_looked_up(client, pipedrive_api, outcome):
    deal = {**V2_WON_DEAL, "custom_fields": {"rex_outcome_id": {"type": "double", "value": outcome.pk}}}
    post_pipedrive(client, pipedrive_body("deal", "change", deal, event_id="ids"))

    assert process_all()["ids"].state == PROCESSED
    assert pipedrive_api.log == []


def test_a_pipedrive_v1_deal_with_its_person_embedded_links_without_a_lookup(client, pipedrive_api, outcome):
    current = {
        "id": 43,
        "status": "lost",
        "lost_time": "2025-05-12 08:00:00",
        "person_id": {"value": 9, "name": "Maya Patel", "email": [{"value": outcome.lead.email, "primary": True}]},
    }

    post_pipedrive(client, pipedrive_v1_body("deal", "updated", current, {"status": "open"}))

    [event] = process_all().values()
    assert event.state == PROCESSED and pipedrive_api.log == []
    outcome.refresh_from_db()
    assert outcome.deal_lost and not outcome.deal_closed
