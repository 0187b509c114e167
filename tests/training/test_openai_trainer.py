"""OpenAI fine-tuning end to end: the real SDK against a local server speaking the files and fine-tuning API."""

import json
from urllib.parse import parse_qs

import pytest

from outcomes.models import OutcomeLabel
from tests.factories import ModelVersionFactory, OrganizationFactory, TrainingRunFactory
from tests.openai_finetune import FakeFineTuning
from tests.training.test_dataset import plant
from training import tasks
from training.dataset import dataset_export, run_files
from training.models import ModelVersion, TrainingRun
from training.openai_trainer import finetune_cancel, finetune_poll, finetune_start, finetune_suffix

pytestmark = pytest.mark.django_db

BASE_MODEL = "gpt-4o-2024-08-06"
JOB_ERROR = {
    "code": "invalid_training_file",
    "message": "The job failed due to an invalid training file. 3 examples have no assistant message.",
    "param": "training_file",
}


@pytest.fixture(autouse=True)
def _training_dir(settings, tmp_path):
    settings.TRAINING_DIR = str(tmp_path / "training")
    settings.OPENAI_FINE_TUNE_BASE_MODEL = BASE_MODEL


@pytest.fixture
def fake(openai_server):
    return FakeFineTuning(openai_server)


@pytest.fixture
def run():
    """A run whose dataset is exported: 60 positive outcomes, some of them in validation."""
    plant(OrganizationFactory(), 60)
    run = TrainingRunFactory(params={"epochs": 3, "ab_test_percentage": 10.0})
    assert dataset_export(run=run, validation_share=0.2).ok
    run.refresh_from_db()
    return run


def requests_to(server, method, path_prefix):
    return [r for r, _ in server.log if r.method == method and r.path.startswith(path_prefix)]


def used_rows():
    return OutcomeLabel.objects.filter(included_in_training=True).count()


def test_suffix_is_the_version_in_the_characters_openai_allows():
    assert finetune_suffix("v2.10.0") == "rex-v2-10-0"
    assert finetune_suffix("v1.0.0+Hot Fix") == "rex-v1-0-0-hot-fix"
    assert len(finetune_suffix("v" + "9" * 100)) == 64


def test_start_uploads_both_files_and_creates_a_supervised_job(fake, run):
    started = finetune_start(run=run)

    assert started.status == TrainingRun.Status.TRAINING
    assert started.provider_job_id in fake.jobs
    version = started.model_version
    assert (version.kind, version.backend, version.status) == ("message_writer", "openai", "training")
    assert version.version == "v1.0.0"
    # Files: multipart uploads with purpose fine-tune, byte for byte what the export wrote.
    uploads = list(fake.files.values())
    assert [u["purpose"] for u in uploads] == ["fine-tune", "fine-tune"]
    train_path, validation_path, _ = run_files(run)
    assert uploads[0]["content"] == train_path.read_bytes()
    assert uploads[1]["content"] == validation_path.read_bytes()
    assert uploads[0]["filename"] == "train.jsonl"
    assert all(r.content_type.startswith("multipart/form-data") for r in requests_to(fake.server, "POST", "/v1/files"))
    # The job: base model from settings, the version as suffix, supervised with the run's epochs.
    (create,) = requests_to(fake.server, "POST", "/v1/fine_tuning/jobs")
    body = json.loads(create.get_data())
    assert body["model"] == BASE_MODEL
    assert body["suffix"] == "rex-v1-0-0"
    assert body["training_file"] == version.training_metadata["training_file"]
    assert body["validation_file"] == version.training_metadata["validation_file"]
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}}
    assert body["metadata"] == {"rex_run_id": str(run.pk), "rex_version": "v1.0.0"}
    assert create.headers["Authorization"] == "Bearer test"
    assert version.training_metadata["job_id"] == started.provider_job_id
    # No champion yet: the first fine-tune starts from the configured base model, and says so.
    assert (version.training_metadata["base_model"], version.training_metadata["base_version"]) == (BASE_MODEL, None)


def _writer_champion(provider_model_id: str) -> ModelVersion:
    return ModelVersionFactory(
        kind=ModelVersion.Kind.MESSAGE_WRITER,
        version="v1.0.0",
        status=ModelVersion.Status.DEPLOYED,
        ab_role=ModelVersion.Role.CHAMPION,
        traffic_percentage=100.0,
        provider_model_id=provider_model_id,
    )


def test_a_fine_tune_continues_from_the_champion_so_it_keeps_what_earlier_weeks_taught(fake, run):
    champion = _writer_champion(f"ft:{BASE_MODEL}:org-rex-test:rex-v1-0-0:Prev0001")
    ModelVersionFactory(kind=ModelVersion.Kind.MESSAGE_WRITER, version="v0.9.0", status="retired",
                        provider_model_id=f"ft:{BASE_MODEL}:org-rex-test:rex-v0-9-0:Old00001")  # fmt: skip

    started = finetune_start(run=run)

    assert fake.jobs[started.provider_job_id].body["model"] == champion.provider_model_id
    metadata = started.model_version.training_metadata
    assert (metadata["base_model"], metadata["base_version"], metadata["base_version_id"]) == (
        champion.provider_model_id,
        "v1.0.0",
        champion.pk,
    )
    assert metadata["root_model"] == BASE_MODEL
    for _ in range(3):
        done = finetune_poll(run_id=started.pk)
    assert done.status == TrainingRun.Status.SUCCEEDED
    # OpenAI names the continued model after the root base model, so the next run continues from it in turn.
    version = ModelVersion.objects.get(pk=done.model_version_id)
    assert version.provider_model_id == f"ft:{BASE_MODEL}:org-rex-test:rex-v1-1-0:AbC12xYz"


