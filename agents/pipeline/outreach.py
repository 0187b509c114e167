"""OutreachAgent: the last gate before a send (suppression, recency, send window), then the channel."""

import datetime as dt

from django.utils import timezone

from agents.channels import ProviderError
from agents.decisions.engine import decide
from agents.decisions.lifecycle import lead_can, lead_transition
from agents.models import AgentRun, Lead, LinkedInTask, Message, MissionLead
from agents.pipeline.base import Agent, StepResult
from agents.rate_limits import send_allowed
from agents.send_windows import in_send_window, next_window_start
from agents.sending import message_send
from agents.suppressions import lead_suppression

TOUCH_WINDOW = dt.timedelta(days=7)


def outreach_facts(*, lead: Lead, message: Message, now: dt.datetime) -> dict:
    days = (now - lead.last_contacted_at).days if lead.last_contacted_at else None
    # The frequency cap counts every channel together (email, SMS and LinkedIn sends marked by an operator).
    touches = Message.objects.filter(lead=lead, status=Message.Status.SENT, sent_at__gte=now - TOUCH_WINDOW).count()
    return {
        "suppressed": lead_suppression(lead) is not None,
        "days_since_contact": days,
        "in_send_window": in_send_window(lead=lead, channel=message.channel, now=now, campaign=message.campaign),
        "channel": message.channel,
        "step": message.step,
        "touches_last_7_days": touches,
        "max_touches_per_week": lead.organization.max_touches_per_week,
    }


def _due_time(*, lead: Lead, message: Message, params: dict, now: dt.datetime) -> dt.datetime:
    due = now
    if params.get("days") and lead.last_contacted_at:
        due = max(due, lead.last_contacted_at + dt.timedelta(days=int(params["days"])))
    return next_window_start(lead=lead, channel=message.channel, now=due, campaign=message.campaign)


def gate_and_send(*, lead: Lead, message: Message) -> StepResult:
    """Decide now, right before sending; send, wait for a later time, or stop."""
    now = timezone.now()
    facts = outreach_facts(lead=lead, message=message, now=now)
    decision = decide(lead=lead, stage="outreach", event="contact", facts=facts)
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
    if message.channel == Message.Channel.LINKEDIN:
        return _linkedin_task(lead=lead, message=message, decision=decision)
    allowed, retry_at, reason = send_allowed(message=message, now=now)
    if not allowed:
        # Deferred, not lost: the message stays queued and the release sweep sends it at retry_at.
        Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
            scheduled_for=retry_at, updated_at=now
        )
        output = {"message_id": message.pk, "deferred": reason, "scheduled_for": retry_at.isoformat()}
        return StepResult(proceed=False, decision=decision, output=output)
    try:
        # The rules just saw the suppression list (a suppressed contact never gets here).
        sent = message_send(message_id=message.pk, suppression_checked=not facts["suppressed"])
    except ProviderError as exc:
        # The message already says what happened: back in the queue with a due time, or failed.
        output = {"message_id": message.pk, "provider_error": str(exc)[:300], "retry": exc.retryable}
        final = MissionLead.Status.DONE if exc.retryable or exc.ambiguous else MissionLead.Status.FAILED
        return StepResult(proceed=False, decision=decision, output=output, final_status=final)
    return StepResult(
        decision=decision,
        output={"message_id": sent.pk, "status": sent.status, "provider_message_id": sent.provider_message_id},
    )


def _linkedin_task(*, lead: Lead, message: Message, decision) -> StepResult:
    """No public LinkedIn messaging API: an operator sends it by hand; the message stays queued until then."""
    task, _ = LinkedInTask.objects.get_or_create(
        message=message,
        defaults={"organization_id": message.organization_id, "profile_url": lead.linkedin_url, "text": message.body},
    )
    # Out of the release sweep: the operator's "sent" or "skipped" settles it, not the clock.
    Message.objects.filter(pk=message.pk, status=Message.Status.QUEUED).update(
        scheduled_for=None, updated_at=timezone.now()
    )
    return StepResult(proceed=False, decision=decision, output={"message_id": message.pk, "linkedin_task": task.pk})


class OutreachAgent(Agent):
    name = AgentRun.Agent.OUTREACH
    # "sending" must be committed before the provider call, so a crash mid-send stays visible.
    atomic_per_lead = False

    def process(self, lead: Lead) -> StepResult:
        message = Message.objects.select_related("campaign", "mailbox", "organization").get(
            mission=self.mission, lead=lead, step=1
        )
        if message.status != Message.Status.QUEUED:
            return StepResult(output={"message_id": message.pk, "unchanged": message.status})
        return gate_and_send(lead=lead, message=message)
