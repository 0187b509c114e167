import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from agents.models import Lead, Message, Mission
from tests.factories import (
    LeadFactory,
    MessageFactory,
    MissionFactory,
    ModelVersionFactory,
    OrganizationFactory,
    SuppressionFactory,
    WebhookEventFactory,
)

pytestmark = pytest.mark.django_db


def _violates(callable_):
    with pytest.raises(IntegrityError), transaction.atomic():
        callable_()


def test_lead_email_unique_per_organization_only():
    lead = LeadFactory()
    _violates(lambda: LeadFactory(organization=lead.organization, email=lead.email))
    other = LeadFactory(organization=OrganizationFactory(), email=lead.email)
    assert other.pk and other.email == lead.email


@pytest.mark.parametrize("field", ["icp_score", "reactivation_probability"])
def test_lead_scores_stay_in_unit_interval(field):
    lead = LeadFactory()
    _violates(lambda: Lead.objects.filter(pk=lead.pk).update(**{field: 1.5}))
    Lead.objects.filter(pk=lead.pk).update(**{field: 1.0})


@pytest.mark.parametrize(
    ("field", "value"),
    [("phone", "0415 555 0100"), ("timezone", "Mars/Olympus_Mons"), ("email", "not-an-email")],
)
def test_lead_validation_names_the_field(field, value):
    lead = LeadFactory.build(organization=OrganizationFactory(), **{field: value})
    with pytest.raises(ValidationError) as excinfo:
        lead.full_clean()
    assert field in excinfo.value.message_dict


def test_message_never_twice_for_the_same_step():
    message = MessageFactory(step=1)
    _violates(
        lambda: Message.objects.create(
            organization=message.organization, mission=message.mission, lead=message.lead, step=1,
            body="again", to_address=message.to_address,
        )
    )  # fmt: skip
    second = MessageFactory(organization=message.organization, mission=message.mission, lead=message.lead, step=2)
    assert second.step == 2


def test_mission_priority_is_capped_at_100():
    mission = MissionFactory()
    _violates(lambda: Mission.objects.filter(pk=mission.pk).update(priority=101))


def test_mission_idempotency_key_unique_per_organization():
    mission = MissionFactory(idempotency_key="abc")
    _violates(lambda: MissionFactory(organization=mission.organization, idempotency_key="abc"))
    assert MissionFactory(idempotency_key="abc").organization != mission.organization
    # Missions without a key are unconstrained.
    MissionFactory(organization=mission.organization, idempotency_key=None)
    MissionFactory(organization=mission.organization, idempotency_key=None)


def test_mission_progress():
    assert MissionFactory(total=0, processed=0).progress == 0.0
    assert MissionFactory(total=8, processed=2).progress == 0.25


def test_webhook_event_id_unique_per_provider():
    event = WebhookEventFactory(provider="sendgrid", provider_event_id="sg-1")
    _violates(lambda: WebhookEventFactory(provider="sendgrid", provider_event_id="sg-1"))
    assert WebhookEventFactory(provider="twilio", provider_event_id="sg-1").pk != event.pk


def test_suppression_unique_per_organization_kind_and_value():
    entry = SuppressionFactory(kind="email", value="a@b.com")
    _violates(lambda: SuppressionFactory(organization=entry.organization, kind="email", value="a@b.com"))
    SuppressionFactory(organization=entry.organization, kind="domain", value="a@b.com")


def test_lead_email_unique_ignoring_case():
    lead = LeadFactory(email="maya@brightlane.io")
    _violates(lambda: LeadFactory(organization=lead.organization, email="Maya@Brightlane.IO"))


def test_one_champion_per_model_kind():
    ModelVersionFactory(kind="policy", ab_role="champion")
    _violates(lambda: ModelVersionFactory(kind="policy", ab_role="champion"))
    assert ModelVersionFactory(kind="message_writer", ab_role="champion").pk
