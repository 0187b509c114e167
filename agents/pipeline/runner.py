"""Runs one agent over one batch of a mission's leads and records every step as an AgentRun."""

import contextlib
import logging
import time

from django.db import InterfaceError, OperationalError, transaction

from agents.models import AgentRun, Lead, Mission, MissionLead
from agents.pipeline.base import Agent, StepResult

logger = logging.getLogger("rex.pipeline")

# Infrastructure trouble: let the task retry the batch instead of failing each lead.
TRANSIENT = (OperationalError, InterfaceError)


def agent_run_record(agent: Agent, lead: Lead, result: StepResult | None, started: float, error: str = "") -> AgentRun:
    decision = result.decision if result else None
    return AgentRun(
        mission_id=agent.mission.pk,
        lead=lead,
        agent=agent.name,
        success=not error,
        error=error,
        duration_ms=(time.perf_counter() - started) * 1000,
        input_summary=agent.input_summary(lead),
        output_summary=result.output if result else {},
        decision_layer=decision.layer if decision else AgentRun.Layer.NONE,
        decision=decision.action if decision else "",
        decision_reason=decision.reason[:300] if decision else "",
        decision_ms=decision.latency_ms if decision else None,
        rule_id=decision.rule_id if decision else None,
        llm_cache_hit=decision.llm_cache_hit if decision else None,
        llm_tokens=decision.llm_tokens if decision else 0,
        llm_fallback=decision.llm_fallback if decision else False,
    )


def run_batch(*, agent_class: type[Agent], mission_id: int, lead_ids: list[int], final: bool = False) -> list[int]:
    """Process the batch's still-pending leads; return the ids that go on to the next agent."""
    mission = Mission.objects.select_related("organization", "campaign").get(pk=mission_id)
    if mission.status != Mission.Status.RUNNING:
        return []  # cancelled or failed meanwhile: the rest of the chain does nothing
    pending = set(
        MissionLead.objects.filter(
            mission=mission, lead_id__in=lead_ids, status=MissionLead.Status.PENDING
        ).values_list("lead_id", flat=True)
    )
    leads = Lead.objects.filter(organization=mission.organization).in_bulk([i for i in lead_ids if i in pending])
    agent = agent_class(mission=mission)
    runs, survivors, finished = [], [], {}
    for lead_id in lead_ids:
        lead = leads.get(lead_id)
        if lead is None:
            continue
        started = time.perf_counter()
        try:
            with transaction.atomic() if agent.atomic_per_lead else contextlib.nullcontext():
                result = agent.process(lead)
        except TRANSIENT:
            raise
        except Exception as exc:  # one lead's failure never fails the mission
            logger.warning("%s failed on lead %s in mission %s: %r", agent.name, lead_id, mission_id, exc)
            runs.append(agent_run_record(agent, lead, None, started, error=f"{type(exc).__name__}: {exc}"[:2000]))
            finished[lead_id] = (MissionLead.Status.FAILED, f"{agent.name}: {type(exc).__name__}: {exc}"[:2000])
            continue
        runs.append(agent_run_record(agent, lead, result, started))
        if result.proceed and not final:
            survivors.append(lead_id)
        else:
            finished[lead_id] = (result.final_status if not result.proceed else MissionLead.Status.DONE, "")
    with transaction.atomic():
        AgentRun.objects.bulk_create(runs)
        _finish_leads(mission, finished)
    return survivors


def _finish_leads(mission: Mission, finished: dict[int, tuple[str, str]]) -> None:
    by_outcome: dict[tuple[str, str], list[int]] = {}
    for lead_id, outcome in finished.items():
        by_outcome.setdefault(outcome, []).append(lead_id)
    for (status, error), ids in by_outcome.items():
        MissionLead.objects.filter(mission=mission, lead_id__in=ids, status=MissionLead.Status.PENDING).update(
            status=status, error=error
        )
    if finished:
        mission_progress_refresh(mission.pk)


def mission_progress_refresh(mission_id: int) -> None:
    """processed = leads no longer pending; recounted, so a retried batch never double counts."""
    done = MissionLead.objects.filter(mission_id=mission_id).exclude(status=MissionLead.Status.PENDING).count()
    Mission.objects.filter(pk=mission_id).update(processed=done)
