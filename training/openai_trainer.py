"""OpenAI fine-tuning of the message writer (seed 002's GPT4ModelTrainer), without anything that waits.

``finetune_start`` uploads the run's exported files (purpose ``fine-tune``), creates a supervised job with the
suffix ``rex-<version>``, registers the new ModelVersion (status training) and returns. The job continues from the
message writer's champion (its ``ft:…`` model: each export holds only rows no earlier run used, so a job started
from the base model would know only the new week's outcomes); without a champion, or when the champion descends
from another base model than ``OPENAI_FINE_TUNE_BASE_MODEL`` (the operator moved to a new one), it starts from
``OPENAI_FINE_TUNE_BASE_MODEL``. The base used is recorded in the version's ``training_metadata``.

Fine-tunes take 30-60 minutes, so nothing blocks on them: the beat task calls ``finetune_poll_all`` every 5
minutes, and each poll records the job's new events and applies its status:

=================================  ===========  ============  =====================================
 job status                         run          version       also
=================================  ===========  ============  =====================================
 validating_files, queued, running  training     training      provider status kept in the metadata
 succeeded                          succeeded    ready         model name, trained tokens; deployed
                                                               by ``cycle_finish``
 failed                             failed       failed        the job's error on the run
 cancelled                          cancelled    failed
=================================  ===========  ============  =====================================

A run that trained nothing (the job failed or was cancelled, or it could not be started) gives its outcome rows
back (``dataset_release``) so the next run can use them. Events come newest first from the API: a poll reads
until the first event it already has (ids deduplicate), and the run keeps the last ``MAX_EVENTS``, oldest first.
A poll that cannot reach OpenAI changes nothing; the next one tries again.
"""

import logging
import re
from datetime import UTC, datetime

import openai
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents.decisions.llm import openai_client
from training import registry
from training.dataset import dataset_release, run_files
from training.models import ModelVersion, TrainingRun

logger = logging.getLogger("rex.training")

SUFFIX_MAX = 64  # OpenAI's limit on a fine-tuned model name's suffix
MAX_EVENTS = 500
EVENTS_PAGE = 100
RunStatus, VersionStatus = TrainingRun.Status, ModelVersion.Status
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.NOT_ENOUGH_DATA)


def finetune_suffix(version: str) -> str:
    """``rex-v2-1-0`` for ``v2.1.0``: lower-case letters, digits and hyphens only, at most 64 characters."""
    return re.sub(r"[^a-z0-9-]+", "-", f"rex-{version}".lower()).strip("-")[:SUFFIX_MAX]


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {str(error)[:300]}"


def _n_epochs(run: TrainingRun):
    epochs = (run.params or {}).get("epochs", "auto")
    if epochs != "auto" and not (isinstance(epochs, int) and 1 <= epochs <= 50):
        raise ValueError(f"Training run {run.pk}: epochs must be 'auto' or an integer from 1 to 50, not {epochs!r}.")
    return epochs


# --- Recording ------------------------------------------------------------------------------------------------


def _timestamp(unix: int | None) -> str | None:
    return datetime.fromtimestamp(unix, tz=UTC).isoformat() if unix else None


def _event_record(event) -> dict:
    return {
        "id": event.id,
        "created_at": _timestamp(event.created_at),
        "level": event.level,
        "type": event.type or "message",
        "message": event.message,
        "data": event.data,
    }


def _new_events(client: openai.OpenAI, run: TrainingRun) -> list[dict]:
    """Events the run has not recorded yet, oldest first (the API pages newest first)."""
    known = {event.get("id") for event in run.events or []}
    fresh = []
    for event in client.fine_tuning.jobs.list_events(run.provider_job_id, limit=EVENTS_PAGE):
        if event.id in known or len(fresh) >= MAX_EVENTS:
            break
        fresh.append(_event_record(event))
    return fresh[::-1]


def _merge_events(run: TrainingRun, fresh: list[dict]) -> None:
    known = {event.get("id") for event in run.events or []}
    run.events = [*(run.events or []), *(event for event in fresh if event["id"] not in known)][-MAX_EVENTS:]


def _job_error(job) -> str:
    """The failed job's error; the API may send an error object whose fields are all null."""
    code, message, param = (getattr(job.error, name, None) for name in ("code", "message", "param"))
    if not (code or message):
        return "The fine-tuning job failed without an error message."
    text = f"{code}: {message}" if code and message else str(message or code)
    return f"{text} (parameter {param})" if param else text


