"""Writes to outcome labels. Every message sent gets one row; webhooks fill it in later."""

from agents.models import Message
from agents.pipeline.seniority import seniority_of
from outcomes.models import OutcomeLabel


def _lead_context(message: Message) -> dict:
    lead = message.lead
    return {
        "industry": lead.industry,
        "role": lead.title,
        "seniority": seniority_of(lead.title),
        "company_size": lead.company_size,
        "timezone": lead.timezone,
        "icp_score": lead.icp_score,
        "reactivation_probability": lead.reactivation_probability,
        "lost_reason": lead.lost_reason,
    }


def outcome_record_sent(*, message: Message) -> OutcomeLabel:
    """The outcome row for a message about to go out (idempotent: one row per message)."""
    lead = message.lead
    personalizer = message.agent_decisions.get("PersonalizerAgent", {})
    outcome, _ = OutcomeLabel.objects.get_or_create(
        message=message,
        defaults={
            "organization_id": message.organization_id,
            "campaign_id": message.campaign_id,
            "mission_id": message.mission_id,
            "lead": lead,
            "model_version_id": personalizer.get("model_version"),
            "channel": message.channel,
            "subject_line": message.subject,
            "message_body": message.body,
            "framework": message.framework,
            "tone": message.tone,
            "agent_decisions": message.agent_decisions,
            "lead_industry": lead.industry,
            "lead_role": lead.title,
            "company_size": lead.company_size,
            "icp_score": lead.icp_score,
            "lead_context": _lead_context(message),
        },
    )
    return outcome
