"""Thin Celery tasks: ids in, one service call out. Retry policy is the only other thing here."""

from celery import shared_task
from django.utils import timezone

from agents.domains import counters_rollover, domain_health_check, mailboxes_warmup_advance_all
from agents.missions import mission_fail
from agents.models import SendingDomain
from agents.pipeline import coordinator
from agents.pipeline.deliverability import DeliverabilityAgent
from agents.pipeline.icp import ICPIntelligenceAgent
from agents.pipeline.outreach import OutreachAgent
from agents.pipeline.personalizer import PersonalizerAgent
from agents.pipeline.reviver import ReviverAgent
from agents.pipeline.runner import run_batch
from agents.pipeline.scraper import ScraperAgent
from rex_project.retry import RETRY


def _step(agent_class, payload: dict, final: bool) -> dict:
    survivors = run_batch(
        agent_class=agent_class, mission_id=payload["mission_id"], lead_ids=payload["lead_ids"], final=final
    )
    return {"mission_id": payload["mission_id"], "lead_ids": survivors}


@shared_task(**RETRY)
def icp(payload: dict, final: bool = False) -> dict:
    return _step(ICPIntelligenceAgent, payload, final)


@shared_task(**RETRY)
def scraper(payload: dict, final: bool = False) -> dict:
    return _step(ScraperAgent, payload, final)


@shared_task(**RETRY)
def reviver(payload: dict, final: bool = False) -> dict:
    return _step(ReviverAgent, payload, final)


@shared_task(**RETRY)
def personalizer(payload: dict, final: bool = False) -> dict:
    return _step(PersonalizerAgent, payload, final)


@shared_task(**RETRY)
def deliverability(payload: dict, final: bool = False) -> dict:
    return _step(DeliverabilityAgent, payload, final)


@shared_task(**RETRY)
def outreach(payload: dict, final: bool = False) -> dict:
    return _step(OutreachAgent, payload, final)


AGENT_TASKS = {
    "icp": icp,
    "scraper": scraper,
    "reviver": reviver,
    "personalizer": personalizer,
    "deliverability": deliverability,
    "outreach": outreach,
}


@shared_task(**RETRY)
def mission_launch(mission_id: int) -> None:
    coordinator.launch(mission_id=mission_id)


@shared_task(**RETRY)
def mission_finish(mission_id: int) -> None:
    coordinator.finish(mission_id=mission_id)


@shared_task
def mission_failed(request, exc, traceback, mission_id: int) -> None:
    """Errback of a mission's canvas: the mission fails and says why."""
    mission_fail(mission_id=mission_id, reason=f"{type(exc).__name__}: {exc}")


@shared_task(**RETRY)
def icp_refresh(mission_id: int) -> None:
    coordinator.refresh_icp(mission_id=mission_id)


@shared_task(**RETRY)
def domain_audit(mission_id: int) -> None:
    coordinator.audit_domains(mission_id=mission_id)


@shared_task(**RETRY)
def release_due_messages(limit: int = 500) -> int:
    """Beat: send the messages whose wait (send window, recency) is over."""
    return coordinator.release_due(now=timezone.now(), limit=limit)


@shared_task(**RETRY)
def reset_daily_counters() -> int:
    """Beat, midnight UTC: every domain's, mailbox's and phone number's daily count starts again."""
    return counters_rollover()


@shared_task(**RETRY)
def domain_health_check_all() -> int:
    """Beat, hourly: one health-check task per sending domain, so a slow DNS server delays only its domain."""
    domain_ids = list(SendingDomain.objects.order_by("pk").values_list("pk", flat=True))
    for domain_id in domain_ids:
        domain_health_check_one.delay(domain_id)
    return len(domain_ids)


@shared_task(**RETRY)
def domain_health_check_one(domain_id: int) -> None:
    domain = SendingDomain.objects.filter(pk=domain_id).first()
    if domain is None:
        return  # deleted since it was enqueued
    domain_health_check(domain)


@shared_task(**RETRY)
def warmup_advance_all() -> int:
    """Beat, daily 00:05 UTC: every warming-up mailbox's cap takes one more step toward its target."""
    return mailboxes_warmup_advance_all()
