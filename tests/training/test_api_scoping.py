"""The registry serves every organization; what each caller sees of it: figures from their own organization's
labels (staff: everyone's), no run or model internals, only their own and the shared runs; and the holdout."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from agents.decisions.rules import rules_install_defaults
from agents.models import AgentRun, Lead, Mission
from agents.pipeline.personalizer import PersonalizerAgent
from agents.pipeline.runner import run_batch
from tests.factories import (
    AgentRunFactory,
    LeadFactory,
    MembershipFactory,
    MissionFactory,
    MissionLeadFactory,
    ModelVersionFactory,
    OrganizationFactory,
    OutcomeLabelFactory,
    TrainingRunFactory,
    UserFactory,
)
from training.models import ModelVersion, TrainingRun
from training.registry import model_deploy
from training.split import is_holdout

pytestmark = pytest.mark.django_db

CHAMPION, CHALLENGER = ModelVersion.Role.CHAMPION, ModelVersion.Role.CHALLENGER
MODEL_INTERNALS = {"provider_model_id", "artifact_path", "training_metadata"}
RUN_INTERNALS = {"params", "train_examples", "validation_examples", "provider_job_id", "trained_tokens", "events"}


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def ours(membership):
    return membership.organization


@pytest.fixture
def staff_client():
    return _client(MembershipFactory(user__is_staff=True).user)


@pytest.fixture
def ab_test(ours):
    """A champion and a challenger with labels in two organizations; the other one closes big deals."""
    theirs = OrganizationFactory()
    champion = ModelVersionFactory(kind="policy", backend="local", artifact_path="/var/models/a.joblib")
    challenger = ModelVersionFactory(
        kind="policy", backend="local", artifact_path="/var/models/b.joblib", training_metadata={"examples": 9000}
    )
    model_deploy(version=champion, role=CHAMPION)
    model_deploy(version=challenger, role=CHALLENGER, traffic_percentage=10)
    for organization, version, n, deals in (
        (ours, champion, 4, 0),
        (ours, challenger, 2, 1),
        (theirs, champion, 10, 5),
        (theirs, challenger, 3, 3),
    ):
        for i in range(n):
            closed = i < deals
            OutcomeLabelFactory(
                organization=organization,
                model_version=version,
                replied=closed,
                deal_closed=closed,
                deal_value=Decimal(50_000) if closed else None,
            )
    return champion, challenger


def test_a_member_sees_their_own_organizations_figures_on_the_leaderboard(api_client, staff_client, ab_test):
    champion, challenger = ab_test

    mine = {row["id"]: row for row in api_client.get("/training/leaderboard").json()["results"]}
    everyone = {row["id"]: row for row in staff_client.get("/training/leaderboard").json()["results"]}

    assert (mine[champion.pk]["messages"], mine[champion.pk]["deals"], mine[champion.pk]["revenue"]) == (4, 0, 0.0)
    assert (mine[challenger.pk]["messages"], mine[challenger.pk]["revenue"]) == (2, 50_000.0)
    assert mine[challenger.pk]["vs_champion"]["close_rate"] == 0.5 and mine[challenger.pk]["rank"] == 1
    assert (everyone[champion.pk]["messages"], everyone[champion.pk]["revenue"]) == (14, 250_000.0)
    assert (everyone[challenger.pk]["messages"], everyone[challenger.pk]["revenue"]) == (5, 200_000.0)


def test_a_member_sees_their_own_figures_and_no_internals_in_the_model_list(api_client, staff_client, ab_test):
    champion, challenger = ab_test

    mine = {row["id"]: row for row in api_client.get("/training/models?status=deployed").json()["results"]}
    everyone = {row["id"]: row for row in staff_client.get("/training/models?status=deployed").json()["results"]}

    assert mine[challenger.pk]["performance"]["revenue"] == 50_000.0
    assert mine[challenger.pk]["performance"]["vs_champion"]["champion_messages"] == 4
    assert mine[champion.pk]["performance"]["vs_champion"] is None
    assert everyone[challenger.pk]["performance"]["revenue"] == 200_000.0
    assert everyone[challenger.pk]["performance"]["vs_champion"]["champion_messages"] == 14
    assert not MODEL_INTERNALS & set(mine[challenger.pk])
    assert everyone[challenger.pk]["training_metadata"] == {"examples": 9000}
    assert set(everyone[challenger.pk]) >= MODEL_INTERNALS


def test_a_member_sees_shared_and_own_runs_without_internals(api_client, staff_client, ours, ab_test):
    _, challenger = ab_test
    shared = TrainingRunFactory(
        kind="policy", backend="local", status=TrainingRun.Status.SUCCEEDED, model_version=challenger
    )
    own = TrainingRunFactory(organization=ours, provider_job_id="ftjob-own", error="boom")
    foreign = TrainingRunFactory(organization=OrganizationFactory(), provider_job_id="ftjob-foreign")

    seen = api_client.get(f"/training/status/{shared.pk}").json()
    assert seen["model_version"]["performance"]["revenue"] == 50_000.0
    assert not (RUN_INTERNALS | {"error"}) & set(seen) and not MODEL_INTERNALS & set(seen["model_version"])
    assert api_client.get("/training/status/ftjob-own").json()["job_id"] == own.pk
    for job_id in (foreign.pk, "ftjob-foreign"):
        response = api_client.get(f"/training/status/{job_id}")
        assert response.status_code == 404 and "detail" in response.json()

    as_staff = staff_client.get(f"/training/status/{foreign.pk}")
    assert as_staff.status_code == 200 and set(as_staff.json()) >= RUN_INTERNALS
    assert staff_client.get(f"/training/status/{shared.pk}").json()["model_version"]["performance"]["revenue"] == (
        200_000.0
    )


def test_stats_count_the_runs_a_caller_may_see(api_client, staff_client, ours, ab_test):
    TrainingRunFactory(status=TrainingRun.Status.SUCCEEDED)  # shared
    TrainingRunFactory(organization=ours, status=TrainingRun.Status.FAILED)
    latest = TrainingRunFactory(organization=OrganizationFactory(), status=TrainingRun.Status.TRAINING)

    mine = api_client.get("/training/stats").json()
    everyone = staff_client.get("/training/stats").json()

    assert mine["runs_by_status"] == {"succeeded": 1, "failed": 1}
    assert everyone["runs_by_status"] == {"succeeded": 1, "failed": 1, "training": 1}
    assert everyone["last_run"]["id"] == latest.pk and mine["last_run"]["id"] != latest.pk
    assert "events" not in mine["last_run"] and "events" in everyone["last_run"]
    deployed = {row["id"]: row for row in mine["deployed"]}
    assert deployed[ab_test[1].pk]["performance"]["revenue"] == 50_000.0


def test_a_member_of_no_organization_is_refused_not_failed():
    client = _client(UserFactory())

    for path in ("/training/leaderboard", "/training/models", "/training/stats", "/training/status/1"):
        response = client.get(path)
        assert response.status_code == 403 and "organization" in response.json()["detail"]


# --- Holdout ---------------------------------------------------------------------------------------------------


@pytest.fixture
def mission(ours):
    rules_install_defaults(organization=ours)
    return MissionFactory(organization=ours, status=Mission.Status.RUNNING, params={"sender_name": "Alex"})


def test_stats_compare_held_out_leads_with_treated_ones(api_client, settings, ours, mission):
    settings.OPENAI_API_KEY = ""
    settings.TRAINING_HOLDOUT_PERCENTAGE = 30
    leads = [LeadFactory(organization=ours, state=Lead.State.QUALIFIED, icp_score=0.9, phone="") for _ in range(40)]
    for lead in leads:
        MissionLeadFactory(mission=mission, lead=lead)
    run_batch(agent_class=PersonalizerAgent, mission_id=mission.pk, lead_ids=[lead.pk for lead in leads])
    held = [lead for lead in leads if is_holdout(lead_id=lead.pk)]
    treated = [lead for lead in leads if not is_holdout(lead_id=lead.pk)]
    assert held and treated  # 30% of 40 leads
    for lead in treated:  # sent: an outcome label each
        OutcomeLabelFactory(organization=ours, message=None, lead=lead)
    # One held-out lead came back by itself; half the treated ones replied, one of them is won.
    Lead.objects.filter(pk=held[0].pk).update(state=Lead.State.REPLIED)
    replied = treated[: len(treated) // 2]
    Lead.objects.filter(pk__in=[lead.pk for lead in replied]).update(state=Lead.State.REPLIED)
    Lead.objects.filter(pk=replied[0].pk).update(state=Lead.State.WON)
    LeadFactory(organization=ours, state=Lead.State.WON)  # never reached the personalizer: in neither group
    AgentRunFactory(  # a run without a lead counts for nothing (and must not empty the treated group)
        mission=mission,
        lead=None,
        agent=AgentRun.Agent.PERSONALIZER,
        decision="skip",
        output_summary={"skipped": "holdout"},
    )
    other = OrganizationFactory()
    OutcomeLabelFactory(organization=other, message=None, lead=LeadFactory(organization=other, state="won"))

    holdout = api_client.get("/training/stats").json()["holdout"]

    assert holdout["holdout_percentage"] == 30.0
    assert holdout["holdout"] == {"leads": len(held), "positive": 1, "positive_rate": round(1 / len(held), 4)}
    treated_rate = round(len(replied) / len(treated), 4)
    assert holdout["treated"] == {"leads": len(treated), "positive": len(replied), "positive_rate": treated_rate}
    assert holdout["lift"] == round(treated_rate - round(1 / len(held), 4), 4)
    assert holdout["positive_states"] == ["replied", "meeting", "won"]


def test_without_a_holdout_the_lift_is_not_measurable(api_client):
    holdout = api_client.get("/training/stats").json()["holdout"]

    assert holdout["holdout_percentage"] == 0.0
    assert holdout["holdout"] == {"leads": 0, "positive": 0, "positive_rate": None}
    assert holdout["lift"] is None
