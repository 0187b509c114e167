"""OutreachAgent: the last gate before a send (suppression, recency, send window), then the channel."""

import datetime as dt

from django.utils import timezone

from agents.decisions.engine import decide
from agents.decisions.lifecycle import lead_can, lead_transition
from agents.models import AgentRun, Lead, Message, MissionLead
from agents.pipeline.base import Agent, StepResult
from agents.send_windows import in_send_window, next_window_start
from agents.sending import message_send
from agents.suppressions import lead_suppression


def outreach_facts(*, lead: Lead, message: Message, now: dt.datetime) -> dict:
    days = (now - lead.last_contacted_at).days if lead.last_contacted_at else None
    return {
        "suppressed": lead_suppression(lead) is not None,
        "days_since_contact": days,
        "in_send_window": in_send_window(lead=lead, channel=message.channel, now=now, campaign=message.campaign),
        "channel": message.channel,
        "step": message.step,
    }


def _due_time(*, lead: Lead, message: Message, params: dict, now: dt.datetime) -> dt.datetime:
    due = now
    if params.get("days") and lead.last_contacted_at:
        due = max(due, lead.last_contacted_at + dt.timedelta(days=int(params["days"])))
    return next_window_start(lead=lead, channel=message.channel, now=due, campaign=message.campaign)


def gate_and_send(*, lead: Lead, message: Message) -> StepResult:
    """Decide now, right before sending; send, wait for a later time, or stop."""
    now = timezone.now()
    decision = decide(
        lead=lead, stage="outreach", event="contact", facts=outreach_facts(lead=lead, message=message, now=now)
    )
    if decision.action == "delay":
        due = _due_time(lead=lead, message=message, params=decision.params, now=now)
        Message.objects.filter(pk=message.pk).update(scheduled_for=due, updated_at=now)
        if lead_can(lead, "schedule"):
            lead_transition(lead, "schedule")
        return StepResult(
            proceed=False, decision=decision, output={"message_id": message.pk, "scheduled_for": due.isoformat()}
        )
    if decision.action != "proceed":
        Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
            status=Message.Status.CANCELLED, error=f"{decision.action}: {decision.reason}"[:2000], updated_at=now
        )
        if decision.action == "stop" and lead_can(lead, "suppress") and lead_suppression(lead):
            lead_transition(lead, "suppress")
        return StepResult(proceed=False, decision=decision, final_status=MissionLead.Status.SKIPPED)
    sent = message_send(message_id=message.pk)
    return StepResult(
        decision=decision,
        output={"message_id": sent.pk, "status": sent.status, "provider_message_id": sent.provider_message_id},
    )


class OutreachAgent(Agent):
    name = AgentRun.Agent.OUTREACH
    # "sending" must be committed before the provider call, so a crash mid-send stays visible.
    atomic_per_lead = False

    def process(self, lead: Lead) -> StepResult:
        message = Message.objects.select_related("campaign").get(mission=self.mission, lead=lead, step=1)
        if message.status != Message.Status.QUEUED:
            return StepResult(output={"message_id": message.pk, "unchanged": message.status})
        return gate_and_send(lead=lead, message=message)