def _finish(run: TrainingRun, version: ModelVersion | None, status: str, error: str = "") -> None:
    """Close the run; a run that trained nothing fails its version and gives its rows back."""
    run.status, run.error, run.finished_at = status, error, timezone.now()
    run.save(update_fields=["status", "error", "finished_at", "events", "trained_tokens", "model_version"])
    if version is not None and status != RunStatus.SUCCEEDED:
        version.status = VersionStatus.FAILED
        version.save(update_fields=["status", "training_metadata"])
    if status != RunStatus.SUCCEEDED:
        dataset_release(run=run)
    logger.info("training run %s finished %s %s", run.pk, status, error)


def _apply_job(run: TrainingRun, version: ModelVersion | None, job) -> bool:
    """Apply the job's status to the run and its version; True when the job just succeeded."""
    if version is not None:
        version.training_metadata = {
            **version.training_metadata,
            "provider_status": job.status,
            "trained_tokens": job.trained_tokens,
            "finished_at": _timestamp(job.finished_at),
        }
    run.trained_tokens = job.trained_tokens
    if job.status == "succeeded":
        if not job.fine_tuned_model:
            _finish(run, version, RunStatus.FAILED, "The job succeeded but named no fine-tuned model.")
            return False
        if version is not None:
            version.provider_model_id, version.status = job.fine_tuned_model, VersionStatus.READY
            version.save(update_fields=["provider_model_id", "status", "training_metadata"])
        _finish(run, version, RunStatus.SUCCEEDED)
        return True
    if job.status == "failed":
        _finish(run, version, RunStatus.FAILED, _job_error(job))
    elif job.status == "cancelled":
        _finish(run, version, RunStatus.CANCELLED, "The fine-tuning job was cancelled.")
    else:
        run.save(update_fields=["events", "trained_tokens"])
        if version is not None:
            version.save(update_fields=["training_metadata"])
    return False


def _record(run_id: int, job, fresh_events: list[dict]) -> TrainingRun:
    """Store the job's state under the run's row lock (two polls at once apply it once), then deploy a success."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status != RunStatus.TRAINING:
            return run
        version = ModelVersion.objects.filter(pk=run.model_version_id).first()
        _merge_events(run, fresh_events)
        succeeded = _apply_job(run, version, job)
    if succeeded:
        from training.cycle import cycle_finish  # the cycle imports this module

        cycle_finish(run=run)
    return run


# --- Start ----------------------------------------------------------------------------------------------------


def root_model(model: str) -> str:
    """The base model a model descends from: ``gpt-4o-2024-08-06`` for ``ft:gpt-4o-2024-08-06:org:rex-v1-0-0:id``."""
    return model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 2 else model


def fine_tune_base(kind: str) -> dict:
    """What a new fine-tune of ``kind`` starts from: the champion's model when it descends from the configured base
    model, else the configured base model. The keys go into the new version's ``training_metadata``."""
    configured = settings.OPENAI_FINE_TUNE_BASE_MODEL
    champion = (
        ModelVersion.objects.filter(kind=kind, ab_role=ModelVersion.Role.CHAMPION, status=VersionStatus.DEPLOYED)
        .exclude(provider_model_id="")
        .first()
    )
    if champion is None or root_model(champion.provider_model_id) != configured:
        return {"base_model": configured, "base_version": None, "base_version_id": None}
    return {"base_model": champion.provider_model_id, "base_version": champion.version, "base_version_id": champion.pk}


def _upload(client: openai.OpenAI, path) -> str:
    with path.open("rb") as handle:
        return client.files.create(file=handle, purpose="fine-tune").id


