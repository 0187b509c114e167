"""The weekly training cycle: check data → export → train → register → deploy the challenger.

Two backends, one cycle:

* ``policy`` / local (the default when no OpenAI key is set): a scikit-learn model trained on every clean outcome
  label (positive and negative: a policy must learn what fails too), finished inside the cycle;
* ``message_writer`` / OpenAI: the positive examples above ``min_quality_score`` exported as chat JSONL and a
  fine-tuning job started; the beat poll finishes it later and deploys it then (``cycle_finish``).

A new version goes out as the A/B challenger at ``ab_test_percentage`` (the champion keeps the rest), or straight
to 100% as the champion with ``deploy_immediately``. A challenger still under test when the next cycle deploys a
newer one gets its promotion decision first (``promotion.ab_test_decide`` on the exposure it had): promoted if it
already won, otherwise retired, and the decision is logged either way.

**Weekly guard.** At most one cycle per kind per ISO calendar week (UTC, Monday to Sunday) of the run's creation,
unless forced. Runs that produced nothing (failed, cancelled, not enough data) and stuck runs do not count. Starts
of one kind are serialised (a PostgreSQL advisory lock per kind; SQLite serialises every writer).

**Runs never stay stuck.** A task claims a pending run (``claimed_by`` its task id, ``claimed_at``); a retry or a
redelivery of the same task resumes it. Transient database errors propagate so the task's retry policy acts; any
other failure fails the run and gives its exported rows back. ``training_runs_sweep`` (beat, every 10 minutes)
re-enqueues runs pending for more than ``PENDING_GRACE`` and fails runs a task claimed longer ago than the task
time limit (the worker died or was killed), giving their rows back.
"""

import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from rex_project.exceptions import ApplicationError
from rex_project.retry import TRANSIENT
from training import registry
from training.models import ModelVersion, PromotionDecision, TrainingRun
from training.promotion import ab_test_decide

logger = logging.getLogger("rex.training")

Status, Kind = TrainingRun.Status, ModelVersion.Kind
# Runs that did not produce a model do not count against the weekly limit.
UNPRODUCTIVE = (Status.FAILED, Status.CANCELLED, Status.NOT_ENOUGH_DATA)
# Seed 002: the writer learns from outcomes of quality 0.6 and up; the policy trains on every label (ignores it).
DEFAULT_MIN_QUALITY = {Kind.MESSAGE_WRITER: 0.6, Kind.POLICY: 0.0}
PENDING_GRACE = timedelta(minutes=5)  # a pending run no task picked up in this long is enqueued again
STUCK_MARGIN = timedelta(minutes=5)  # past the task hard time limit, a claimed run's task cannot be running


class CycleTooSoon(ApplicationError):
    def __init__(self, run: TrainingRun):
        super().__init__(
            f"A {run.kind} training cycle already ran this week (run {run.pk}, {run.status}); pass force to run again.",
            extra={"run_id": run.pk},
        )
        self.run = run


# --- Kinds ----------------------------------------------------------------------------------------------------


def kind_unavailable(kind: str) -> str:
    """Why a cycle of ``kind`` cannot run here ("" when it can): the message writer is fine-tuned at OpenAI."""
    if kind == Kind.MESSAGE_WRITER and not settings.OPENAI_API_KEY:
        return "message_writer needs OPENAI_API_KEY: it is fine-tuned at OpenAI (train the policy without it)."
    return ""


def available_kinds() -> list[str]:
    """The kinds the weekly cycle trains: the policy always, the message writer when OpenAI is configured."""
    return [kind for kind in (Kind.POLICY, Kind.MESSAGE_WRITER) if not kind_unavailable(kind)]


def default_kind() -> str:
    """OpenAI fine-tunes the message writer when a key is set; otherwise the local policy model learns."""
    return Kind.MESSAGE_WRITER if settings.OPENAI_API_KEY else Kind.POLICY


def backend_for(kind: str) -> str:
    return ModelVersion.Backend.OPENAI if kind == Kind.MESSAGE_WRITER else ModelVersion.Backend.LOCAL


