"""factory-boy factories for every REX model.

Related rows stay inside one organization: a message's lead, mission and sending domain belong to the
message's organization, and so on. Optional links to users and model versions default to None.
"""

import functools
import json

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils import timezone
from factory.django import DjangoModelFactory, Password

from agents.models import (
    AgentRun,
    Alert,
    Campaign,
    DecisionRule,
    ICPProfile,
    Lead,
    LinkedInTask,
    Mailbox,
    Membership,
    Message,
    Mission,
    MissionLead,
    Organization,
    PhoneNumber,
    SendingDomain,
    Suppression,
)
from outcomes.models import OutcomeLabel
from training.models import ModelVersion, PromotionDecision, TrainingRun
from webhooks.models import WebhookEvent

SAME_ORG = factory.SelfAttribute("..organization")
USER_PASSWORD = "correct-horse-battery-staple"


@functools.cache
def _hash_password(raw: str) -> str:
    # Hashing is slow on purpose; one hash per distinct password keeps user-heavy tests fast.
    return make_password(raw)


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    postal_address = "1 Market St, San Francisco, CA 94105"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = Password(USER_PASSWORD, transform=_hash_password)


class MembershipFactory(DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Membership.Role.OPERATOR


class LeadFactory(DjangoModelFactory):
    class Meta:
        model = Lead

    organization = factory.SubFactory(OrganizationFactory)
    first_name = factory.Sequence(lambda n: f"Maya{n}")
    last_name = "Patel"
    email = factory.Sequence(lambda n: f"lead{n}@brightlane.example.com")
    phone = factory.Sequence(lambda n: f"+1415555{n % 10000:04d}")
    title = "VP Sales"
    company = factory.Sequence(lambda n: f"Brightlane {n}")
    industry = "SaaS"
    company_size = 120
    timezone = "America/New_York"
    website = "https://brightlane.example.com"
    state = Lead.State.NEW


class CampaignFactory(DjangoModelFactory):
    class Meta:
        model = Campaign

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    goal = "Book a discovery call with closed-lost accounts."
    channels = factory.LazyFunction(lambda: ["email"])


class MissionFactory(DjangoModelFactory):
    class Meta:
        model = Mission

    organization = factory.SubFactory(OrganizationFactory)
    campaign = factory.SubFactory(CampaignFactory, organization=SAME_ORG)
    type = Mission.Type.LEAD_REACTIVATION
    status = Mission.Status.QUEUED
    params = factory.LazyFunction(dict)
    total = 0
    processed = 0
    requested_by = None
    idempotency_key = None


class MissionLeadFactory(DjangoModelFactory):
    class Meta:
        model = MissionLead

    mission = factory.SubFactory(MissionFactory)
    lead = factory.SubFactory(LeadFactory, organization=factory.SelfAttribute("..mission.organization"))
    status = MissionLead.Status.PENDING


class AgentRunFactory(DjangoModelFactory):
    class Meta:
        model = AgentRun

    mission = factory.SubFactory(MissionFactory)
    lead = factory.SubFactory(LeadFactory, organization=factory.SelfAttribute("..mission.organization"))
    agent = AgentRun.Agent.ICP
    decision_layer = AgentRun.Layer.RULES
    decision = "qualify"
    duration_ms = 12.5
    input_summary = factory.LazyFunction(lambda: {"state": "new"})
    output_summary = factory.LazyFunction(lambda: {"icp_score": 0.8})


class SendingDomainFactory(DjangoModelFactory):
    class Meta:
        model = SendingDomain

    organization = factory.SubFactory(OrganizationFactory)
    domain = factory.Sequence(lambda n: f"mail{n}.rex.example.com")
    daily_cap = 50


class MessageFactory(DjangoModelFactory):
    class Meta:
        model = Message

    organization = factory.SubFactory(OrganizationFactory)
    mission = factory.SubFactory(MissionFactory, organization=SAME_ORG)
    lead = factory.SubFactory(LeadFactory, organization=SAME_ORG)
    campaign = factory.SelfAttribute("mission.campaign")
    sending_domain = factory.SubFactory(SendingDomainFactory, organization=SAME_ORG)
    step = 1
    channel = Message.Channel.EMAIL
    subject = "Still looking at pipeline tooling?"
    body = "Hi, it has been a while since we last spoke."
    from_address = factory.LazyAttribute(lambda o: f"sales@{o.sending_domain.domain}" if o.sending_domain else "")
    to_address = factory.SelfAttribute("lead.email")
    provider = "sendgrid"
    provider_message_id = factory.Sequence(lambda n: f"sg-msg-{n}")
    rfc_message_id = factory.Sequence(lambda n: f"<msg-{n}@rex.example.com>")


class SuppressionFactory(DjangoModelFactory):
    class Meta:
        model = Suppression

    organization = factory.SubFactory(OrganizationFactory)
    kind = Suppression.Kind.EMAIL
    value = factory.Sequence(lambda n: f"unsubscribed{n}@example.com")
    reason = Suppression.Reason.UNSUBSCRIBE


class ModelVersionFactory(DjangoModelFactory):
    class Meta:
        model = ModelVersion

    kind = ModelVersion.Kind.MESSAGE_WRITER
    backend = ModelVersion.Backend.OPENAI
    version = factory.Sequence(lambda n: f"v1.{n}.0")
    status = ModelVersion.Status.READY


class OutcomeLabelFactory(DjangoModelFactory):
    """An outcome for a sent message; pass ``message=None`` (and optionally ``lead``) for one without."""

    class Meta:
        model = OutcomeLabel

    organization = factory.SubFactory(OrganizationFactory)
    message = factory.SubFactory(MessageFactory, organization=SAME_ORG)
    lead = factory.Maybe(
        "message",
        yes_declaration=factory.SelfAttribute("message.lead"),
        no_declaration=factory.SubFactory(LeadFactory, organization=SAME_ORG),
    )
    mission = factory.Maybe("message", yes_declaration=factory.SelfAttribute("message.mission"))
    campaign = factory.Maybe("message", yes_declaration=factory.SelfAttribute("message.campaign"))
    model_version = None
    channel = factory.Maybe("message", yes_declaration=factory.SelfAttribute("message.channel"), no_declaration="email")
    framework = "AIDA"
    tone = "friendly"
    sent_at = factory.LazyFunction(timezone.now)  # what-works counts only messages that went out
    delivered = True
    training_label = OutcomeLabel.Label.NEUTRAL
    training_weight = 1.0


class WebhookEventFactory(DjangoModelFactory):
    class Meta:
        model = WebhookEvent

    provider = WebhookEvent.Provider.SENDGRID
    provider_event_id = factory.Sequence(lambda n: f"evt-{n}")
    organization = None
    event_type = "delivered"
    raw_body = factory.LazyAttribute(
        lambda o: json.dumps([{"sg_event_id": o.provider_event_id, "event": o.event_type}])
    )
    headers = factory.LazyFunction(lambda: {"Content-Type": "application/json"})
    signature = WebhookEvent.Signature.VALID
    state = WebhookEvent.State.RECEIVED


class PromotionDecisionFactory(DjangoModelFactory):
    class Meta:
        model = PromotionDecision

    kind = ModelVersion.Kind.POLICY
    challenger = factory.SubFactory(ModelVersionFactory, kind=ModelVersion.Kind.POLICY)
    champion = None
    outcome = PromotionDecision.Outcome.WAITING
    reason = "Not enough exposure yet."
    figures = factory.LazyFunction(lambda: {"p_value": None})


class TrainingRunFactory(DjangoModelFactory):
    class Meta:
        model = TrainingRun

    kind = ModelVersion.Kind.MESSAGE_WRITER
    backend = ModelVersion.Backend.OPENAI
    status = TrainingRun.Status.PENDING
    organization = None
    params = factory.LazyFunction(lambda: {"epochs": 3})
    model_version = None
    requested_by = None


class DecisionRuleFactory(DjangoModelFactory):
    class Meta:
        model = DecisionRule

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Rule {n}")
    stage = DecisionRule.Stage.QUALIFY
    condition = "icp_score != null and icp_score < 0.2"
    action = DecisionRule.Action.DISQUALIFY
    priority = 50


class ICPProfileFactory(DjangoModelFactory):
    class Meta:
        model = ICPProfile
        django_get_or_create = ("organization",)

    organization = factory.SubFactory(OrganizationFactory)
    target_industries = ["SaaS"]
    target_seniorities = ["vp", "c_level"]


class MailboxFactory(DjangoModelFactory):
    class Meta:
        model = Mailbox

    sending_domain = factory.SubFactory(SendingDomainFactory)
    local_part = factory.Sequence(lambda n: f"sender{n}")


class PhoneNumberFactory(DjangoModelFactory):
    class Meta:
        model = PhoneNumber

    organization = factory.SubFactory(OrganizationFactory)
    number = factory.Sequence(lambda n: f"+1415555{n % 10000:04d}")


class AlertFactory(DjangoModelFactory):
    class Meta:
        model = Alert

    organization = factory.SubFactory(OrganizationFactory)
    kind = Alert.Kind.BOUNCE_RATE
    sending_domain = factory.SubFactory(SendingDomainFactory, organization=factory.SelfAttribute("..organization"))
    subject = factory.LazyAttribute(lambda o: f"domain:{o.sending_domain.pk}")
    message = "Bounce rate 3.1% over 28 days (threshold 2%)"
    figures = {"bounce_rate": 0.031, "sent": 320}


class LinkedInTaskFactory(DjangoModelFactory):
    class Meta:
        model = LinkedInTask

    message = factory.SubFactory(MessageFactory, channel="linkedin")
    organization = factory.SelfAttribute("message.organization")
    profile_url = "https://www.linkedin.com/in/maya-okafor"
    text = factory.SelfAttribute("message.body")
