"""Mission services: create (idempotently), launch, cancel, finish, fail, retry failed leads."""

import logging

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from agents.decisions.lifecycle import mission_transition
from agents.models import Campaign, Lead, Mission, MissionLead, Organization
from rex_project.exceptions import ApplicationError

logger = logging.getLogger("rex.missions")

LEAD_FILTER_FIELDS = {
    "state": "state",
    "industry": "industry__iexact",
    "company": "company__iexact",
    "min_icp_score": "icp_score__gte",
    "max_icp_score": "icp_score__lte",
    "lost_reason": "lost_reason__icontains",
    "not_contacted_since": "last_contacted_at__lt",
}


def _target_leads(*, organization: Organization, lead_ids=None, campaign=None, filter=None) -> QuerySet[Lead]:
    leads = Lead.objects.filter(organization=organization)
    if lead_ids is not None:
        found = set(leads.filter(pk__in=lead_ids).values_list("pk", flat=True))
        missing = sorted(set(lead_ids) - found)
        if missing:
            raise ApplicationError("Some leads do not exist.", extra={"lead_ids": [f"Unknown lead ids: {missing}"]})
        return leads.filter(pk__in=lead_ids)
    if campaign is not None:
        return leads.filter(campaigns=campaign)
    lookups = {LEAD_FILTER_FIELDS[key]: value for key, value in (filter or {}).items()}
    return leads.filter(**lookups)


@transaction.atomic
def mission_create(
    *,
    organization: Organization,
    type: str,
    priority: int = 50,
    requested_by=None,
    lead_ids: list[int] | None = None,
    campaign: Campaign | None = None,
    filter: dict | None = None,
    idempotency_key: str | None = None,
) -> tuple[Mission, bool]:
    """Store a mission and its leads and launch it after commit. Returns (mission, created)."""
    if idempotency_key:
        existing = Mission.objects.filter(organization=organization, idempotency_key=idempotency_key).first()
        if existing:
            return existing, False
    per_lead = type in (Mission.Type.LEAD_REACTIVATION, Mission.Type.ENRICHMENT)
    ids = []
    if per_lead:
        leads = _target_leads(organization=organization, lead_ids=lead_ids, campaign=campaign, filter=filter)
        ids = sorted(set(lead_ids)) if lead_ids is not None else list(leads.order_by("pk").values_list("pk", flat=True))
    if per_lead and not ids:
        raise ApplicationError("The mission selects no leads.", extra={"lead_ids": ["No lead matches."]})
    # The selection is frozen here; the coordinator creates the per-lead rows when it launches,
    # which keeps this request to a few queries whatever the mission's size.
    params = {"lead_ids": ids, "campaign_id": campaign.pk if campaign else None, "filter": filter or {}}
    try:
        with transaction.atomic():
            mission = Mission.objects.create(
                organization=organization, campaign=campaign, type=type, priority=priority, params=params,
                requested_by=requested_by, idempotency_key=idempotency_key or None, total=len(ids),
            )  # fmt: skip
    except IntegrityError:  # the same key raced us: answer with the mission that won
        return Mission.objects.get(organization=organization, idempotency_key=idempotency_key), False
    from agents.tasks import mission_launch

    mission_launch.delay_on_commit(mission.pk)
    return mission, True


def mission_leads_materialize(*, mission: Mission) -> list[int]:
    """The per-lead rows of a mission (idempotent); returns the lead ids in order."""
    lead_ids = mission.params.get("lead_ids") or []
    MissionLead.objects.bulk_create(
        [MissionLead(mission=mission, lead_id=lead_id) for lead_id in lead_ids], batch_size=1000, ignore_conflicts=True
    )
    return lead_ids


def mission_cancel(*, mission: Mission) -> Mission:
    """Queued or running missions stop: every pending task finds the mission cancelled and does nothing."""
    if mission.status not in (Mission.Status.QUEUED, Mission.Status.RUNNING):
        raise ApplicationError(f"A {mission.status} mission cannot be cancelled.", extra={"status": [mission.status]})
    mission_transition(mission, "cancel", reason="cancelled by an operator")
    return mission


def mission_fail(*, mission_id: int, reason: str) -> None:
    mission = Mission.objects.get(pk=mission_id)
    if mission.status in (Mission.Status.QUEUED, Mission.Status.RUNNING):
        mission_transition(mission, "fail", reason=reason[:2000])
        logger.error("mission %s failed: %s", mission_id, reason)


def mission_retry_failed_leads(*, mission: Mission) -> int:
    """Put a finished mission's failed leads through the chain again, as a new mission."""
    failed = list(mission.mission_leads.filter(status=MissionLead.Status.FAILED).values_list("lead_id", flat=True))
    if not failed:
        return 0
    mission_create(
        organization=mission.organization, type=mission.type, priority=mission.priority, campaign=mission.campaign,
        requested_by=mission.requested_by, lead_ids=failed,
    )  # fmt: skip
    return len(failed)
