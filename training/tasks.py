"""Thin Celery tasks for the training flywheel: ids in, one service call out."""

from celery import shared_task

from rex_project.retry import RETRY
from training.cycle import CycleTooSoon, default_kind, run_training_cycle, training_cycle_execute
from training.models import TrainingRun
from training.openai_trainer import finetune_poll_all, finetune_start
from training.promotion import promote_ab_test_winner


@shared_task(**RETRY)
def poll_finetune_jobs() -> dict:
    """Beat, every 5 minutes: one look at each OpenAI fine-tuning job in progress (never waits for one)."""
    return finetune_poll_all()


@shared_task(**RETRY)
def start_finetune(run_id: int) -> str:
    """Upload an exported run's dataset and create its job; a run that already has a job is left as it is."""
    return finetune_start(run=TrainingRun.objects.get(pk=run_id)).status


@shared_task(**RETRY)
def run_training_cycle_task(run_id: int) -> str:
    """A cycle an operator started (POST /training/run): idempotent, a claimed run is left as it is."""
    return training_cycle_execute(run_id=run_id).status


@shared_task(**RETRY)
def weekly_training_cycle() -> str:
    """Beat, Monday 02:00 UTC: the week's cycle (skipped when one already ran this week)."""
    try:
        return run_training_cycle(kind=default_kind()).status
    except CycleTooSoon as exc:
        return f"skipped: {exc.message}"


@shared_task(**RETRY)
def promotion_check() -> list[str]:
    """Beat, daily: promote or retire every challenger whose A/B test has had its exposure."""
    return [f"{d.challenger.version}: {d.outcome}" for d in promote_ab_test_winner()]
