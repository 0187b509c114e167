"""A training cycle starts from the API, the admin or beat, through one service with one validation; beat's schedule
is installed once and then belongs to the operator; the model registry's admin changes deployments only by actions."""

import json
from unittest import mock

import pytest
from django.core.management import call_command
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, ModelVersionFactory, UserFactory
from training import tasks
from training.apis import TrainingRunApi
from training.models import ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db

DELAY = "training.tasks.run_training_cycle_task.delay"


@pytest.fixture
def enqueued(django_capture_on_commit_callbacks):
    """The run tasks enqueued; ``with enqueued.committing():`` runs what waits for the transaction to commit."""
    with mock.patch(DELAY) as delay:
        delay.committing = lambda: django_capture_on_commit_callbacks(execute=True)
        yield delay


# --- API --------------------------------------------------------------------------------------------------------


@pytest.fixture
def staff_api(db):
    client = APIClient()
    client.force_authenticate(MembershipFactory(user__is_staff=True).user)
    return client


def test_the_message_writer_without_an_openai_key_is_refused_on_kind(staff_api, settings):
    settings.OPENAI_API_KEY = ""

    response = staff_api.post("/training/run", {"kind": "message_writer"}, format="json")

    assert response.status_code == 400
    assert "needs OPENAI_API_KEY" in response.json()["kind"][0]
    assert not TrainingRun.objects.exists()


def test_min_quality_score_defaults_by_kind(staff_api, settings, enqueued):
    settings.OPENAI_API_KEY = "sk-test"

    with enqueued.committing():
        writer = staff_api.post("/training/run", {"kind": "message_writer"}, format="json")
        policy = staff_api.post("/training/run", {"kind": "policy"}, format="json")
        chosen = staff_api.post(
            "/training/run", {"kind": "message_writer", "min_quality_score": 0.8, "force": True}, format="json"
        )

    assert [r.status_code for r in (writer, policy, chosen)] == [202, 202, 202]
    assert [r.json()["params"]["min_quality_score"] for r in (writer, policy, chosen)] == [0.6, 0.0, 0.8]
    assert enqueued.call_count == 3


def test_the_api_says_the_policy_ignores_min_quality_score():
    help_text = TrainingRunApi.TrainingRunInputSerializer().fields["min_quality_score"].help_text
    assert "default 0.6" in help_text and "policy: ignored" in help_text


# --- Beat -------------------------------------------------------------------------------------------------------


def test_the_weekly_cycle_trains_every_kind_available_each_under_its_own_guard(settings, enqueued):
    settings.OPENAI_API_KEY = ""
    with enqueued.committing():
        first = tasks.weekly_training_cycle.apply(kwargs={"ab_test_percentage": 20}).get()

    (policy,) = TrainingRun.objects.all()
    assert first == {"policy": f"started run {policy.pk}"}
    assert (policy.kind, policy.params["ab_test_percentage"], policy.params["min_quality_score"]) == ("policy", 20, 0)

    settings.OPENAI_API_KEY = "sk-test"  # OpenAI configured later in the week: the writer still gets its cycle
    with enqueued.committing():
        second = tasks.weekly_training_cycle.apply().get()

    writer = TrainingRun.objects.get(kind="message_writer")
    assert second["policy"].startswith(f"skipped: A policy training cycle already ran this week (run {policy.pk}")
    assert second["message_writer"] == f"started run {writer.pk}"
    assert (writer.backend, writer.params["min_quality_score"]) == ("openai", 0.6)
    assert [c.args for c in enqueued.call_args_list] == [(policy.pk,), (writer.pk,)]


def test_a_redelivered_weekly_task_does_not_start_a_second_forced_cycle(settings, enqueued):
    settings.OPENAI_API_KEY = ""
    with enqueued.committing():
        tasks.weekly_training_cycle.apply(kwargs={"force": True}, task_id="beat-monday").get()
        again = tasks.weekly_training_cycle.apply(kwargs={"force": True}, task_id="beat-monday").get()

    assert again == {"policy": "started already (this task was redelivered)"}
    assert TrainingRun.objects.count() == 1 and enqueued.call_count == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_quality_score": 3}, "min_quality_score"),
        ({"ab_test_percentage": 90}, "ab_test_percentage"),
        ({"kind": "poetry"}, "kind"),
        ({"kind": "message_writer"}, "needs OPENAI_API_KEY"),
        ({"min_quality": 0.5}, "unknown kwargs ['min_quality']"),
    ],
)
def test_bad_weekly_kwargs_fail_the_task_clearly_and_start_nothing(settings, kwargs, message):
    settings.OPENAI_API_KEY = ""

    result = tasks.weekly_training_cycle.apply(kwargs=kwargs)

    with pytest.raises(ValueError, match="weekly_training_cycle") as failed:
        result.get()
    assert message in str(failed.value)
    assert not TrainingRun.objects.exists()