def test_a_champion_of_another_base_model_is_not_continued(fake, run):
    """The operator moved OPENAI_FINE_TUNE_BASE_MODEL on: the next fine-tune starts from the new base."""
    _writer_champion("ft:gpt-3.5-turbo-0125:org-rex-test:rex-v1-0-0:Prev0001")

    started = finetune_start(run=run)

    assert fake.jobs[started.provider_job_id].body["model"] == BASE_MODEL
    assert started.model_version.training_metadata["base_version"] is None


def test_versions_are_bumped_per_kind(fake, run):
    ModelVersionFactory(kind=ModelVersion.Kind.MESSAGE_WRITER, version="v2.3.0")
    ModelVersionFactory(kind=ModelVersion.Kind.POLICY, version="v7.0.0")
    started = finetune_start(run=run)
    assert started.model_version.version == "v2.4.0"
    assert fake.jobs[started.provider_job_id].body["suffix"] == "rex-v2-4-0"


def test_a_job_is_followed_by_polls_until_it_succeeds(fake, run):
    started = finetune_start(run=run)

    first = finetune_poll(run_id=started.pk)  # validating_files
    assert first.status == TrainingRun.Status.TRAINING
    second = finetune_poll(run_id=started.pk)  # running
    assert second.status == TrainingRun.Status.TRAINING
    second.model_version.refresh_from_db()
    assert second.model_version.training_metadata["provider_status"] == "running"
    assert "Fine-tuning job started" in [e["message"] for e in second.events]

    done = finetune_poll(run_id=started.pk)  # succeeded

    assert done.status == TrainingRun.Status.SUCCEEDED and done.finished_at is not None
    assert done.trained_tokens == 48_213
    version = ModelVersion.objects.get(pk=done.model_version_id)
    assert version.provider_model_id == f"ft:{BASE_MODEL}:org-rex-test:rex-v1-0-0:AbC12xYz"
    assert version.training_metadata["trained_tokens"] == 48_213
    # The cycle deploys a finished version as the A/B challenger at the run's share.
    assert (version.status, version.ab_role, version.traffic_percentage) == ("deployed", "challenger", 10.0)
    # Every event once, oldest first, as the server has them.
    messages = [e["message"] for e in done.events]
    assert messages == [e["message"] for e in fake.jobs[done.provider_job_id].events]
    assert messages[0].startswith("Created fine-tuning job") and messages[-1] == "The job has successfully completed"
    assert len({e["id"] for e in done.events}) == len(done.events)
    assert {e["type"] for e in done.events} == {"message", "metrics"}
    assert used_rows() == 60


def test_polling_a_finished_run_asks_nothing(fake, run):
    started = finetune_start(run=run)
    for _ in range(3):
        finetune_poll(run_id=started.pk)
    calls = len(fake.server.log)
    again = finetune_poll(run_id=started.pk)
    assert again.status == TrainingRun.Status.SUCCEEDED
    assert len(fake.server.log) == calls


def test_events_are_read_until_the_first_known_one(fake, run):
    started = finetune_start(run=run)
    finetune_poll(run_id=started.pk)
    finetune_poll(run_id=started.pk)
    (*_, last) = requests_to(fake.server, "GET", f"/v1/fine_tuning/jobs/{started.provider_job_id}/events")
    assert parse_qs(last.query_string.decode())["limit"] == ["100"]
    run = TrainingRun.objects.get(pk=started.pk)
    assert [e["message"] for e in run.events].count("Fine-tuning job started") == 1


def test_a_failing_job_records_its_error_fails_the_version_and_gives_the_rows_back(fake, run):
    fake.next_script, fake.next_error = ("validating_files", "failed"), JOB_ERROR
    started = finetune_start(run=run)
    assert used_rows() == 60

    finetune_poll(run_id=started.pk)
    failed = finetune_poll(run_id=started.pk)

    assert failed.status == TrainingRun.Status.FAILED and failed.finished_at is not None
    assert failed.error == (
        "invalid_training_file: The job failed due to an invalid training file. 3 examples have no assistant "
        "message. (parameter training_file)"
    )
    assert ModelVersion.objects.get(pk=failed.model_version_id).status == ModelVersion.Status.FAILED
    assert failed.events[-1]["level"] == "error"
    assert used_rows() == 0  # trained nothing: the next run may use them


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": None, "message": None, "param": None}, "The fine-tuning job failed without an error message."),
        ({}, "The fine-tuning job failed without an error message."),
        (None, "The fine-tuning job failed without an error message."),
        (
            {"code": None, "message": "Too few examples.", "param": "training_file"},
            "Too few examples. (parameter training_file)",
        ),
        ({"code": "server_error", "message": None, "param": None}, "server_error"),
    ],
)
def test_a_failed_job_error_without_code_or_message_reads_clearly(fake, run, error, expected):
    fake.next_script, fake.next_error = ("validating_files", "failed"), error
    started = finetune_start(run=run)

    finetune_poll(run_id=started.pk)
    failed = finetune_poll(run_id=started.pk)

    assert failed.status == TrainingRun.Status.FAILED
    assert failed.error == expected
    assert used_rows() == 0


