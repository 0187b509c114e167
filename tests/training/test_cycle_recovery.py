"""Training runs never stay stuck: redelivered and retried tasks resume their run, failures give the rows back,
the sweeper fails what a dead worker left and enqueues what no task picked up, and stuck runs do not block the week."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone

from outcomes.models import OutcomeLabel
from tests.factories import ModelVersionFactory, OrganizationFactory, TrainingRunFactory
from tests.openai_finetune import FakeFineTuning
from tests.training.test_cycle import _plant_outcomes
from tests.training.test_dataset import plant
from training import tasks
from training.cycle import cycle_blocker, stuck_after, training_cycle_execute
from training.dataset import dataset_export
from training.models import ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db

Status = TrainingRun.Status


@pytest.fixture(autouse=True)
def _training_dir(settings, tmp_path):
    settings.TRAINING_DIR = str(tmp_path / "training")


def used_rows() -> int:
    return OutcomeLabel.objects.filter(included_in_training=True).count()


def _claimed(run: TrainingRun, *, status: str, task_id: str, ago: timedelta) -> TrainingRun:
    """The run as a task left it when its worker died: claimed ``ago``, in ``status``."""
    at = timezone.now() - ago
    TrainingRun.objects.filter(pk=run.pk).update(status=status, claimed_by=task_id, claimed_at=at, started_at=at)
    return TrainingRun.objects.get(pk=run.pk)


def _exported_writer_run() -> TrainingRun:
    """A message-writer run whose 60 rows are exported and marked used."""
    plant(OrganizationFactory(), 60)
    run = TrainingRunFactory(params={"min_quality_score": 0.6})
    assert dataset_export(run=run, min_quality_score=0.6).ok
    assert used_rows() == 60
    return TrainingRun.objects.get(pk=run.pk)


def _local_run() -> TrainingRun:
    return TrainingRunFactory(kind="policy", backend="local", params={"ab_test_percentage": 10.0})


# --- A redelivered or retried task ------------------------------------------------------------------------------


def test_a_redelivered_task_resumes_the_local_run_it_had_claimed():
    """The worker died mid-training (acks late: the message comes back with the same task id)."""
    _plant_outcomes(600)
    run = _claimed(_local_run(), status=Status.TRAINING, task_id="task-1", ago=timedelta(minutes=2))
    half_made = ModelVersionFactory(kind="policy", backend="local", version="v1.0.0", status="training",
                                    training_metadata={"run_id": run.pk})  # fmt: skip

    resumed = training_cycle_execute(run_id=run.pk, task_id="task-1")

    assert resumed.status == Status.SUCCEEDED, resumed.error
    half_made.refresh_from_db()
    assert half_made.status == ModelVersion.Status.FAILED
    assert (resumed.model_version.status, resumed.model_version.ab_role) == ("deployed", "challenger")
    assert resumed.claimed_by == "task-1" and resumed.claimed_at > run.claimed_at


def test_a_redelivered_task_resumes_an_openai_run_from_the_dataset_it_exported(openai_server):
    fake = FakeFineTuning(openai_server)
    run = _claimed(_exported_writer_run(), status=Status.EXPORTING, task_id="task-1", ago=timedelta(minutes=1))

    resumed = training_cycle_execute(run_id=run.pk, task_id="task-1")

    assert resumed.status == Status.TRAINING and resumed.provider_job_id in fake.jobs
    assert (resumed.dataset_path, resumed.train_examples) == (run.dataset_path, run.train_examples)  # not re-exported
    assert used_rows() == 60


def test_another_task_leaves_a_run_that_is_being_worked_on_alone():
    run = _claimed(_exported_writer_run(), status=Status.EXPORTING, task_id="task-1", ago=timedelta(minutes=1))

    left = training_cycle_execute(run_id=run.pk, task_id="task-2")

    assert (left.status, left.claimed_by, left.error) == (Status.EXPORTING, "task-1", "")
    assert used_rows() == 60


def test_a_run_whose_task_died_longer_ago_than_the_time_limit_is_failed_cleanly_by_the_next_task():
    run = _exported_writer_run()
    run = _claimed(run, status=Status.EXPORTING, task_id="task-1", ago=stuck_after() + timedelta(minutes=1))

    failed = training_cycle_execute(run_id=run.pk, task_id="task-2")

    assert failed.status == Status.FAILED and failed.finished_at is not None
    assert failed.error.startswith("Stuck in exporting: no task has worked on the run since")
    assert used_rows() == 0  # the rows trained nothing: the next run may use them


def test_a_transient_database_error_is_retried_by_the_task_and_the_retry_resumes_the_run(monkeypatch):
    """The policy trainer records any exception as a failure; a lost connection must still reach the task's retry
    policy, and the retry (same task id) must find the run it claimed."""
    _plant_outcomes(600)
    run = _local_run()
    from training import policy

    real_load, calls = policy.dataset_load, []

    def connection_lost_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_load(**kwargs)

    monkeypatch.setattr(policy, "dataset_load", connection_lost_once)

    result = tasks.run_training_cycle_task.apply(args=[run.pk])

    assert result.get() == Status.SUCCEEDED
    assert len(calls) == 2
    run.refresh_from_db()
    assert (run.status, run.error) == (Status.SUCCEEDED, "")
    assert run.claimed_by == result.id
    assert ModelVersion.objects.get(status="deployed").ab_role == "challenger"


def test_a_failure_after_the_export_gives_the_rows_back(monkeypatch):
    run = TrainingRunFactory(params={"min_quality_score": 0.6})
    plant(OrganizationFactory(), 60)

    def broken(**kwargs):
        raise RuntimeError("registry unavailable")

    monkeypatch.setattr("training.openai_trainer.finetune_start", broken)

    failed = training_cycle_execute(run_id=run.pk, task_id="task-1")

    assert failed.status == Status.FAILED and failed.error == "RuntimeError: registry unavailable"
    assert failed.train_examples > 0  # it had exported …
    assert used_rows() == 0  # … and gave the rows back


# --- The sweeper ------------------------------------------------------------------------------------------------


def test_the_sweeper_fails_stuck_runs_and_enqueues_runs_no_task_picked_up():
    long_ago = stuck_after() + timedelta(minutes=1)
    stuck_export = _claimed(_exported_writer_run(), status=Status.EXPORTING, task_id="dead-1", ago=long_ago)
    stuck_local = _claimed(_local_run(), status=Status.TRAINING, task_id="dead-2", ago=long_ago)
    half_made = ModelVersionFactory(kind="policy", backend="local", status="training",
                                    training_metadata={"run_id": stuck_local.pk})  # fmt: skip
    busy = _claimed(_local_run(), status=Status.TRAINING, task_id="alive", ago=timedelta(minutes=3))
    at_openai = TrainingRunFactory(provider_job_id="ftjob-1")
    at_openai = _claimed(at_openai, status=Status.TRAINING, task_id="done", ago=long_ago)
    forgotten = _local_run()
    TrainingRun.objects.filter(pk=forgotten.pk).update(created_at=timezone.now() - timedelta(minutes=6))
    just_started = _local_run()

    with mock.patch("training.tasks.run_training_cycle_task.delay") as delay:
        summary = tasks.sweep_training_runs()

    assert summary == {"failed": [stuck_export.pk, stuck_local.pk], "requeue": [forgotten.pk]}
    delay.assert_called_once_with(forgotten.pk)
    statuses = dict(TrainingRun.objects.values_list("pk", "status"))
    assert statuses[stuck_export.pk] == statuses[stuck_local.pk] == Status.FAILED
    assert statuses[busy.pk] == statuses[at_openai.pk] == Status.TRAINING  # a job at OpenAI is polled, not stuck
    assert statuses[just_started.pk] == Status.PENDING
    assert used_rows() == 0
    half_made.refresh_from_db()
    assert half_made.status == ModelVersion.Status.FAILED
    assert tasks.sweep_training_runs()["failed"] == []  # nothing twice


def test_a_stuck_run_does_not_block_the_weeks_cycle_but_a_busy_one_does():
    stuck = _claimed(_local_run(), status=Status.TRAINING, task_id="dead", ago=stuck_after() + timedelta(minutes=1))
    assert cycle_blocker("policy") is None

    busy = _claimed(_local_run(), status=Status.EXPORTING, task_id="alive", ago=timedelta(minutes=1))
    assert cycle_blocker("policy") == busy
    assert stuck.pk != busy.pk
