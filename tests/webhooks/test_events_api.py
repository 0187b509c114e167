"""/api/webhook-events: the inbox, scoped to the caller's organization, and a staff-only reprocess."""

import json
from unittest import mock

import pytest
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, OrganizationFactory, WebhookEventFactory
from tests.webhooks.conftest import sendgrid_event
from webhooks.models import WebhookEvent
from webhooks.tasks import process_webhook_event

pytestmark = pytest.mark.django_db

State = WebhookEvent.State


@pytest.fixture
def org(membership):
    return membership.organization


@pytest.fixture
def staff_membership(org):
    membership = MembershipFactory(organization=org)
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    return membership


@pytest.fixture
def staff_client(staff_membership):
    client = APIClient()
    client.force_authenticate(staff_membership.user)
    return client


@pytest.fixture
def superuser_client(org):
    membership = MembershipFactory(organization=org)
    membership.user.is_staff = membership.user.is_superuser = True
    membership.user.save(update_fields=["is_staff", "is_superuser"])
    client = APIClient()
    client.force_authenticate(membership.user)
    return client


@pytest.fixture
def enqueued():
    """The real task's enqueue, replaced; the service's on-commit hook still has to fire for it to be called."""
    with mock.patch.object(process_webhook_event, "delay") as delay:
        yield delay


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_list_shows_my_organizations_events_with_their_processing_state(api_client, org):
    mine = WebhookEventFactory(organization=org, state=State.FAILED, error="boom", attempts=3)
    WebhookEventFactory(organization=OrganizationFactory())
    WebhookEventFactory(organization=None)  # not linked yet: superusers only

    response = api_client.get("/api/webhook-events")

    assert _ids(response) == {mine.pk}
    row = response.json()["results"][0]
    assert (row["state"], row["error"], row["attempts"], row["provider"]) == ("failed", "boom", 3, "sendgrid")
    assert "raw_body" not in row and "headers" not in row  # the list stays light; the detail has them


def test_superusers_also_see_events_not_linked_to_any_organization(superuser_client, org):
    mine = WebhookEventFactory(organization=org)
    unlinked = WebhookEventFactory(organization=None)
    WebhookEventFactory(organization=OrganizationFactory())

    assert _ids(superuser_client.get("/api/webhook-events/")) == {mine.pk, unlinked.pk}
    assert superuser_client.get(f"/api/webhook-events/{unlinked.pk}").json()["raw_body"] == unlinked.raw_body


def test_detail_includes_raw_body_and_headers_without_credentials(api_client, org):
    event = WebhookEventFactory(
        organization=org, headers={"Content-Type": "application/json", "Authorization": "Basic c2VjcmV0"}
    )

    body = api_client.get(f"/api/webhook-events/{event.pk}").json()

    assert body["raw_body"] == event.raw_body
    assert body["headers"] == {"Content-Type": "application/json"}
    assert body["provider_event_id"] == event.provider_event_id


@pytest.mark.parametrize("organization", ["other", "none"])
def test_events_out_of_scope_are_404_for_members(api_client, org, organization):
    event = WebhookEventFactory(organization=OrganizationFactory() if organization == "other" else None)

    assert api_client.get(f"/api/webhook-events/{event.pk}").status_code == 404


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"provider": "twilio"}, "sms"),
        ({"state": "unmatched"}, "unmatched"),
        ({"event_type": "open"}, "open"),
    ],
)
def test_each_filter(api_client, org, params, expected):
    events = {
        "sms": WebhookEventFactory(organization=org, provider=WebhookEvent.Provider.TWILIO, event_type="sent"),
        "unmatched": WebhookEventFactory(organization=org, state=State.UNMATCHED, event_type="sent"),
        "open": WebhookEventFactory(organization=org, event_type="open"),
    }

    assert _ids(api_client.get("/api/webhook-events", params)) == {events[expected].pk}


@pytest.mark.parametrize("params", [{"provider": "mailchimp"}, {"state": "lost"}, {"event_type": "x" * 65}])
def test_a_bad_filter_is_a_400_naming_the_field(api_client, org, params):
    response = api_client.get("/api/webhook-events", params)

    assert response.status_code == 400 and list(response.json()) == list(params)


# --- Reprocess -----------------------------------------------------------------------------------------------