# --- The weekly guard -----------------------------------------------------------------------------------------


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of ``moment``'s ISO calendar week."""
    utc = moment.astimezone(UTC)
    return (utc - timedelta(days=utc.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)


def stuck_after() -> timedelta:
    """How long after its claim a run may still be in a task: the task hard time limit, and a margin."""
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT or 3600) + STUCK_MARGIN


def stuck_runs(now: datetime | None = None) -> QuerySet:
    """Runs a task claimed (exporting, or training a local model) longer ago than any task may run: their worker
    died or was killed. An OpenAI run in training is not stuck: its job runs at OpenAI and beat polls it."""
    in_a_task = Q(status=Status.EXPORTING) | Q(status=Status.TRAINING, backend=ModelVersion.Backend.LOCAL)
    return TrainingRun.objects.annotate(claimed=Coalesce("claimed_at", "started_at", "created_at")).filter(
        in_a_task, claimed__lt=(now or timezone.now()) - stuck_after()
    )


def cycle_blocker(kind: str, *, now: datetime | None = None) -> TrainingRun | None:
    """The run that already takes this ISO week's cycle of ``kind`` (None when there is none)."""
    now = now or timezone.now()
    return (
        TrainingRun.objects.filter(kind=kind, created_at__gte=week_start(now))
        .exclude(status__in=UNPRODUCTIVE)
        .exclude(pk__in=stuck_runs(now).values("pk"))
        .order_by("-created_at")
        .first()
    )


