"""DeliverabilityAgent: picks the sending domain (email) or number (SMS) for each message."""

import random

from django.conf import settings

from agents.decisions.engine import decide
from agents.models import AgentRun, Lead, Message, MissionLead, SendingDomain
from agents.pipeline.base import Agent, StepResult

HEALTHY_REPUTATION = 0.7


def pick_domain(domains: list[SendingDomain], *, rng: random.Random, exclude: set[int]) -> SendingDomain | None:
    """A domain with capacity left, weighted by reputation × remaining share of its cap."""
    candidates = [d for d in domains if d.pk not in exclude and not d.is_paused and d.sent_today < d.daily_cap]
    if not candidates:
        return None
    weights = [max(d.reputation_score, 0.01) * (d.daily_cap - d.sent_today) / d.daily_cap for d in candidates]
    return rng.choices(candidates, weights=weights, k=1)[0]


class DeliverabilityAgent(Agent):
    name = AgentRun.Agent.DELIVERABILITY

    def __init__(self, *, mission):
        super().__init__(mission=mission)
        self.domains = list(SendingDomain.objects.filter(organization=self.organization, is_paused=False))

    def process(self, lead: Lead) -> StepResult:
        message = Message.objects.get(mission=self.mission, lead=lead, step=1)
        if message.status != Message.Status.QUEUED:
            return StepResult(output={"message_id": message.pk, "unchanged": message.status})
        if message.channel == Message.Channel.SMS:
            message.from_address = settings.TWILIO_FROM_NUMBER
            message.save(update_fields=["from_address", "updated_at"])
            return StepResult(output={"message_id": message.pk, "from": message.from_address})
        rng = random.Random(f"{self.mission.pk}:{lead.pk}:domain")
        domain = pick_domain(self.domains, rng=rng, exclude=set())
        if domain is None:
            return StepResult(
                proceed=False,
                final_status=MissionLead.Status.SKIPPED,
                output={"error": "no sending domain with capacity"},
            )
        decision = decide(
            lead=lead,
            stage="deliverability",
            facts={"domain_reputation": domain.reputation_score, "domain": domain.domain, "channel": message.channel},
        )
        if decision.action == "rotate_domain":
            healthy = [d for d in self.domains if d.reputation_score >= HEALTHY_REPUTATION]
            domain = pick_domain(healthy, rng=rng, exclude={domain.pk}) or domain
        message.sending_domain = domain
        message.from_address = f"{settings.DEFAULT_SENDER_LOCALPART}@{domain.domain}"
        message.save(update_fields=["sending_domain", "from_address", "updated_at"])
        return StepResult(decision=decision, output={"message_id": message.pk, "domain": domain.domain})