def test_reprocess_is_staff_only(api_client, org, enqueued, django_capture_on_commit_callbacks):
    event = WebhookEventFactory(organization=org, state=State.FAILED)

    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/webhook-events/{event.pk}/reprocess")

    event.refresh_from_db()
    assert response.status_code == 403
    assert event.state == State.FAILED and not enqueued.called


@pytest.mark.parametrize("state", [State.FAILED, State.UNMATCHED, State.IGNORED])
def test_reprocess_resets_the_event_and_enqueues_it_after_commit(
    staff_client, org, enqueued, django_capture_on_commit_callbacks, state
):
    event = WebhookEventFactory(organization=org, state=state, error="no match", attempts=30)
    event.processed_at = event.received_at
    event.save(update_fields=["processed_at"])

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff_client.post(f"/api/webhook-events/{event.pk}/reprocess/")
    assert not enqueued.called  # nothing leaves before the transaction commits
    for callback in callbacks:
        callback()

    event.refresh_from_db()
    assert response.status_code == 202 and response.json()["state"] == "received"
    assert (event.state, event.error, event.attempts, event.processed_at) == (State.RECEIVED, "", 0, None)
    enqueued.assert_called_once_with(event.pk)


@pytest.mark.parametrize("state", [State.PROCESSED, State.RECEIVED, State.PROCESSING])
def test_reprocess_refuses_events_that_are_done_or_on_their_way(
    staff_client, org, enqueued, django_capture_on_commit_callbacks, state
):
    event = WebhookEventFactory(organization=org, state=state)

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/api/webhook-events/{event.pk}/reprocess")

    event.refresh_from_db()
    assert response.status_code == 400 and "state" in response.json()
    assert event.state == state and not enqueued.called


def test_staff_cannot_reprocess_another_organizations_event(staff_client, enqueued):
    event = WebhookEventFactory(organization=OrganizationFactory(), state=State.FAILED)

    assert staff_client.post(f"/api/webhook-events/{event.pk}/reprocess").status_code == 404


def test_a_reprocessed_unmatched_event_now_reaches_its_outcome(
    superuser_client, outcome, enqueued, django_capture_on_commit_callbacks
):
    """End to end: the event came before its outcome existed; the sweep gave up; a superuser retries it."""
    payload = sendgrid_event(outcome, "delivered", 1)
    event = WebhookEventFactory(
        provider_event_id=payload["sg_event_id"], event_type="delivered", raw_body=json.dumps(payload),
        state=State.UNMATCHED, attempts=30, organization=None,
    )  # fmt: skip

    with django_capture_on_commit_callbacks(execute=True):
        assert superuser_client.post(f"/api/webhook-events/{event.pk}/reprocess").status_code == 202
    process_webhook_event(*enqueued.call_args.args)  # what the worker runs

    event.refresh_from_db()
    outcome.refresh_from_db()
    assert event.state == State.PROCESSED and event.organization_id == outcome.organization_id
    assert outcome.delivered


def test_staff_of_an_organization_see_only_its_events_not_unlinked_ones(staff_client, org, enqueued):
    mine = WebhookEventFactory(organization=org)
    unlinked = WebhookEventFactory(organization=None, state=State.UNMATCHED, raw_body='{"email": "x@other.example"}')
    WebhookEventFactory(organization=OrganizationFactory())

    assert _ids(staff_client.get("/api/webhook-events/")) == {mine.pk}
    assert staff_client.get(f"/api/webhook-events/{unlinked.pk}").status_code == 404
    assert staff_client.post(f"/api/webhook-events/{unlinked.pk}/reprocess").status_code == 404
    assert not enqueued.called


def test_the_schema_documents_the_paginated_list_and_its_filters(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/webhook-events"]["get"]
    assert {parameter["name"] for parameter in operation["parameters"]} == {"provider", "state", "event_type", "page"}
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert response == {"$ref": "#/components/schemas/PaginatedWebhookEventOutputList"}
    page = schema["components"]["schemas"]["PaginatedWebhookEventOutputList"]
    assert set(page["properties"]) == {"count", "next", "previous", "results"}


def test_pages_hold_fifty_events(api_client, org):
    WebhookEventFactory.create_batch(51, organization=org)

    first = api_client.get("/api/webhook-events").json()
    second = api_client.get("/api/webhook-events", {"page": 2}).json()

    assert first["count"] == 51 and len(first["results"]) == 50 and first["next"] and first["previous"] is None
    assert len(second["results"]) == 1 and second["next"] is None
