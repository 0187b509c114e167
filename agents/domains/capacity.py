"""Daily capacity: mailbox warm-up and the midnight roll-over of sent-today counters."""

import math

from django.db import transaction

from agents.models import Mailbox, PhoneNumber, SendingDomain


def mailbox_warmup_advance(mailbox: Mailbox) -> Mailbox:
    """One day of warm-up: ``daily_cap = min(target, daily_cap + step)``; never above the target.

    A paused mailbox does not ramp: a day without sending is not a day of reputation earned.
    """
    if mailbox.is_paused:
        return mailbox
    new_cap = min(mailbox.target_daily_cap, mailbox.daily_cap + mailbox.warmup_step)
    if mailbox.daily_cap > mailbox.target_daily_cap:  # the target was lowered
        new_cap = mailbox.target_daily_cap
    if new_cap != mailbox.daily_cap:
        mailbox.daily_cap = new_cap
        mailbox.save(update_fields=["daily_cap"])
    return mailbox


def mailboxes_warmup_advance_all() -> int:
    """Advance every mailbox still below (or above) its target; returns how many changed."""
    changed = 0
    for mailbox in Mailbox.objects.filter(is_paused=False).order_by("pk"):
        before = mailbox.daily_cap
        changed += mailbox_warmup_advance(mailbox).daily_cap != before
    return changed


def warmup_stage(mailbox: Mailbox) -> dict:
    """What an operator sees: today's cap against the target, and the days left at this step."""
    remaining = max(mailbox.target_daily_cap - mailbox.daily_cap, 0)
    days_left = math.ceil(remaining / mailbox.warmup_step) if mailbox.warmup_step else None
    return {
        "warming_up": mailbox.warming_up,
        "daily_cap": mailbox.daily_cap,
        "target_daily_cap": mailbox.target_daily_cap,
        "step_per_day": mailbox.warmup_step,
        "days_left": days_left if remaining else 0,
        "label": f"warming up {mailbox.daily_cap}/{mailbox.target_daily_cap}" if remaining else "warmed up",
    }


@transaction.atomic
def counters_rollover() -> int:
    """A new day: every domain's, mailbox's and phone number's sent_today starts again. Returns rows reset."""
    return sum(
        model.objects.exclude(sent_today=0).update(sent_today=0) for model in (SendingDomain, Mailbox, PhoneNumber)
    )
