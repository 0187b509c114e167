"""DeliverabilityAgent: picks the mailbox (email) or phone number (SMS) each message goes out from."""

import random

from django.conf import settings

from agents.decisions.engine import decide
from agents.domains import mailboxes_ensure_default, message_assign_mailbox, pick_mailbox, pick_phone_number
from agents.models import AgentRun, Lead, Message, MissionLead, PhoneNumber
from agents.pipeline.base import Agent, StepResult


def _no_capacity(what: str) -> StepResult:
    return StepResult(
        proceed=False, final_status=MissionLead.Status.SKIPPED, output={"error": f"no {what} with capacity"}
    )


class DeliverabilityAgent(Agent):
    name = AgentRun.Agent.DELIVERABILITY

    def __init__(self, *, mission):
        super().__init__(mission=mission)
        # A domain set up before mailboxes existed sends as DEFAULT_SENDER_LOCALPART@domain.
        mailboxes_ensure_default(organization=self.organization)
        self.has_numbers = PhoneNumber.objects.filter(organization=self.organization).exists()

    def process(self, lead: Lead) -> StepResult:
        message = Message.objects.select_related("campaign").get(mission=self.mission, lead=lead, step=1)
        if message.status != Message.Status.QUEUED:
            return StepResult(output={"message_id": message.pk, "unchanged": message.status})
        if message.channel == Message.Channel.SMS:
            return self._choose_number(message, lead)
        return self._choose_mailbox(message, lead)

    def _choose_number(self, message: Message, lead: Lead) -> StepResult:
        if not self.has_numbers:
            message.from_address = settings.TWILIO_FROM_NUMBER
            message.save(update_fields=["from_address", "updated_at"])
            return StepResult(output={"message_id": message.pk, "from": message.from_address})
        number = pick_phone_number(
            organization=self.organization, rng=random.Random(f"{self.mission.pk}:{lead.pk}:sms")
        )
        if number is None:
            return _no_capacity("phone number")
        message.phone_number, message.from_address = number, number.number
        message.save(update_fields=["phone_number", "from_address", "updated_at"])
        return StepResult(output={"message_id": message.pk, "from": message.from_address})

    def _choose_mailbox(self, message: Message, lead: Lead) -> StepResult:
        rng = random.Random(f"{self.mission.pk}:{lead.pk}:mailbox")
        mailbox = pick_mailbox(organization=self.organization, rng=rng, campaign=message.campaign)
        if mailbox is None:
            return _no_capacity("sending mailbox")
        domain = mailbox.sending_domain
        decision = decide(
            lead=lead,
            stage="deliverability",
            facts={
                "domain_reputation": domain.reputation_score,
                "domain": domain.domain,
                "mailbox": mailbox.address,
                "channel": message.channel,
            },
        )
        if decision.action == "rotate_domain":
            # Another domain's mailbox if there is one; otherwise the first choice still beats not sending.
            same_domain = domain.mailboxes.values_list("pk", flat=True)
            mailbox = (
                pick_mailbox(organization=self.organization, rng=rng, exclude=same_domain, campaign=message.campaign)
                or mailbox
            )
        message_assign_mailbox(message=message, mailbox=mailbox)
        return StepResult(
            decision=decision,
            output={"message_id": message.pk, "domain": mailbox.sending_domain.domain, "mailbox": mailbox.address},
        )
