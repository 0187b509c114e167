"""/api/outcomes: every field group of the row, scoped to the caller's organization, filterable."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from outcomes.models import OutcomeLabel
from tests.factories import (
    LeadFactory,
    ModelVersionFactory,
    OutcomeLabelFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

FIELD_GROUPS = {
    "message": {"channel", "subject_line", "message_body", "sent_at"},
    "agent decisions": {"framework", "tone", "agent_decisions"},
    "delivery": {"delivered", "delivered_at", "bounced", "bounce_type", "bounce_reason"},
    "engagement": {
        "opened", "clicked", "open_count", "click_count", "bot_open_count", "bot_click_count", "first_opened_at",
        "first_clicked_at", "unsubscribed", "spam_reported",
    },
    "reply and sentiment": {
        "replied", "replied_at", "reply_text", "reply_sentiment_score", "sentiment_label", "interest_signal",
        "interest_level", "objection_detected", "objection_type", "sentiment_reasoning",
    },
    "meeting": {"meeting_booked", "meeting_booked_at", "meeting_completed", "meeting_no_show"},
    "revenue": {
        "opportunity_created", "deal_closed", "deal_lost", "deal_value", "deal_closed_at", "time_to_close_days",
    },
    "lead context": {"lead_industry", "lead_role", "company_size", "icp_score", "lead_context"},
    "training": {"training_label", "training_weight", "included_in_training", "included_in_training_at"},
}  # fmt: skip


@pytest.fixture
def org(membership):
    return membership.organization


@pytest.fixture
def mine(org):
    return OutcomeLabelFactory(organization=org)


@pytest.fixture
def theirs():
    return OutcomeLabelFactory()


def _ids(response) -> set[int]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_list_shows_only_my_organizations_outcomes_paginated(api_client, mine, theirs):
    response = api_client.get("/api/outcomes")

    body = response.json()
    assert _ids(response) == {mine.pk}
    assert body["count"] == 1 and body["next"] is None and body["previous"] is None


def test_list_answers_with_a_trailing_slash_too(api_client, mine):
    assert _ids(api_client.get("/api/outcomes/")) == {mine.pk}


def test_detail_has_every_field_group(api_client, mine):
    mine.reply_sentiment_score, mine.sentiment_label, mine.bot_open_count = -0.4, "negative", 2
    mine.training_label, mine.training_weight = OutcomeLabel.Label.NEGATIVE, 2.0
    mine.save()

    body = api_client.get(f"/api/outcomes/{mine.pk}").json()

    for group, fields in FIELD_GROUPS.items():
        assert fields <= set(body), f"{group} is missing {fields - set(body)}"
    assert (body["reply_sentiment_score"], body["sentiment_label"], body["bot_open_count"]) == (-0.4, "negative", 2)
    assert (body["training_label"], body["training_weight"]) == ("negative", 2.0)
    assert (body["message"], body["lead"], body["campaign"]) == (mine.message_id, mine.lead_id, mine.campaign_id)


def test_every_model_field_is_in_the_output(api_client, mine):
    body = api_client.get(f"/api/outcomes/{mine.pk}/").json()
    model_fields = {field.name for field in OutcomeLabel._meta.concrete_fields} - {"organization"}
    assert model_fields <= set(body)


def test_another_organizations_outcome_is_a_404(api_client, theirs):
    assert api_client.get(f"/api/outcomes/{theirs.pk}").status_code == 404


@pytest.mark.parametrize("name", ["campaign", "mission", "lead", "message", "model_version", "label", "channel"])
def test_each_filter_keeps_only_matching_rows(api_client, org, name):
    other = OutcomeLabelFactory(organization=org)  # differs in every filtered value
    match = OutcomeLabelFactory(
        organization=org, message__channel="sms", model_version=ModelVersionFactory(), training_label="positive"
    )
    value = {
        "campaign": match.campaign_id,
        "mission": match.mission_id,
        "lead": match.lead_id,
        "message": match.message_id,
        "model_version": match.model_version_id,
        "label": "positive",
        "channel": "sms",
    }[name]
    assert other.channel == "email" and other.training_label == "neutral"

    assert _ids(api_client.get("/api/outcomes", {name: value})) == {match.pk}


def test_filters_combine(api_client, org):
    match = OutcomeLabelFactory(organization=org, training_label="positive")
    OutcomeLabelFactory(organization=org, training_label="positive")
    OutcomeLabelFactory(organization=org, campaign=match.campaign, message=None, lead=match.lead)

    response = api_client.get("/api/outcomes", {"campaign": match.campaign_id, "label": "positive"})

    assert _ids(response) == {match.pk}


def test_filtering_by_another_organizations_campaign_finds_nothing(api_client, mine, theirs):
    assert _ids(api_client.get("/api/outcomes", {"campaign": theirs.campaign_id})) == set()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"campaign": "abc"}, "campaign"),
        ({"mission": "0"}, "mission"),
        ({"lead": "-3"}, "lead"),
        ({"message": "1.5"}, "message"),
        ({"model_version": "x"}, "model_version"),
        ({"label": "great"}, "label"),
        ({"channel": "fax"}, "channel"),
    ],
)
def test_a_bad_filter_value_is_a_400_naming_the_field(api_client, mine, params, field):
    response = api_client.get("/api/outcomes", params)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_anonymous_and_organizationless_callers_are_refused(mine):
    assert APIClient().get("/api/outcomes").status_code in (401, 403)
    client = APIClient()
    client.force_authenticate(UserFactory())
    assert client.get("/api/outcomes").status_code == 403


def test_pages_hold_fifty_rows(api_client, org):
    lead = LeadFactory(organization=org)
    OutcomeLabel.objects.bulk_create(
        OutcomeLabel(organization=org, lead=lead, framework="PAS", tone="direct") for _ in range(51)
    )

    first = api_client.get("/api/outcomes").json()
    second = api_client.get("/api/outcomes", {"page": 2}).json()

    assert first["count"] == 51 and len(first["results"]) == 50 and first["next"]
    assert len(second["results"]) == 1


def test_list_query_count_does_not_grow_with_rows(api_client, org):
    OutcomeLabelFactory(organization=org)
    with CaptureQueriesContext(connection) as one_row:
        api_client.get("/api/outcomes")
    for _ in range(4):
        OutcomeLabelFactory(organization=org)
    with CaptureQueriesContext(connection) as five_rows:
        assert len(api_client.get("/api/outcomes").json()["results"]) == 5
    assert len(five_rows) == len(one_row)


@pytest.mark.parametrize("name", ["campaign", "mission", "lead", "message", "model_version"])
def test_an_id_beyond_64_bits_is_a_400_not_an_overflow(api_client, mine, name):
    response = api_client.get("/api/outcomes/", {name: "99999999999999999999"})

    assert response.status_code == 400
    assert list(response.json()) == [name]


@pytest.mark.parametrize("name", ["campaign", "mission", "lead", "message", "model_version"])
def test_the_largest_64_bit_id_is_a_valid_filter(api_client, mine, name):
    assert _ids(api_client.get("/api/outcomes", {name: 2**63 - 1})) == set()


def test_a_page_past_the_end_is_a_404(api_client, mine):
    assert api_client.get("/api/outcomes", {"page": 2}).status_code == 404


def test_the_schema_documents_the_paginated_list_and_its_filters(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/outcomes"]["get"]
    parameters = {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}
    assert set(parameters) == {"campaign", "mission", "lead", "message", "model_version", "label", "channel", "page"}
    for name in ("campaign", "mission", "lead", "message", "model_version"):
        assert (parameters[name]["minimum"], parameters[name]["maximum"]) == (1, 2**63 - 1)
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert response == {"$ref": "#/components/schemas/PaginatedOutcomeLabelOutputList"}
    page = schema["components"]["schemas"]["PaginatedOutcomeLabelOutputList"]
    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    assert page["properties"]["results"]["items"] == {"$ref": "#/components/schemas/OutcomeLabelOutput"}
