"""Thin Celery tasks for the training flywheel: ids in, one service call out."""

from celery import shared_task

from rex_project.retry import RETRY
from training.cycle import (
    CycleTooSoon,
    available_kinds,
    training_cycle_execute,
    training_run_create,
    training_runs_sweep,
)
from training.models import TrainingRun
from training.openai_trainer import finetune_poll_all, finetune_start
from training.promotion import promote_ab_test_winner
from training.registry import performance_refresh_deployed


@shared_task(**RETRY)
def poll_finetune_jobs() -> dict:
    """Beat, every 5 minutes: one look at each OpenAI fine-tuning job in progress (never waits for one)."""
    return finetune_poll_all()


@shared_task(**RETRY)
def start_finetune(run_id: int) -> str:
    """Upload an exported run's dataset and create its job; a run that already has a job is left as it is."""
    return finetune_start(run=TrainingRun.objects.get(pk=run_id)).status


@shared_task(bind=True, **RETRY)
def run_training_cycle_task(self, run_id: int) -> str:
    """Execute a pending cycle (started by the API, the admin or beat). Idempotent: a run another task has is left
    as it is, and a retry or redelivery of this task resumes the run it claimed."""
    return training_cycle_execute(run_id=run_id, task_id=self.request.id or "").status


def weekly_params(params: dict) -> dict[str, dict]:
    """The weekly cycle's parameters per kind (the ``kind`` given, or every kind available), validated as those of
    POST /training/run; ValueError says what is wrong (nothing starts)."""
    from training.apis import TrainingRunApi  # the API's own validation, so beat accepts what the API accepts

    serializer_class = TrainingRunApi.TrainingRunInputSerializer
    accepted = sorted(serializer_class().fields)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"weekly_training_cycle: unknown kwargs {unknown}; it accepts {accepted}.")
    validated = {}
    for kind in [params["kind"]] if params.get("kind") else available_kinds():
        serializer = serializer_class(data={**params, "kind": kind})
        if not serializer.is_valid():
            errors = {field: [str(error) for error in found] for field, found in serializer.errors.items()}
            raise ValueError(f"weekly_training_cycle: invalid kwargs for {kind}: {errors}")
        validated[kind] = dict(serializer.validated_data)
    return validated


def _start_cycle(params: dict, task_id: str) -> str:
    if task_id and TrainingRun.objects.filter(kind=params["kind"], params__source_task_id=task_id).exists():
        return "started already (this task was redelivered)"
    try:
        run = training_run_create(**params, source_task_id=task_id)
    except CycleTooSoon as exc:
        return f"skipped: {exc.message}"
    run_training_cycle_task.delay_on_commit(run.pk)
    return f"started run {run.pk}"


@shared_task(bind=True, **RETRY)
def weekly_training_cycle(self, **params) -> dict[str, str]:
    """Beat, Monday 02:00 UTC: start this week's cycle of every kind available (the policy always, the message
    writer when OpenAI is configured), each in its own task and under its own weekly guard. The kwargs (admin →
    Periodic tasks: kind, min_quality_score, ab_test_percentage, deploy_immediately, force) are validated like
    POST /training/run's: a bad one fails the task and starts nothing."""
    task_id = self.request.id or ""
    return {kind: _start_cycle(data, task_id) for kind, data in weekly_params(params).items()}


@shared_task(**RETRY)
def sweep_training_runs() -> dict:
    """Beat, every 10 minutes: fail runs stuck past the task time limit (their rows go back to the pool) and
    enqueue again the runs pending for more than a few minutes."""
    summary = training_runs_sweep()
    for run_id in summary["requeue"]:
        run_training_cycle_task.delay(run_id)
    return summary


@shared_task(**RETRY)
def promotion_check() -> list[str]:
    """Beat, daily: promote or retire every challenger whose A/B test has had its exposure."""
    decided = [f"{d.challenger.version}: {d.outcome}" for d in promote_ab_test_winner()]
    performance_refresh_deployed()  # after the promotions: deltas against the champion now serving
    return decided
