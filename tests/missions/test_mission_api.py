"""POST /rex/command and friends: validation, idempotency, tenant isolation (no worker needed)."""

import pytest
from rest_framework.test import APIClient

from agents.missions import mission_leads_materialize
from agents.models import Mission, MissionLead
from tests.factories import CampaignFactory, LeadFactory, MembershipFactory, MissionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def leads(membership):
    return LeadFactory.create_batch(3, organization=membership.organization)


def test_command_creates_a_queued_mission_with_its_leads(api_client, leads, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api_client.post(
            "/rex/command", {"type": "lead_reactivation", "priority": 80, "lead_ids": [lead.pk for lead in leads]},
            format="json",
        )  # fmt: skip
    assert response.status_code == 202, response.json()
    body = response.json()
    mission = Mission.objects.get(pk=body["id"])
    assert body["status"] == "queued" and body["progress"] == {"processed": 0, "total": 3, "percent": 0.0}
    assert body["links"]["self"].endswith(f"/rex/command/{mission.pk}")
    assert mission.priority == 80 and mission.total == 3
    assert sorted(mission.params["lead_ids"]) == sorted(x.pk for x in leads)
    assert len(callbacks) == 1  # the coordinator is enqueued once, after commit
    mission_leads_materialize(mission=mission)  # what the launch task does first
    assert set(MissionLead.objects.filter(mission=mission).values_list("lead_id", flat=True)) == {x.pk for x in leads}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "world_domination", "lead_ids": [1]}, "type"),
        ({"type": "lead_reactivation", "priority": 101, "lead_ids": [1]}, "priority"),
        ({"type": "lead_reactivation"}, "lead_ids"),
        ({"type": "lead_reactivation", "lead_ids": "all"}, "lead_ids"),
        ({"type": "lead_reactivation", "lead_ids": [1], "filter": {"state": "new"}}, "lead_ids"),
        ({"type": "lead_reactivation", "filter": {"favourite_colour": "red"}}, "filter"),
        ({"type": "lead_reactivation", "campaign_id": 999999}, "campaign_id"),
        ({"type": "lead_reactivation", "lead_ids": [999999]}, "lead_ids"),
    ],
)
def test_bad_command_is_400_with_the_field_and_stores_nothing(api_client, leads, payload, field):
    response = api_client.post("/rex/command", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Mission.objects.count() == 0 and MissionLead.objects.count() == 0


def test_another_organizations_lead_is_unknown(api_client, leads):
    stranger = LeadFactory()
    response = api_client.post("/rex/command", {"type": "lead_reactivation", "lead_ids": [stranger.pk]}, format="json")
    assert response.status_code == 400
    assert str(stranger.pk) in str(response.json()["lead_ids"])


def test_idempotency_key_returns_the_same_mission(api_client, leads):
    payload = {"type": "lead_reactivation", "lead_ids": [leads[0].pk]}
    first = api_client.post("/rex/command", payload, format="json", HTTP_IDEMPOTENCY_KEY="launch-42")
    again = api_client.post("/rex/command", payload, format="json", HTTP_IDEMPOTENCY_KEY="launch-42")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Mission.objects.count() == 1


def test_campaign_and_filter_select_leads(api_client, membership, leads):
    campaign = CampaignFactory(organization=membership.organization)
    campaign.leads.set(leads[:2])
    by_campaign = api_client.post("/rex/command", {"type": "enrichment", "campaign_id": campaign.pk}, format="json")
    assert by_campaign.status_code == 202 and by_campaign.json()["progress"]["total"] == 2
    leads[2].industry = "Fintech"
    leads[2].save()
    by_filter = api_client.post(
        "/rex/command", {"type": "enrichment", "filter": {"industry": "fintech"}}, format="json"
    )
    assert by_filter.status_code == 202 and by_filter.json()["progress"]["total"] == 1


def test_detail_with_logs_and_cancel(api_client, membership):
    mission = MissionFactory(organization=membership.organization, status="queued")
    detail = api_client.get(f"/rex/command/{mission.pk}?include_logs=true")
    assert detail.status_code == 200
    assert detail.json()["logs"] == {"count": 0, "page": 1, "pages": 1, "results": []}
    cancelled = api_client.post(f"/rex/command/{mission.pk}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api_client.post(f"/rex/command/{mission.pk}/cancel")
    assert again.status_code == 400 and "status" in again.json()


def test_agent_mission_update_follows_the_lifecycle(api_client, membership):
    mission = MissionFactory(organization=membership.organization, status="queued")
    ok = api_client.post("/agent/mission", {"mission_id": mission.pk, "status": "running"}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "running"
    illegal = api_client.post("/agent/mission", {"mission_id": mission.pk, "status": "running"}, format="json")
    assert illegal.status_code == 400
    mission.refresh_from_db()
    assert mission.status == "running"


def test_stats_and_agent_status_answer(api_client):
    stats = api_client.get("/rex/stats")
    assert stats.status_code == 200
    assert set(stats.json()["layers"]) == {"state_machine", "rules", "llm"}
    status = api_client.get("/agent/status")
    assert status.status_code == 200
    assert len(status.json()["agents"]) == 8
    assert "alive" in status.json()["workers"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/rex/command/{mission}"),
        ("post", "/rex/command/{mission}/cancel"),
        ("get", "/api/leads/{lead}"),
        ("patch", "/api/leads/{lead}"),
        ("get", "/api/campaigns/{campaign}"),
        ("patch", "/api/campaigns/{campaign}"),
    ],
)
def test_another_organizations_rows_are_404(api_client, method, path):
    other = MembershipFactory().organization
    ids = {
        "mission": MissionFactory(organization=other).pk,
        "lead": LeadFactory(organization=other).pk,
        "campaign": CampaignFactory(organization=other).pk,
    }
    response = getattr(api_client, method)(path.format(**ids), {}, format="json")
    assert response.status_code == 404


def test_agent_mission_update_of_another_organization_is_404(api_client):
    mission = MissionFactory(organization=MembershipFactory().organization)
    response = api_client.post("/agent/mission", {"mission_id": mission.pk, "status": "cancelled"}, format="json")
    assert response.status_code == 404
    mission.refresh_from_db()
    assert mission.status != "cancelled"


def test_lists_only_show_the_callers_rows(membership):
    mine, theirs = APIClient(), APIClient()
    mine.force_authenticate(membership.user)
    other = MembershipFactory()
    theirs.force_authenticate(other.user)
    CampaignFactory(organization=membership.organization, name="Mine")
    CampaignFactory(organization=other.organization, name="Theirs")
    assert [c["name"] for c in mine.get("/api/campaigns").json()["results"]] == ["Mine"]
    assert [c["name"] for c in theirs.get("/api/campaigns").json()["results"]] == ["Theirs"]
