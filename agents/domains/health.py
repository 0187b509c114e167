"""The hourly health check: DNS authentication and reputation, auto-pause, and alerts once per crossing.

A condition (bounce rate, complaint rate, DNS failure, low reputation) *crosses* when it becomes true while
no alert for it is open. A crossing opens one Alert and auto-pauses the domain or mailbox (``pause_reason``
starts with "auto: ") and moves its queued messages elsewhere. While the condition holds, later checks add
no alert and do not re-pause a domain an operator resumed. When it clears, the open alert is resolved, and
once nothing holds, an auto-paused domain or mailbox resumes. A pause by an operator is never lifted here.
"""

from django.db import transaction
from django.utils import timezone

from agents.models import Alert, Mailbox, SendingDomain

from .dns_auth import dns_check, dns_failures
from .reputation import MIN_SENDS, mailbox_reputation, reputation
from .rotation import HEALTHY_REPUTATION, mailbox_move_queue, sending_domain_move_queue

AUTO = "auto: "
MAX_BOUNCE_RATE = 0.02
MAX_COMPLAINT_RATE = 0.001
# A rate crosses only on at least this many events: one bounce or one complaint is one recipient, not a rate
# (1 bounce in 46 sends is "2.2%", and pausing on it stalled every domain of a young sender).
MIN_RATE_EVENTS = 2

Kind = Alert.Kind


def _rate_conditions(stats: dict) -> dict[str, str | None]:
    """``{kind: reason or None}`` for the rate thresholds; none applies below ``MIN_SENDS`` sends or
    ``MIN_RATE_EVENTS`` events."""
    enough = stats["sends"] >= MIN_SENDS
    days, sends = stats["window_days"], stats["sends"]
    bounce, complaint = stats["bounce_rate"], stats["complaint_rate"]
    return {
        Kind.BOUNCE_RATE: (
            f"bounce rate {bounce:.1%} ({stats['bounces']} of {sends} sends in {days} days) exceeds 2%"
            if enough and stats["bounces"] >= MIN_RATE_EVENTS and bounce > MAX_BOUNCE_RATE
            else None
        ),
        Kind.COMPLAINT_RATE: (
            f"complaint rate {complaint:.2%} ({stats['complaints']} of {sends} sends in {days} days) exceeds 0.1%"
            if enough and stats["complaints"] >= MIN_RATE_EVENTS and complaint > MAX_COMPLAINT_RATE
            else None
        ),
    }


def _domain_conditions(checks: dict, score: float, inputs: dict) -> dict[str, str | None]:
    failed = dns_failures(checks)
    dns_reason = "DNS authentication failed: " + "; ".join(
        f"{name.upper()}: {checks[name]['error']}" for name in failed
    )
    return {
        **_rate_conditions(inputs),
        Kind.DNS_FAILURE: dns_reason if failed else None,
        Kind.LOW_REPUTATION: f"reputation {score:.2f} is below {HEALTHY_REPUTATION}"
        if score < HEALTHY_REPUTATION
        else None,
    }


def _sync_alerts(*, subject_obj: SendingDomain | Mailbox, conditions: dict, figures: dict) -> bool:
    """Open one alert per active condition, resolve the others; True when a condition newly crossed."""
    is_domain = isinstance(subject_obj, SendingDomain)
    domain = subject_obj if is_domain else subject_obj.sending_domain
    subject = f"{'domain' if is_domain else 'mailbox'}:{subject_obj.pk}"
    crossed = False
    for kind, reason in conditions.items():
        lookup = {"organization_id": domain.organization_id, "kind": kind, "subject": subject, "resolved_at": None}
        if reason is None:
            Alert.objects.filter(**lookup).update(resolved_at=timezone.now())
            continue
        _, created = Alert.objects.get_or_create(
            **lookup,
            defaults={
                "sending_domain": domain,
                "mailbox": None if is_domain else subject_obj,
                "message": f"{subject_obj}: {reason}"[:500],
                "figures": figures,
            },
        )
        crossed |= created
    return crossed


def _apply_pause(obj: SendingDomain | Mailbox, reasons: list[str], *, crossed: bool) -> str:
    """Auto-pause on a crossing, keep an auto-pause's reason current, resume once clear. Returns what changed."""
    auto_paused = obj.is_paused and obj.pause_reason.startswith(AUTO)
    fields = ["is_paused", "pause_reason"] + (["paused_at"] if isinstance(obj, SendingDomain) else [])
    if reasons and (auto_paused or (crossed and not obj.is_paused)):
        change = "" if obj.is_paused else "paused"
        obj.is_paused, obj.pause_reason = True, (AUTO + "; ".join(reasons))[:200]
        if change and isinstance(obj, SendingDomain):
            obj.paused_at = timezone.now()
        obj.save(update_fields=fields)
        return change
    if not reasons and auto_paused:
        obj.is_paused, obj.pause_reason = False, ""
        if isinstance(obj, SendingDomain):
            obj.paused_at = None
        obj.save(update_fields=fields)
        return "resumed"
    return ""


def _mailbox_check(mailbox: Mailbox, domain_conditions: dict) -> None:
    _, inputs = mailbox_reputation(mailbox)
    # A condition the whole domain already has is the domain's alert, not one per mailbox.
    conditions = {
        kind: None if domain_conditions.get(kind) else reason for kind, reason in _rate_conditions(inputs).items()
    }
    crossed = _sync_alerts(subject_obj=mailbox, conditions=conditions, figures=inputs)
    reasons = [reason for reason in conditions.values() if reason]
    if _apply_pause(mailbox, reasons, crossed=crossed) == "paused":
        mailbox_move_queue(mailbox)


def domain_health_check(domain: SendingDomain) -> SendingDomain:
    """Check DNS and reputation, store them, and pause/alert/resume the domain and its mailboxes."""
    # Network and aggregate queries first, so no transaction stays open across DNS timeouts.
    checks = dns_check(domain)
    score, inputs = reputation(domain)
    mailbox_ids = list(domain.mailboxes.values_list("pk", flat=True))
    with transaction.atomic():
        domain = SendingDomain.objects.select_for_update().select_related("organization").get(pk=domain.pk)
        domain.dns_checks, domain.reputation_score, domain.reputation_inputs = checks, score, inputs
        domain.last_checked_at = timezone.now()
        domain.save(update_fields=["dns_checks", "reputation_score", "reputation_inputs", "last_checked_at"])
        conditions = _domain_conditions(checks, score, inputs)
        crossed = _sync_alerts(subject_obj=domain, conditions=conditions, figures={**inputs, "dns": checks})
        if _apply_pause(domain, [r for r in conditions.values() if r], crossed=crossed) == "paused":
            sending_domain_move_queue(domain)
        for mailbox in Mailbox.objects.filter(pk__in=mailbox_ids).select_related("sending_domain__organization"):
            _mailbox_check(mailbox, conditions)
    return domain