@pytest.mark.parametrize("idle_error", [{}, None], ids=["empty", "null"])
def test_the_error_object_of_a_job_that_did_not_fail_is_ignored(fake, run, idle_error):
    fake.idle_error = idle_error
    started = finetune_start(run=run)
    for _ in range(3):
        done = finetune_poll(run_id=started.pk)
    assert done.status == TrainingRun.Status.SUCCEEDED and done.error == ""


def test_a_job_cancelled_at_openai_cancels_the_run(fake, run):
    fake.next_script = ("validating_files", "running", "cancelled")
    started = finetune_start(run=run)
    for _ in range(3):
        finetune_poll(run_id=started.pk)

    cancelled = TrainingRun.objects.get(pk=started.pk)
    assert cancelled.status == TrainingRun.Status.CANCELLED
    assert cancelled.model_version.status == ModelVersion.Status.FAILED
    assert used_rows() == 0


def test_an_operator_can_cancel_a_running_job(fake, run):
    started = finetune_start(run=run)
    finetune_poll(run_id=started.pk)

    cancelled = finetune_cancel(run_id=started.pk)

    assert cancelled.status == TrainingRun.Status.CANCELLED
    assert requests_to(fake.server, "POST", f"/v1/fine_tuning/jobs/{started.provider_job_id}/cancel")
    assert cancelled.model_version.status == ModelVersion.Status.FAILED


def test_an_upload_failure_fails_the_run_without_a_job(fake, run):
    fake.upload_status = 500

    failed = finetune_start(run=run)

    assert failed.status == TrainingRun.Status.FAILED and failed.provider_job_id == ""
    assert failed.error.startswith("Could not start the fine-tuning job: InternalServerError")
    assert failed.model_version.status == ModelVersion.Status.FAILED
    assert not fake.jobs and used_rows() == 0


def test_a_job_openai_no_longer_knows_fails_the_run(fake, run):
    started = finetune_start(run=run)
    fake.jobs.clear()
    failed = finetune_poll(run_id=started.pk)
    assert failed.status == TrainingRun.Status.FAILED and "NotFoundError" in failed.error


def test_an_unreachable_openai_changes_nothing(fake, run, settings):
    started = finetune_start(run=run)
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # discard port: connection refused
    polled = finetune_poll(run_id=started.pk)
    assert polled.status == TrainingRun.Status.TRAINING and polled.error == ""
    assert polled.model_version.status == ModelVersion.Status.TRAINING


def test_start_is_idempotent(fake, run):
    started = finetune_start(run=run)
    calls = len(fake.server.log)
    assert tasks.start_finetune(started.pk) == TrainingRun.Status.TRAINING
    assert finetune_start(run=TrainingRun.objects.get(pk=started.pk)).provider_job_id == started.provider_job_id
    assert len(fake.server.log) == calls and len(fake.jobs) == 1
    assert ModelVersion.objects.count() == 1


def test_a_run_without_a_dataset_cannot_start(fake):
    with pytest.raises(ValueError, match="no exported dataset"):
        finetune_start(run=TrainingRunFactory())
    assert not fake.server.log


def test_without_a_key_the_run_fails_clearly_and_gives_its_rows_back(run, settings):
    settings.OPENAI_API_KEY = ""
    failed = finetune_start(run=run)
    assert failed.status == TrainingRun.Status.FAILED and "OPENAI_API_KEY" in failed.error
    assert used_rows() == 0


def test_the_beat_task_polls_every_training_run_once(fake, run):
    started = finetune_start(run=run)
    plant(OrganizationFactory(), 60)
    other = TrainingRunFactory(params={})
    dataset_export(run=other)
    other = finetune_start(run=TrainingRun.objects.get(pk=other.pk))
    TrainingRunFactory(status=TrainingRun.Status.SUCCEEDED, provider_job_id="ftjob-old")

    summary = tasks.poll_finetune_jobs()

    assert summary == {
        "polled": 2,
        "statuses": {str(started.pk): "training", str(other.pk): "training"},
    }
    retrieves = requests_to(fake.server, "GET", "/v1/fine_tuning/jobs/")
    assert {r.path for r in retrieves if not r.path.endswith("/events")} == {
        f"/v1/fine_tuning/jobs/{started.provider_job_id}",
        f"/v1/fine_tuning/jobs/{other.provider_job_id}",
    }
    assert other.model_version.version == "v1.1.0"
