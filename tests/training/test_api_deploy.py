"""POST /training/deploy/{id}: the champion is never demoted into a challenger, and a local policy must load."""

import joblib
import pytest
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, ModelVersionFactory
from training import features
from training.models import ModelVersion
from training.policy import models_dir
from training.registry import model_deploy
from training.split import arm_for

pytestmark = pytest.mark.django_db

POLICY = ModelVersion.Kind.POLICY
CHAMPION, CHALLENGER = ModelVersion.Role.CHAMPION, ModelVersion.Role.CHALLENGER


@pytest.fixture(autouse=True)
def _own_models_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path  # artifacts written here, where the loader looks


@pytest.fixture
def staff_client():
    client = APIClient()
    client.force_authenticate(MembershipFactory(user__is_staff=True).user)
    return client


def _artifact(name: str, payload=None) -> str:
    directory = models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    else:
        joblib.dump(payload or {"pipeline": None, "features_version": features.FEATURES_VERSION}, path)
    return str(path)


def _policy(artifact_path: str, **fields) -> ModelVersion:
    return ModelVersionFactory(kind=POLICY, backend="local", artifact_path=artifact_path, **fields)


def _state(version: ModelVersion) -> tuple:
    version.refresh_from_db()
    return version.status, version.ab_role, version.traffic_percentage


def _deploy(client, version, traffic):
    return client.post(f"/training/deploy/{version.pk}", {"traffic_percentage": traffic}, format="json")


@pytest.mark.parametrize("challengers", [0, 1])
def test_the_champion_below_100_is_refused_and_keeps_serving(staff_client, challengers):
    champion = model_deploy(version=_policy(_artifact("champion.joblib")), role=CHAMPION)
    for _ in range(challengers):
        model_deploy(version=_policy(_artifact("challenger.joblib")), role=CHALLENGER, traffic_percentage=10)
    before = _state(champion)

    response = _deploy(staff_client, champion, 10)

    assert response.status_code == 400
    assert "champion" in response.json()["traffic_percentage"][0]
    assert _state(champion) == before == ("deployed", "champion", 100.0 - 10 * challengers)
    served = {arm_for(lead_id=lead_id, kind=POLICY) for lead_id in range(1, 2001)}
    assert None not in served  # every lead still has a model


def test_the_champion_redeployed_at_100_stays_champion(staff_client):
    champion = model_deploy(version=_policy(_artifact("champion.joblib")), role=CHAMPION)

    response = _deploy(staff_client, champion, 100)

    assert response.status_code == 200, response.json()
    assert _state(champion) == ("deployed", "champion", 100.0)


@pytest.mark.parametrize(
    ("artifact", "reason"),
    [
        (lambda: "/etc/passwd", "is not under"),
        (lambda: str(models_dir() / "missing.joblib"), "does not exist"),
        (lambda: _artifact("old.joblib", {"pipeline": None, "features_version": -1}), "feature set"),
        (lambda: _artifact("garbage.joblib", b"not a joblib file at all"), "cannot be loaded"),
    ],
)
def test_a_policy_whose_artifact_does_not_load_is_refused(staff_client, artifact, reason):
    version = _policy(artifact())

    response = _deploy(staff_client, version, 10)

    assert response.status_code == 400
    [message] = response.json()["version"]
    assert "cannot be loaded" in message and reason in message
    assert _state(version) == ("ready", "", 0.0)


def test_a_policy_that_loads_is_deployed(staff_client):
    version = _policy(_artifact("good.joblib"))

    response = _deploy(staff_client, version, 100)

    assert response.status_code == 200, response.json()
    assert _state(version) == ("deployed", "champion", 100.0)


def test_what_cannot_serve_at_all_is_refused_with_the_registrys_reason(staff_client):
    failed = _policy("/nowhere.joblib", status=ModelVersion.Status.FAILED)
    no_artifact = _policy("")

    refused = _deploy(staff_client, failed, 10)
    empty = _deploy(staff_client, no_artifact, 10)

    assert refused.status_code == 400 and "failed" in refused.json()["version"][0]
    assert empty.status_code == 400 and "artifact_path" in empty.json()["version"][0]


def test_the_admin_deploy_action_refuses_an_artifact_that_does_not_load_too(client):
    broken = _policy(_artifact("broken.joblib", b"not a joblib file"))
    admin = MembershipFactory(user__is_staff=True, user__is_superuser=True).user
    client.force_login(admin)

    response = client.post(
        "/admin/training/modelversion/",
        {"action": "deploy_as_champion", "_selected_action": [broken.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "cannot be loaded" in response.content.decode()
    assert _state(broken)[0] != ModelVersion.Status.DEPLOYED