def _create_job(client: openai.OpenAI, run: TrainingRun, version: ModelVersion):
    method = {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": _n_epochs(run)}}}
    train_path, validation_path, _ = run_files(run)
    files = {"training_file": _upload(client, train_path)}
    if run.validation_examples:
        files["validation_file"] = _upload(client, validation_path)
    version.training_metadata.update(files)
    return client.fine_tuning.jobs.create(
        model=version.training_metadata["base_model"],
        suffix=finetune_suffix(version.version),
        method=method,
        metadata={"rex_run_id": str(run.pk), "rex_version": version.version},
        **files,
    )


def finetune_start(*, run: TrainingRun) -> TrainingRun:
    """Upload the run's dataset and create its fine-tuning job (idempotent: a run with a job, or a finished run,
    is returned as it is). Failures to start are recorded on the run, which then releases its rows."""
    if run.provider_job_id or run.status in FINISHED:
        return run
    if not run.dataset_path or not run_files(run)[0].exists():
        raise ValueError(f"Training run {run.pk} has no exported dataset: run dataset_export first.")
    client = openai_client()
    if client is None:
        _finish(run, None, RunStatus.FAILED, "OpenAI is not configured (OPENAI_API_KEY is empty).")
        return run
    version = registry.model_version_create(
        kind=run.kind,
        backend=ModelVersion.Backend.OPENAI,
        status=VersionStatus.TRAINING,
        training_metadata={
            "run_id": run.pk,
            **fine_tune_base(run.kind),
            "root_model": settings.OPENAI_FINE_TUNE_BASE_MODEL,
            "train_examples": run.train_examples,
            "validation_examples": run.validation_examples,
        },
    )
    run.model_version = version
    try:
        job = _create_job(client, run, version)
    except (openai.OpenAIError, ValueError, OSError) as error:
        _finish(run, version, RunStatus.FAILED, f"Could not start the fine-tuning job: {_describe(error)}")
        return run
    version.training_metadata.update(job_id=job.id, suffix=finetune_suffix(version.version))
    version.save(update_fields=["training_metadata"])
    run.provider_job_id, run.status = job.id, RunStatus.TRAINING
    run.started_at = run.started_at or timezone.now()
    run.save(update_fields=["provider_job_id", "status", "started_at", "model_version"])
    logger.info(
        "training run %s started fine-tuning job %s as %s from %s",
        run.pk,
        job.id,
        version.version,
        version.training_metadata["base_model"],
    )
    return _record(run.pk, job, [])


# --- Follow ---------------------------------------------------------------------------------------------------


def finetune_poll(*, run_id: int) -> TrainingRun:
    """Look at a training run's job once: record new events and apply its status (see the module docstring).
    Idempotent: a run that is not training is returned untouched."""
    run = TrainingRun.objects.get(pk=run_id)
    if run.status != RunStatus.TRAINING or not run.provider_job_id:
        return run
    client = openai_client()
    if client is None:
        logger.warning("training run %s: OpenAI is not configured, job %s not polled", run.pk, run.provider_job_id)
        return run
    try:
        job = client.fine_tuning.jobs.retrieve(run.provider_job_id)
        fresh = _new_events(client, run)
    except openai.NotFoundError as error:
        with transaction.atomic():
            run = TrainingRun.objects.select_for_update().get(pk=run_id)
            if run.status == RunStatus.TRAINING:
                version = ModelVersion.objects.filter(pk=run.model_version_id).first()
                _finish(run, version, RunStatus.FAILED, f"OpenAI no longer knows the job: {_describe(error)}")
        return run
    except openai.OpenAIError as error:  # unreachable or overloaded: the next poll asks again
        logger.warning("training run %s: polling job %s failed: %s", run.pk, run.provider_job_id, _describe(error))
        return run
    return _record(run.pk, job, fresh)


def finetune_cancel(*, run_id: int) -> TrainingRun:
    """Ask OpenAI to cancel a training run's job and apply the answer (a cancelled job, usually)."""
    run = TrainingRun.objects.get(pk=run_id)
    if run.status != RunStatus.TRAINING or not run.provider_job_id:
        return run
    client = openai_client()
    if client is None:
        raise ValueError("OpenAI is not configured (OPENAI_API_KEY is empty): cannot cancel the job.")
    job = client.fine_tuning.jobs.cancel(run.provider_job_id)
    return _record(run.pk, job, _new_events(client, run))


def finetune_poll_all() -> dict:
    """Poll every OpenAI run in training, each on its own: one broken run must not stall the others."""
    run_ids = list(
        TrainingRun.objects.filter(backend=ModelVersion.Backend.OPENAI, status=RunStatus.TRAINING)
        .exclude(provider_job_id="")
        .order_by("id")
        .values_list("id", flat=True)
    )
    statuses = {}
    for run_id in run_ids:
        try:
            statuses[str(run_id)] = finetune_poll(run_id=run_id).status
        except Exception:  # logged with its traceback; the next beat polls this run again
            logger.exception("training run %s: poll failed", run_id)
            statuses[str(run_id)] = "error"
    return {"polled": len(run_ids), "statuses": statuses}
