import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from agents.models import Lead
from agents.services import operator_create
from tests.factories import LeadFactory, MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/me/", "/api/leads/"])
def test_api_requires_authentication(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.json()["detail"]


def test_user_without_organization_is_refused():
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("loner"))
    response = client.get("/api/leads/")
    assert response.status_code == 403
    assert "organization" in response.json()["detail"]


def test_token_authentication():
    membership, token = operator_create(organization_name="Acme", email="ops@acme.io")
    response = APIClient().get("/api/me/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200
    assert response.json() == {
        "user": "ops@acme.io", "organization_id": membership.organization_id, "organization": "Acme", "role": "operator"
    }  # fmt: skip


def test_leads_are_scoped_to_the_callers_organization(api_client, membership):
    mine = LeadFactory(organization=membership.organization)
    LeadFactory()  # another organization's
    response = api_client.get("/api/leads/")
    assert response.status_code == 200
    assert [row["email"] for row in response.json()["results"]] == [mine.email]


def test_create_lead_normalizes_and_validates(api_client, membership):
    response = api_client.post(
        "/api/leads/", {"email": "Maya@Brightlane.IO", "phone": "(415) 555-0131", "timezone": "America/New_York"}
    )
    assert response.status_code == 201, response.json()
    assert response.json()["email"] == "maya@brightlane.io"
    assert response.json()["phone"] == "+14155550131"

    duplicate = api_client.post("/api/leads/", {"email": "maya@brightlane.io"})
    assert duplicate.status_code == 400
    assert "email" in duplicate.json()


def test_bad_lead_gets_field_errors_and_writes_nothing(api_client, membership):
    response = api_client.post("/api/leads/", {"email": "nope", "phone": "12", "timezone": "Nowhere/City"})
    assert response.status_code == 400
    assert "email" in response.json()
    assert Lead.objects.count() == 0


def test_throttle_answers_429_after_100_requests_a_minute():
    membership = MembershipFactory()
    client = APIClient()
    client.force_authenticate(membership.user)
    statuses = [client.get("/api/me/").status_code for _ in range(101)]
    assert statuses[:100] == [200] * 100
    assert statuses[100] == 429


def test_openapi_schema_and_docs(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    # The contract paths, without a trailing slash (both forms are served).
    for path in (b"/rex/command:", b"/rex/command/{mission_id}:", b"/api/leads:", b"/domain/health:"):
        assert path in schema.content
    assert client.get("/api/docs/").status_code == 200


def test_the_schema_has_no_warnings_and_documents_paginated_lists_as_pages():
    """A generated client must read what the API answers: every list that paginates is {count, next, previous,
    results} in the schema too, and generation is warning-free (a warning is usually a wrong schema)."""
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)

    assert not GENERATOR_STATS._warn_cache and not GENERATOR_STATS._error_cache
    for path in ("/api/leads", "/api/campaigns", "/api/messages", "/api/linkedin-tasks", "/api/outcomes"):
        ok = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        component = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
        assert set(component["properties"]) == {"count", "next", "previous", "results"}, path
