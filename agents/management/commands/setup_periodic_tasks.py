"""Install REX's beat schedule into django-celery-beat (idempotent; operators edit it in the admin).

Only missing entries are created: an entry that exists (found by name) is left exactly as the operator set it —
its schedule, kwargs and enabled flag — so ``make migrate`` and ``make demo`` never undo an operator's edit.
Every entry says why it runs when it does. Later features add their entries to SCHEDULE.
"""

import json

from django.core.management.base import BaseCommand
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

# name: (task, crontab fields, kwargs, why)
SCHEDULE = {
    "Reset daily sending counters": (
        "agents.tasks.reset_daily_counters",
        {"minute": "0", "hour": "0"},
        {},
        "Midnight UTC: daily caps count per day, so every domain's sent_today starts again.",
    ),
    "Release messages whose wait is over": (
        "agents.tasks.release_due_messages",
        {"minute": "*"},
        {},
        "Every minute: sends held for a send window or a recency rule go out soon after they may, "
        "and the due time lives in the database, not in a broker ETA that could outlive Redis's visibility timeout.",
    ),
    "Check sending-domain health": (
        "agents.tasks.domain_health_check_all",
        {"minute": "17"},
        {},
        "Hourly, off the top of the hour when providers' DNS is busiest: DNS authentication and the 28-day "
        "bounce/complaint rates are re-checked so a failing domain or mailbox is paused within the hour, "
        "and one that recovered resumes within the hour.",
    ),
    "Advance mailbox warm-up": (
        "agents.tasks.warmup_advance_all",
        {"minute": "5", "hour": "0"},
        {},
        "Daily 00:05 UTC, just after the counters reset at midnight: each warming mailbox gets one more step "
        "of daily cap for the new day, never more than one step per day.",
    ),
    "Re-enqueue stored webhook events": (
        "webhooks.tasks.sweep_webhook_events",
        {"minute": "*"},
        {},
        "Every minute: a webhook event stored but never processed (its enqueue lost, a worker crash, or its "
        "outcome not matched yet) is picked up again within a minute or two, so no provider event is dropped.",
    ),
    "Weekly training cycle": (
        "training.tasks.weekly_training_cycle",
        {"minute": "0", "hour": "2", "day_of_week": "1"},
        {},
        "Monday 02:00 UTC, the quietest hour of the week: a full week of outcomes (including the weekend's late "
        "replies) is labelled, and the new challenger starts its A/B test with the working week. One cycle per kind "
        "available (the policy always, the message writer when OPENAI_API_KEY is set), each skipped when one ran "
        "this ISO week. Kwargs, as POST /training/run's and validated the same way: kind (only that kind), "
        "min_quality_score (default by kind: 0.6 for the message writer; the policy ignores it), "
        'ab_test_percentage (default 10), deploy_immediately, force — e.g. {"ab_test_percentage": 20}.',
    ),
    "Promote or retire A/B challengers": (
        "training.tasks.promotion_check",
        {"minute": "30", "hour": "3"},
        {},
        "Daily 03:30 UTC, after the night's webhooks settled: a challenger that has had its week of exposure is "
        "promoted when it significantly wins, or retired, within a day of the test being conclusive.",
    ),
    "Poll OpenAI fine-tuning jobs": (
        "training.tasks.poll_finetune_jobs",
        {"minute": "*/5"},
        {},
        "Every 5 minutes: fine-tunes take 30-60 minutes, so a finished job is noticed within minutes without a "
        "task that blocks a worker while waiting.",
    ),
    "Sweep stuck training runs": (
        "training.tasks.sweep_training_runs",
        {"minute": "*/10"},
        {},
        "Every 10 minutes: a training run pending for more than 5 minutes (its task was lost) is enqueued again, "
        "and one a task claimed longer ago than the task time limit (its worker died) is failed and its rows given "
        "back, so no run blocks the week's cycle.",
    ),
    "Clean expired task results": (
        "celery.backend_cleanup",
        {"minute": "0", "hour": "4"},
        {},
        "Daily 04:00 UTC, a quiet hour: django-celery-results keeps results for a week, then they go.",
    ),
}


class Command(BaseCommand):
    help = "Create REX's missing periodic tasks in django-celery-beat (existing ones are left as they are)."

    @transaction.atomic
    def handle(self, *args, **options):
        for name, (task, fields, kwargs, why) in SCHEDULE.items():
            _, created = PeriodicTask.objects.get_or_create(
                name=name,
                defaults={
                    "task": task,
                    "crontab": lambda fields=fields: _crontab(fields),  # evaluated only when the entry is created
                    "kwargs": json.dumps(kwargs),
                    "description": why,
                },
            )
            if options["verbosity"]:
                self.stdout.write(f"{'created' if created else 'kept as it is'}: {name} → {task}")


def _crontab(fields: dict) -> CrontabSchedule:
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=fields.get("minute", "*"),
        hour=fields.get("hour", "*"),
        day_of_week=fields.get("day_of_week", "*"),
        day_of_month=fields.get("day_of_month", "*"),
        month_of_year=fields.get("month_of_year", "*"),
        timezone="UTC",
    )
    return crontab
