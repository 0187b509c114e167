"""The training endpoints: staff-only writes, clear 4xx, the contract paths."""

from unittest import mock

import pytest
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, ModelVersionFactory, OutcomeLabelFactory, TrainingRunFactory
from training.models import ModelVersion, TrainingRun


@pytest.fixture
def staff_client(db):
    membership = MembershipFactory(user__is_staff=True)
    client = APIClient()
    client.force_authenticate(membership.user)
    return client


def _policy(**fields) -> ModelVersion:
    return ModelVersionFactory(kind="policy", backend="local", artifact_path="policy.joblib", **fields)


def test_run_is_for_staff_only(api_client):
    response = api_client.post("/training/run", {"kind": "policy"}, format="json")

    assert response.status_code == 403
    assert not TrainingRun.objects.exists()


def test_run_starts_a_cycle_in_the_worker_and_points_at_its_status(staff_client, django_capture_on_commit_callbacks):
    payload = {"kind": "policy", "min_quality_score": 0.6, "deploy_immediately": False, "ab_test_percentage": 10.0}
    with (
        mock.patch("training.tasks.run_training_cycle_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = staff_client.post("/training/run", payload, format="json")

    assert response.status_code == 202, response.json()
    body = response.json()
    run = TrainingRun.objects.get(pk=body["job_id"])
    delay.assert_called_once_with(run.pk)
    assert run.params["min_quality_score"] == 0.6
    assert body["status_url"].endswith(f"/training/status/{run.pk}")
    assert staff_client.get(f"/training/status/{run.pk}").json()["status"] == "pending"


def test_run_refuses_bad_input_field_by_field(staff_client):
    response = staff_client.post(
        "/training/run", {"kind": "poetry", "min_quality_score": 3, "ab_test_percentage": 90}, format="json"
    )

    assert response.status_code == 400
    assert set(response.json()) >= {"kind", "min_quality_score", "ab_test_percentage"}
    assert not TrainingRun.objects.exists()


def test_a_second_run_in_the_same_week_is_a_conflict(staff_client):
    earlier = TrainingRunFactory(kind="policy", backend="local", status=TrainingRun.Status.SUCCEEDED)

    response = staff_client.post("/training/run", {"kind": "policy"}, format="json")

    assert response.status_code == 409
    assert response.json()["run_id"] == earlier.pk


def test_status_of_an_unknown_job_is_404(staff_client):
    assert staff_client.get("/training/status/999999").status_code == 404


def test_models_filter_by_status(api_client):
    deployed = _policy(version="v1.0.0", status="deployed", ab_role="champion", traffic_percentage=100)
    _policy(version="v1.1.0", status="retired")

    response = api_client.get("/training/models?status=deployed")

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [deployed.pk]
    assert api_client.get("/training/models?status=sleeping").status_code == 400


@mock.patch("training.policy.PolicyModel.load")  # the artifact loads (checked before deploying a local policy)
def test_deploy_puts_a_ready_model_on_the_asked_share(load, staff_client, api_client):
    _policy(version="v1.0.0", status="deployed", ab_role="champion", traffic_percentage=100)
    ready = _policy(version="v1.1.0", status="ready")

    assert api_client.post(f"/training/deploy/{ready.pk}", {"traffic_percentage": 20}, format="json").status_code == 403
    response = staff_client.post(f"/training/deploy/{ready.pk}", {"traffic_percentage": 20}, format="json")

    assert response.status_code == 200, response.json()
    assert (response.json()["status"], response.json()["ab_role"]) == ("deployed", "challenger")
    assert response.json()["traffic_percentage"] == 20.0
    bad = staff_client.post(f"/training/deploy/{ready.pk}", {"traffic_percentage": 0}, format="json")
    assert bad.status_code == 400 and "traffic_percentage" in bad.json()
    failed = _policy(version="v1.2.0", status="failed")
    refused = staff_client.post(f"/training/deploy/{failed.pk}", {"traffic_percentage": 20}, format="json")
    assert refused.status_code == 400 and "failed" in str(refused.json())


def test_promote_winner_reports_each_decision(staff_client):
    _policy(version="v1.0.0", status="deployed", ab_role="challenger", traffic_percentage=10)

    response = staff_client.post("/training/promote-winner", {"kind": "policy"}, format="json")

    assert response.status_code == 200
    [decision] = response.json()["decisions"]
    assert decision["outcome"] == "waiting"


def test_stats_count_the_callers_training_data(api_client, membership):
    OutcomeLabelFactory(organization=membership.organization, training_label="positive")
    OutcomeLabelFactory(training_label="positive")  # another organization's

    body = api_client.get("/training/stats").json()

    assert body["outcomes"]["total"] == 1
    assert body["outcomes"]["positive"] == 1


def test_leaderboard_lists_versions(api_client):
    _policy(version="v1.0.0", status="deployed", ab_role="champion", traffic_percentage=100)

    response = api_client.get("/training/leaderboard?kind=policy")

    assert response.status_code == 200
    assert [row["version"] for row in response.json()["results"]] == ["v1.0.0"]
    assert api_client.get("/training/leaderboard?kind=x").status_code == 400
