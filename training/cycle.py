"""The weekly training cycle: check data → export → train → register → deploy the challenger.

Two backends, one cycle:

* ``policy`` / local (the default when no OpenAI key is set): a scikit-learn model trained on every clean outcome
  label (positive and negative: a policy must learn what fails too), finished inside the cycle;
* ``message_writer`` / OpenAI: the positive examples above ``min_quality_score`` exported as chat JSONL and a
  fine-tuning job started; the beat poll finishes it later and deploys it then (``cycle_finish``).

A new version goes out as the A/B challenger at ``ab_test_percentage`` (the champion keeps the rest), or straight
to 100% as the champion with ``deploy_immediately``. A challenger still under test when the next cycle trains a
newer one is retired (the newer one replaces it). At most one cycle per kind per week unless forced.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from rex_project.exceptions import ApplicationError
from training import registry
from training.models import ModelVersion, TrainingRun

logger = logging.getLogger("rex.training")

CYCLE_INTERVAL = timedelta(days=7)
# Runs that did not produce a model do not count against the weekly limit.
UNPRODUCTIVE = (TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED, TrainingRun.Status.NOT_ENOUGH_DATA)


class CycleTooSoon(ApplicationError):
    def __init__(self, run: TrainingRun):
        super().__init__(
            f"A {run.kind} training cycle already ran this week (run {run.pk}, {run.status}); pass force to run again.",
            extra={"run_id": run.pk},
        )
        self.run = run


def default_kind() -> str:
    """OpenAI fine-tunes the message writer when a key is set; otherwise the local policy model learns."""
    return ModelVersion.Kind.MESSAGE_WRITER if settings.OPENAI_API_KEY else ModelVersion.Kind.POLICY


def backend_for(kind: str) -> str:
    return ModelVersion.Backend.OPENAI if kind == ModelVersion.Kind.MESSAGE_WRITER else ModelVersion.Backend.LOCAL


def training_run_create(
    *,
    kind: str | None = None,
    min_quality_score: float = 0.0,
    deploy_immediately: bool = False,
    ab_test_percentage: float = 10.0,
    force: bool = False,
    organization_id: int | None = None,
    requested_by=None,
) -> TrainingRun:
    """A pending run, refused (``CycleTooSoon``) when a productive run of that kind started in the last week."""
    kind = kind or default_kind()
    with transaction.atomic():
        # Serialise concurrent starts of the same kind (beat and an operator's POST at once).
        list(ModelVersion.objects.select_for_update().filter(kind=kind).values_list("pk", flat=True))
        recent = (
            TrainingRun.objects.filter(kind=kind, created_at__gte=timezone.now() - CYCLE_INTERVAL)
            .exclude(status__in=UNPRODUCTIVE)
            .order_by("-created_at")
            .first()
        )
        if recent is not None and not force:
            raise CycleTooSoon(recent)
        return TrainingRun.objects.create(
            kind=kind,
            backend=backend_for(kind),
            organization_id=organization_id,
            requested_by=requested_by,
            params={
                "min_quality_score": min_quality_score,
                "deploy_immediately": deploy_immediately,
                "ab_test_percentage": ab_test_percentage,
                "force": force,
            },
        )


def _finish(run: TrainingRun, status: str, error: str = "") -> TrainingRun:
    run.status = status
    run.error = error
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at", "model_version"])
    return run


def _claim(run_id: int) -> TrainingRun | None:
    """Move a pending run to exporting; None if another worker (or an earlier try) already has it."""
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.PENDING).update(
        status=TrainingRun.Status.EXPORTING, started_at=timezone.now()
    )
    return TrainingRun.objects.get(pk=run_id) if claimed else None


def cycle_finish(*, run: TrainingRun) -> ModelVersion | None:
    """Deploy the run's new version: champion at 100% (deploy_immediately), else challenger at the A/B share."""
    version = run.model_version
    if version is None or version.status != ModelVersion.Status.READY:
        return None
    params = run.params or {}
    with transaction.atomic():
        if params.get("deploy_immediately"):
            registry.model_deploy(version=version, traffic_percentage=100.0, role=ModelVersion.Role.CHAMPION)
        else:
            for stale in ModelVersion.objects.filter(
                kind=version.kind, status=ModelVersion.Status.DEPLOYED, ab_role=ModelVersion.Role.CHALLENGER
            ).exclude(pk=version.pk):
                registry.model_retire(version=stale)
            registry.model_deploy(
                version=version,
                traffic_percentage=float(params.get("ab_test_percentage", 10.0)),
                role=ModelVersion.Role.CHALLENGER,
            )
    version.refresh_from_db()
    logger.info(
        "training run %s deployed %s %s at %s%%", run.pk, version.kind, version.version, version.traffic_percentage
    )
    return version


def _train_local(run: TrainingRun) -> TrainingRun:
    from training.policy import policy_train  # scikit-learn loads only where training happens

    # policy_train records the run's outcome itself (succeeded, not enough data, failed).
    policy_train(run=run, organization_id=run.organization_id)
    run.refresh_from_db()
    cycle_finish(run=run)
    return run


def _train_openai(run: TrainingRun) -> TrainingRun:
    from training.dataset import dataset_export
    from training.openai_trainer import finetune_start

    params = run.params or {}
    result = dataset_export(
        run=run, min_quality_score=float(params.get("min_quality_score", 0.0)), organization_id=run.organization_id
    )
    run.refresh_from_db()
    if result.status != "ok":
        return _finish(run, TrainingRun.Status.NOT_ENOUGH_DATA, result.reason)
    return finetune_start(run=run)  # the poll task finishes it and calls cycle_finish


def training_cycle_execute(*, run_id: int) -> TrainingRun:
    """Run a pending cycle (idempotent: a run already claimed is returned as it is). Failures are recorded on
    the run, never raised into the worker as a retry: retraining on the same data would fail the same way."""
    run = _claim(run_id)
    if run is None:
        return TrainingRun.objects.get(pk=run_id)
    try:
        if run.backend == ModelVersion.Backend.LOCAL:
            return _train_local(run)
        return _train_openai(run)
    except Exception as exc:  # recorded on the run for the operator, with the traceback in the log
        logger.exception("training run %s failed", run.pk)
        run.refresh_from_db()
        if run.status in UNPRODUCTIVE:  # the trainer already recorded it
            return run
        return _finish(run, TrainingRun.Status.FAILED, f"{type(exc).__name__}: {exc}")


def run_training_cycle(**params) -> TrainingRun:
    """Create and execute a cycle in this process (the weekly beat task, the simulation, the shell).
    Takes the keyword arguments of ``training_run_create``."""
    run = training_run_create(**params)
    return training_cycle_execute(run_id=run.pk)