def _lock_kind(kind: str) -> None:
    """Serialise starts of one kind until the transaction ends (beat and an operator at once). PostgreSQL: an
    advisory lock keyed by the kind, held even before the kind has any row to lock. SQLite takes the write lock
    when a transaction begins (``transaction_mode`` IMMEDIATE), which serialises every writer already."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"rex.training_run_create.{kind}"])


def training_run_check(*, kind: str, force: bool = False) -> None:
    """Inside a transaction: lock the kind's starts until it ends, then refuse (``CycleTooSoon``) when this week
    already has a cycle of ``kind`` and ``force`` is not set."""
    _lock_kind(kind)
    blocker = cycle_blocker(kind)
    if blocker is not None and not force:
        raise CycleTooSoon(blocker)


def training_run_create(
    *,
    kind: str | None = None,
    min_quality_score: float | None = None,
    deploy_immediately: bool = False,
    ab_test_percentage: float = 10.0,
    force: bool = False,
    organization_id: int | None = None,
    requested_by=None,
    source_task_id: str = "",
) -> TrainingRun:
    """A pending run (``min_quality_score`` defaults by kind), refused by the weekly guard (``CycleTooSoon``).
    ``source_task_id`` names the task that asked for it (beat), so a redelivery of that task finds it."""
    kind = kind or default_kind()
    problem = kind_unavailable(kind)
    if problem:
        raise ValidationError({"kind": problem})
    params = {
        "min_quality_score": DEFAULT_MIN_QUALITY[kind] if min_quality_score is None else min_quality_score,
        "deploy_immediately": deploy_immediately,
        "ab_test_percentage": ab_test_percentage,
        "force": force,
    }
    if source_task_id:
        params["source_task_id"] = source_task_id
    with transaction.atomic():
        training_run_check(kind=kind, force=force)
        return TrainingRun.objects.create(
            kind=kind,
            backend=backend_for(kind),
            organization_id=organization_id,
            requested_by=requested_by,
            params=params,
        )


# --- Deploying a trained version ------------------------------------------------------------------------------


def _decide_replaced(challenger: ModelVersion, *, run: TrainingRun) -> PromotionDecision:
    """The last look at a challenger a newer one replaces, on the exposure it had (the days it had, and at least
    the usual messages per arm): promoted if it already won, otherwise retired — logged either way."""
    decision = ab_test_decide(challenger=challenger, min_days=0)
    replaced = f"Replaced by the new challenger of training run {run.pk}"
    if decision.outcome == PromotionDecision.Outcome.WAITING:
        registry.model_retire(version=challenger)
        decision.outcome = PromotionDecision.Outcome.RETIRED
        decision.reason = f"{replaced} before its test had enough exposure: retired. {decision.reason}"
    else:
        decision.reason = f"{replaced}: decided on the exposure it had. {decision.reason}"
    decision.figures = {**decision.figures, "replaced_by_run": run.pk}
    decision.save(update_fields=["outcome", "reason", "figures"])
    logger.info("training run %s replaces %s %s: %s", run.pk, challenger.kind, challenger.version, decision.outcome)
    return decision


def cycle_finish(*, run: TrainingRun) -> ModelVersion | None:
    """Deploy the run's new version: champion at 100% (deploy_immediately), else challenger at the A/B share after
    the challengers it replaces are decided. Idempotent: only a READY version is deployed."""
    if run.model_version_id is None:
        return None
    params = run.params or {}
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().filter(pk=run.model_version_id).first()
        if version is None or version.status != ModelVersion.Status.READY:
            return None
        if params.get("deploy_immediately"):
            registry.model_deploy(version=version, traffic_percentage=100.0, role=ModelVersion.Role.CHAMPION)
        else:
            for running in ModelVersion.objects.filter(
                kind=version.kind, status=ModelVersion.Status.DEPLOYED, ab_role=ModelVersion.Role.CHALLENGER
            ).exclude(pk=version.pk):
                _decide_replaced(running, run=run)
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


# --- Running a cycle ------------------------------------------------------------------------------------------


def _finish(run: TrainingRun, status: str, error: str = "") -> TrainingRun:
    run.status = status
    run.error = error
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "finished_at", "model_version"])
    return run


def _in_a_task(run: TrainingRun) -> bool:
    return run.status == Status.EXPORTING or (
        run.status == Status.TRAINING and run.backend == ModelVersion.Backend.LOCAL
    )


def _abandon_versions(run: TrainingRun) -> int:
    """Versions an earlier attempt of the run left half-made (still training) fail."""
    made_by_run = Q(training_metadata__run_id=run.pk)
    if run.model_version_id:
        made_by_run |= Q(pk=run.model_version_id)
    return ModelVersion.objects.filter(made_by_run, status=ModelVersion.Status.TRAINING).update(
        status=ModelVersion.Status.FAILED
    )


def _claim(run_id: int, task_id: str) -> TrainingRun | None:
    """Move a pending run to exporting for this task. A run this task already claimed is resumed: a retry or a
    redelivery of the same task means its earlier attempt is over. None when another execution has the run."""
    now = timezone.now()
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run_id)
        if run.status == Status.PENDING:
            run.status, run.started_at = Status.EXPORTING, now
        elif task_id and run.claimed_by == task_id and _in_a_task(run):
            logger.warning("training run %s: task %s resumes it (%s)", run.pk, task_id, run.status)
            _abandon_versions(run)
        else:
            return None
        run.claimed_by, run.claimed_at = task_id, now
        run.save(update_fields=["status", "started_at", "claimed_by", "claimed_at"])
    return run


def _train_local(run: TrainingRun) -> TrainingRun:
    from training.policy import policy_train  # scikit-learn loads only where training happens

    # policy_train records the run's outcome itself (succeeded, not enough data, failed).
    policy_train(run=run, organization_id=run.organization_id)
    run.refresh_from_db()
    cycle_finish(run=run)
    return run


def _train_openai(run: TrainingRun) -> TrainingRun:
    from training.dataset import dataset_export, run_files
    from training.openai_trainer import finetune_start

    if not (run.dataset_path and run_files(run)[0].exists()):  # a resumed run keeps the dataset it exported
        params = run.params or {}
        min_quality = params.get("min_quality_score")
        min_quality = DEFAULT_MIN_QUALITY[run.kind] if min_quality is None else float(min_quality)
        result = dataset_export(run=run, min_quality_score=min_quality, organization_id=run.organization_id)
        run.refresh_from_db()
        if result.status != "ok":
            return _finish(run, Status.NOT_ENOUGH_DATA, result.reason)
    return finetune_start(run=run)  # the poll task finishes it and calls cycle_finish


def _trained(run: TrainingRun) -> bool:
    served = (ModelVersion.Status.READY, ModelVersion.Status.DEPLOYED, ModelVersion.Status.RETIRED)
    versions = ModelVersion.objects.filter(pk=run.model_version_id, status__in=served)
    return bool(run.model_version_id) and versions.exists()


def training_run_fail(*, run: TrainingRun, error: str) -> TrainingRun:
    """Fail a run: the versions it left half-made fail and, unless it trained a model, its exported rows go back
    to the pool (``dataset_release``) for the next run."""
    from training.dataset import dataset_release

    with transaction.atomic():
        _abandon_versions(run)
        _finish(run, Status.FAILED, error[:2000])
    if not _trained(run):
        dataset_release(run=run)
    logger.warning("training run %s failed: %s", run.pk, error)
    return run


def _fail_stuck(run_id: int, now: datetime | None = None) -> TrainingRun | None:
    """Fail the run if it is (still) stuck, under its row lock; None when it is not."""
    with transaction.atomic():
        run = stuck_runs(now).select_for_update().filter(pk=run_id).first()
        if run is None:
            return None
        claimed = run.claimed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        error = (
            f"Stuck in {run.status}: no task has worked on the run since {claimed}, longer than the task time limit "
            f"({settings.CELERY_TASK_TIME_LIMIT} s), so its worker died or was killed. Start a new run."
        )
        return training_run_fail(run=run, error=error)


def _not_claimed(run_id: int) -> TrainingRun:
    """The run is neither pending nor this task's: leave it to whoever has it, unless its task cannot be running
    any more (fail it cleanly) or it trained a version that was never deployed (deploy it now)."""
    failed = _fail_stuck(run_id)
    if failed is not None:
        return failed
    run = TrainingRun.objects.get(pk=run_id)
    if run.status == Status.SUCCEEDED:
        cycle_finish(run=run)  # idempotent: only a version still READY deploys
    return run


def _keep_for_retry(run: TrainingRun) -> None:
    """A transient database error: the task's retry (same task id) resumes the run, so the run stays claimed even
    when the trainer already recorded it as failed. Best effort: the database may still be away, and then the
    retry, or else the sweeper, finds the run as it is."""
    logger.warning("training run %s: transient database error, the task retries", run.pk, exc_info=True)
    if not run.claimed_by:
        return
    try:
        TrainingRun.objects.filter(pk=run.pk, claimed_by=run.claimed_by, status=Status.FAILED).update(
            status=Status.EXPORTING, error="", finished_at=None
        )
    except TRANSIENT:
        logger.warning("training run %s: could not keep it for the retry", run.pk)


def _attempt_failed(run: TrainingRun, exc: Exception) -> TrainingRun:
    logger.error("training run %s failed", run.pk, exc_info=exc)
    run.refresh_from_db()
    if run.status in UNPRODUCTIVE:  # the trainer recorded it (and gave back what it had exported)
        return run
    return training_run_fail(run=run, error=f"{type(exc).__name__}: {exc}")


def training_cycle_execute(*, run_id: int, task_id: str = "") -> TrainingRun:
    """Run a pending cycle; idempotent and safe to retry (see the module docstring). A failure is recorded on the
    run (retraining on the same data would fail the same way), except a transient database error, which is raised
    for the task's retry policy."""
    run = _claim(run_id, task_id)
    if run is None:
        return _not_claimed(run_id)
    try:
        if run.backend == ModelVersion.Backend.LOCAL:
            return _train_local(run)
        return _train_openai(run)
    except TRANSIENT:
        _keep_for_retry(run)
        raise
    except Exception as exc:  # recorded on the run for the operator, with the traceback in the log
        return _attempt_failed(run, exc)


def run_training_cycle(**params) -> TrainingRun:
    """Create and execute a cycle in this process (the simulation, the shell).
    Takes the keyword arguments of ``training_run_create``."""
    run = training_run_create(**params)
    return training_cycle_execute(run_id=run.pk)


def training_runs_sweep(*, now: datetime | None = None) -> dict:
    """Beat, every 10 minutes: fail the stuck runs (their rows go back to the pool) and name the runs pending for
    more than ``PENDING_GRACE``, for the caller to enqueue again (a task that finds a run taken does nothing)."""
    now = now or timezone.now()
    stuck = list(stuck_runs(now).order_by("id").values_list("pk", flat=True))
    failed = [run_id for run_id in stuck if _fail_stuck(run_id, now) is not None]
    pending = TrainingRun.objects.filter(status=Status.PENDING, created_at__lt=now - PENDING_GRACE)
    return {"failed": failed, "requeue": list(pending.order_by("id").values_list("pk", flat=True))}
