"""SpecialForcesCoordinator: turns a mission into a Celery canvas.

lead_reactivation: per batch of leads a chain ICP → Scraper → Reviver → Personalizer →
Deliverability → Outreach; a chord over the batches ends in analytics and completion.
Tasks pass ids and small dicts only.
"""

import time

from celery import chain, chord
from django.conf import settings

from agents.decisions.lifecycle import mission_transition
from agents.missions import mission_leads_materialize
from agents.models import AgentRun, Message, Mission, SendingDomain
from agents.pipeline.analytics import AnalyticsAgent
from agents.pipeline.icp import icp_profile_refresh
from agents.pipeline.outreach import OutreachAgent, gate_and_send
from agents.pipeline.runner import agent_run_record, mission_progress_refresh

CHAINS = {
    Mission.Type.LEAD_REACTIVATION: ("icp", "scraper", "reviver", "personalizer", "deliverability", "outreach"),
    Mission.Type.ENRICHMENT: ("icp", "scraper"),
}


def batches(lead_ids: list[int], size: int) -> list[list[int]]:
    return [lead_ids[i : i + size] for i in range(0, len(lead_ids), size)]


class SpecialForcesCoordinator:
    def __init__(self, mission: Mission, *, batch_size: int | None = None):
        self.mission = mission
        self.batch_size = batch_size or settings.MISSION_BATCH_SIZE

    def canvas(self, lead_ids: list[int]):
        from agents import tasks  # the tasks module imports this one

        finish = tasks.mission_finish.si(self.mission.pk).on_error(tasks.mission_failed.s(mission_id=self.mission.pk))
        steps = CHAINS.get(self.mission.type)
        if steps is None:  # mission types that are one job, not a per-lead chain
            single = {Mission.Type.ICP_REFRESH: tasks.icp_refresh, Mission.Type.DOMAIN_AUDIT: tasks.domain_audit}
            return chain(single[self.mission.type].si(self.mission.pk), finish)
        if not lead_ids:
            return finish
        chains = [self._chain(batch, steps) for batch in batches(lead_ids, self.batch_size)]
        return chord(chains, finish)

    def _chain(self, batch: list[int], steps: tuple[str, ...]):
        from agents import tasks

        payload = {"mission_id": self.mission.pk, "lead_ids": batch}
        signatures = [tasks.AGENT_TASKS[steps[0]].s(payload)]
        signatures += [tasks.AGENT_TASKS[name].s() for name in steps[1:]]
        # The chord joins on the result of each chain's last step, so that one result is stored.
        signatures[-1] = signatures[-1].clone(kwargs={"final": True}).set(ignore_result=False)
        return chain(*signatures)


def launch(*, mission_id: int) -> None:
    """Start a queued mission's canvas. A redelivered launch finds it running and does nothing."""
    mission = Mission.objects.get(pk=mission_id)
    if mission.status != Mission.Status.QUEUED:
        return
    lead_ids = mission_leads_materialize(mission=mission)
    canvas = SpecialForcesCoordinator(mission).canvas(lead_ids)
    mission_transition(mission, "start")
    canvas.apply_async()


def finish(*, mission_id: int) -> None:
    """Chord callback: the analytics report, then completion."""
    mission = Mission.objects.select_related("organization", "campaign").get(pk=mission_id)
    if mission.status != Mission.Status.RUNNING:
        return
    mission_progress_refresh(mission_id)
    if mission.type in CHAINS:
        AnalyticsAgent(mission=mission).run_for_mission()
    mission.refresh_from_db()
    mission_transition(mission, "complete")


def refresh_icp(*, mission_id: int) -> None:
    mission = Mission.objects.select_related("organization").get(pk=mission_id)
    if mission.status != Mission.Status.RUNNING:
        return
    profile = icp_profile_refresh(organization=mission.organization)
    report = {"refreshed": profile is not None}
    if profile is not None:
        report.update(sample_size=profile.sample_size, target_industries=profile.target_industries)
    Mission.objects.filter(pk=mission_id).update(report=report)


def audit_domains(*, mission_id: int) -> None:
    mission = Mission.objects.get(pk=mission_id)
    if mission.status != Mission.Status.RUNNING:
        return
    domains = SendingDomain.objects.filter(organization_id=mission.organization_id)
    report = {
        "domains": [
            {
                "domain": d.domain, "reputation": d.reputation_score, "paused": d.is_paused,
                "pause_reason": d.pause_reason, "sent_today": d.sent_today, "daily_cap": d.daily_cap,
            }
            for d in domains
        ]
    }  # fmt: skip
    Mission.objects.filter(pk=mission_id).update(report=report)


def release_due(*, now, limit: int) -> int:
    """Send queued messages whose scheduled time has come, each through the outreach gate again."""
    due = (
        Message.objects.filter(status=Message.Status.QUEUED, scheduled_for__lte=now)
        .exclude(mission__status=Mission.Status.CANCELLED)
        .select_related("lead", "campaign", "mission", "mailbox", "organization")
        .order_by("scheduled_for")[:limit]
    )
    released = 0
    for message in due:
        started = time.perf_counter()
        result = gate_and_send(lead=message.lead, message=message)
        agent = OutreachAgent(mission=message.mission)
        AgentRun.objects.bulk_create([agent_run_record(agent, message.lead, result, started)])
        released += result.proceed
    return released
