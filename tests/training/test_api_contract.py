"""The training endpoints answer what their OpenAPI schema says, error responses included, and the status URL
takes any job id (the run's, or its OpenAI fine-tuning job's) with a JSON 404 for an unknown one."""

import copy
from decimal import Decimal
from unittest import mock

import jsonschema
import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from tests.factories import (
    MembershipFactory,
    ModelVersionFactory,
    OutcomeLabelFactory,
    TrainingRunFactory,
)
from training.models import ModelVersion, TrainingRun
from training.registry import model_deploy

pytestmark = pytest.mark.django_db

CHAMPION, CHALLENGER = ModelVersion.Role.CHAMPION, ModelVersion.Role.CHALLENGER


@pytest.fixture(scope="module")
def openapi():
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def staff_client(membership):
    membership.user.is_staff = True
    membership.user.save(update_fields=["is_staff"])
    client = APIClient()
    client.force_authenticate(membership.user)
    return client


@pytest.fixture
def member_client():
    client = APIClient()
    client.force_authenticate(MembershipFactory().user)
    return client


def _strict(schema, components):
    """The schema with refs inlined, OpenAPI's ``nullable`` as JSON Schema, and no undocumented keys allowed."""
    if isinstance(schema, list):
        return [_strict(item, components) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return _strict(components[schema["$ref"].rsplit("/", 1)[1]], components)
    schema = {key: _strict(value, components) for key, value in schema.items()}
    if "properties" in schema:
        schema.setdefault("additionalProperties", False)
    if schema.pop("nullable", False):
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def assert_documented(openapi, response, path: str, method: str = "get") -> dict:
    """The response's status is documented for the operation and its body validates against that schema."""
    operation = openapi["paths"][path][method]
    documented = operation["responses"]
    assert str(response.status_code) in documented, (response.status_code, sorted(documented))
    schema = documented[str(response.status_code)]["content"]["application/json"]["schema"]
    body = response.json()
    jsonschema.validate(body, _strict(copy.deepcopy(schema), openapi["components"]["schemas"]))
    return body


def _policy(**fields) -> ModelVersion:
    values = {"kind": "policy", "backend": "local", "artifact_path": "/var/models/p.joblib", **fields}
    return ModelVersionFactory(**values)


@pytest.fixture
def ab_test(membership):
    champion, challenger = _policy(), _policy()
    model_deploy(version=champion, role=CHAMPION)
    model_deploy(version=challenger, role=CHALLENGER, traffic_percentage=10)
    for version, deal in ((champion, False), (challenger, True), (challenger, False)):
        OutcomeLabelFactory(
            organization=membership.organization,
            model_version=version,
            replied=True,
            deal_closed=deal,
            deal_value=Decimal(1000) if deal else None,
        )
    return champion, challenger


def test_model_list_is_documented_as_an_object_of_results(openapi, staff_client, member_client, ab_test):
    for client in (staff_client, member_client):
        body = assert_documented(openapi, client.get("/training/models"), "/training/models")
        rows = {row["id"]: row for row in body["results"]}
        champion, challenger = ab_test
        assert rows[challenger.pk]["performance"]["vs_champion"]["champion_id"] == champion.pk
    assert_documented(openapi, staff_client.get("/training/models?kind=poetry"), "/training/models")


def test_leaderboard_rows_are_typed(openapi, staff_client, ab_test):
    body = assert_documented(openapi, staff_client.get("/training/leaderboard"), "/training/leaderboard")

    assert [row["rank"] for row in body["results"]] == [1, 2]
    assert body["results"][0]["vs_champion"]["close_rate"] == 0.5
    assert_documented(openapi, staff_client.get("/training/leaderboard?kind=x"), "/training/leaderboard")


def test_stats_are_typed(openapi, staff_client, member_client, ab_test):
    TrainingRunFactory(kind="policy", backend="local", status=TrainingRun.Status.SUCCEEDED, model_version=ab_test[1])

    for client in (staff_client, member_client):
        body = assert_documented(openapi, client.get("/training/stats"), "/training/stats")
        assert body["last_run"]["model_version"]["performance"]["messages"] >= 0
        assert set(body["holdout"]) == {"holdout_percentage", "positive_states", "holdout", "treated", "lift"}


def test_a_run_answers_with_its_job_id_and_status_url(openapi, staff_client, django_capture_on_commit_callbacks):
    with mock.patch("training.tasks.run_training_cycle_task.delay"), django_capture_on_commit_callbacks(execute=True):
        started = staff_client.post("/training/run", {"kind": "policy"}, format="json")

    body = assert_documented(openapi, started, "/training/run", "post")
    assert started.status_code == 202 and body["job_id"] == body["id"]
    followed = staff_client.get(body["status_url"])
    assert assert_documented(openapi, followed, "/training/status/{job_id}")["job_id"] == body["job_id"]

    conflict = staff_client.post("/training/run", {"kind": "policy"}, format="json")
    assert conflict.status_code == 409
    assert assert_documented(openapi, conflict, "/training/run", "post")["run_id"] == body["job_id"]


def test_errors_are_documented(openapi, staff_client, member_client):
    version = _policy(status=ModelVersion.Status.FAILED)

    bad = staff_client.post(f"/training/deploy/{version.pk}", {"traffic_percentage": 10}, format="json")
    forbidden = member_client.post(f"/training/deploy/{version.pk}", {"traffic_percentage": 10}, format="json")
    missing = staff_client.post("/training/deploy/999999", {"traffic_percentage": 10}, format="json")
    malformed = staff_client.post(
        f"/training/deploy/{version.pk}", data="{oops", content_type="application/json"
    )  # a parse error is {"detail": message}

    assert (bad.status_code, forbidden.status_code, missing.status_code, malformed.status_code) == (400, 403, 404, 400)
    for response in (bad, forbidden, missing, malformed):
        assert_documented(openapi, response, "/training/deploy/{model_id}", "post")
    assert_documented(openapi, member_client.post("/training/run", {}, format="json"), "/training/run", "post")
    assert_documented(
        openapi, member_client.post("/training/promote-winner", {}, format="json"), "/training/promote-winner", "post"
    )


def test_promote_winner_is_documented_as_an_object_of_decisions(openapi, staff_client):
    _policy(status="deployed", ab_role="challenger", traffic_percentage=10)

    response = staff_client.post("/training/promote-winner", {"kind": "policy"}, format="json")

    assert [d["outcome"] for d in assert_documented(openapi, response, "/training/promote-winner", "post")["decisions"]]
    bad = staff_client.post("/training/promote-winner", {"min_messages_per_arm": 0}, format="json")
    assert "min_messages_per_arm" in assert_documented(openapi, bad, "/training/promote-winner", "post")


@pytest.mark.parametrize("job_id", ["abc", "999999", "99999999999999999999999", "ftjob-unknown", "%E2%9C%93"])
def test_an_unknown_job_is_a_json_404(openapi, staff_client, job_id):
    TrainingRunFactory(provider_job_id="ftjob-abc123")

    response = staff_client.get(f"/training/status/{job_id}")

    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert "detail" in assert_documented(openapi, response, "/training/status/{job_id}")


def test_a_run_is_found_by_its_openai_job_id_too(openapi, staff_client):
    run = TrainingRunFactory(provider_job_id="ftjob-abc123", status=TrainingRun.Status.TRAINING)
    TrainingRunFactory(provider_job_id="ftjob-other")

    by_job = staff_client.get("/training/status/ftjob-abc123")
    by_id = staff_client.get(f"/training/status/{run.pk}/")

    assert assert_documented(openapi, by_job, "/training/status/{job_id}")["job_id"] == run.pk
    assert by_job.json() == by_id.json()
    assert by_job.json()["provider_job_id"] == "ftjob-abc123" and by_job.json()["status"] == "training"