def test_the_schedule_is_installed_once_and_then_left_as_the_operator_set_it():
    call_command("setup_periodic_tasks", verbosity=0)
    weekly = PeriodicTask.objects.get(task="training.tasks.weekly_training_cycle")
    assert (weekly.crontab.minute, weekly.crontab.hour, weekly.crontab.day_of_week) == ("0", "2", "1")
    assert str(weekly.crontab.timezone) == "UTC" and json.loads(weekly.kwargs) == {}
    sweep = PeriodicTask.objects.get(task="training.tasks.sweep_training_runs")
    assert (sweep.crontab.minute, sweep.crontab.hour) == ("*/10", "*")
    # The operator moves the cycle, changes its kwargs and pauses it; someone deletes the promotion check.
    weekly.crontab = CrontabSchedule.objects.create(minute="30", hour="5", day_of_week="2", timezone="UTC")
    weekly.kwargs, weekly.enabled = json.dumps({"ab_test_percentage": 20}), False
    weekly.save()
    PeriodicTask.objects.filter(task="training.tasks.promotion_check").delete()

    call_command("setup_periodic_tasks", verbosity=0)  # make migrate / make demo

    weekly.refresh_from_db()
    assert (weekly.crontab.hour, weekly.crontab.day_of_week, weekly.enabled) == ("5", "2", False)
    assert json.loads(weekly.kwargs) == {"ab_test_percentage": 20}
    assert PeriodicTask.objects.filter(task="training.tasks.promotion_check").count() == 1
    assert PeriodicTask.objects.filter(name="Weekly training cycle").count() == 1


def test_the_installed_weekly_kwargs_are_valid_for_the_task(settings):
    settings.OPENAI_API_KEY = "sk-test"
    call_command("setup_periodic_tasks", verbosity=0)
    weekly = PeriodicTask.objects.get(task="training.tasks.weekly_training_cycle")
    assert set(tasks.weekly_params(json.loads(weekly.kwargs))) == {"policy", "message_writer"}


# --- Admin ------------------------------------------------------------------------------------------------------


@pytest.fixture
def operator(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


RUN_ADD = "admin:training_trainingrun_add"


def test_an_operator_starts_a_cycle_from_the_admin_through_the_service_and_its_task(client, operator, enqueued):
    with enqueued.committing():
        response = client.post(reverse(RUN_ADD), {"kind": "policy", "ab_test_percentage": "20"})

    assert response.status_code == 302, response.context["adminform"].form.errors
    run = TrainingRun.objects.get()
    enqueued.assert_called_once_with(run.pk)
    assert (run.kind, run.backend, run.status, run.requested_by) == ("policy", "local", "pending", operator)
    assert run.params == {"min_quality_score": 0.0, "deploy_immediately": False, "ab_test_percentage": 20.0,
                          "force": False}  # fmt: skip


def test_the_admin_start_form_applies_the_weekly_guard_and_the_apis_validation(client, operator, enqueued, settings):
    settings.OPENAI_API_KEY = ""
    with enqueued.committing():
        client.post(reverse(RUN_ADD), {"kind": "policy", "ab_test_percentage": "10"})
    first = TrainingRun.objects.get()

    with enqueued.committing():
        again = client.post(reverse(RUN_ADD), {"kind": "policy", "ab_test_percentage": "10"})
        writer = client.post(reverse(RUN_ADD), {"kind": "message_writer", "ab_test_percentage": "10"})
        too_big = client.post(reverse(RUN_ADD), {"kind": "policy", "ab_test_percentage": "90", "force": "on"})

    assert f"run {first.pk}" in again.context["adminform"].form.errors["force"][0]
    assert "needs OPENAI_API_KEY" in writer.context["adminform"].form.errors["kind"][0]
    assert "ab_test_percentage" in too_big.context["adminform"].form.errors
    assert TrainingRun.objects.count() == 1
    with enqueued.committing():
        forced = client.post(reverse(RUN_ADD), {"kind": "policy", "ab_test_percentage": "10", "force": "on"})
    assert forced.status_code == 302 and TrainingRun.objects.count() == 2
    assert enqueued.call_count == 2


def test_a_training_run_is_read_only_in_the_admin(client, operator):
    run = TrainingRun.objects.create(kind="policy", backend="local")
    url = reverse("admin:training_trainingrun_change", args=[run.pk])

    client.post(url, {"status": "succeeded", "kind": "message_writer"})

    run.refresh_from_db()
    assert (run.status, run.kind) == ("pending", "policy")


def test_the_model_registry_admin_changes_deployments_only_through_its_actions(client, operator):
    version = ModelVersionFactory(kind="policy", backend="local", version="v1.0.0", artifact_path="policy.joblib",
                                  status="deployed", ab_role="champion", traffic_percentage=100.0,
                                  metrics={"auc": 0.71234})  # fmt: skip
    url = reverse("admin:training_modelversion_change", args=[version.pk])

    form_fields = set(client.get(url).context["adminform"].form.fields)
    client.post(url, {"version": "v9.0.0", "status": "retired", "ab_role": "", "traffic_percentage": "5",
                      "artifact_path": "policy.joblib", "provider_model_id": ""})  # fmt: skip

    assert not form_fields & {"kind", "version", "backend", "status", "ab_role", "traffic_percentage", "deployed_at"}
    version.refresh_from_db()
    assert (version.version, version.status, version.ab_role, version.traffic_percentage) == (
        "v1.0.0",
        ModelVersion.Status.DEPLOYED,
        "champion",
        100.0,
    )
    assert client.get(reverse("admin:training_modelversion_add")).status_code == 403


def test_the_model_registry_list_shows_held_out_auc(client, operator):
    ModelVersionFactory(kind="policy", backend="local", version="v1.0.0", metrics={"auc": 0.71234})
    ModelVersionFactory(kind="policy", backend="local", version="v1.1.0", metrics={"auc": 0.6489})
    ModelVersionFactory(kind="message_writer", version="v1.0.0", metrics={})

    page = client.get(reverse("admin:training_modelversion_changelist"), {"o": "-7"})  # best AUC first

    content = page.content.decode()
    assert "Held-out AUC" in content
    assert content.index("0.712") < content.index("0.649")  # the newest first otherwise
