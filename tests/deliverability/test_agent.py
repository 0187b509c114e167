"""The DeliverabilityAgent: a mailbox for email, a number for SMS, skipped when nothing has capacity."""

import pytest

from agents.decisions.rules import rules_install_defaults
from agents.models import Message, MissionLead
from agents.pipeline.deliverability import DeliverabilityAgent
from tests.factories import (
    LeadFactory,
    MailboxFactory,
    MessageFactory,
    MissionFactory,
    PhoneNumberFactory,
    SendingDomainFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def mission():
    mission = MissionFactory()
    rules_install_defaults(organization=mission.organization)
    return mission


def _message(mission, **fields):
    lead = LeadFactory(organization=mission.organization)
    fields.setdefault("sending_domain", None)
    return MessageFactory(organization=mission.organization, mission=mission, lead=lead, step=1, **fields)


def test_email_gets_a_healthy_mailbox_and_its_address(mission):
    domain = SendingDomainFactory(organization=mission.organization, domain="mail.a.example")
    MailboxFactory(sending_domain=domain, local_part="paused", is_paused=True)
    mailbox = MailboxFactory(sending_domain=domain, local_part="maya")
    message = _message(mission, from_address="")

    result = DeliverabilityAgent(mission=mission).process(message.lead)

    message.refresh_from_db()
    assert result.proceed
    assert (message.mailbox_id, message.sending_domain_id, message.from_address) == (
        mailbox.pk, domain.pk, "maya@mail.a.example"
    )  # fmt: skip
    assert result.output["mailbox"] == "maya@mail.a.example"


def test_a_domain_without_mailboxes_sends_as_the_default_sender(mission, settings):
    settings.DEFAULT_SENDER_LOCALPART = "hello"
    SendingDomainFactory(organization=mission.organization, domain="mail.b.example")
    message = _message(mission)

    DeliverabilityAgent(mission=mission).process(message.lead)

    message.refresh_from_db()
    assert message.from_address == "hello@mail.b.example"


def test_no_mailbox_with_capacity_skips_the_lead(mission):
    MailboxFactory(sending_domain=SendingDomainFactory(organization=mission.organization), sent_today=20)
    message = _message(mission)

    result = DeliverabilityAgent(mission=mission).process(message.lead)

    assert not result.proceed
    assert result.final_status == MissionLead.Status.SKIPPED
    assert result.output == {"error": "no sending mailbox with capacity"}


def test_sms_uses_the_organizations_number(mission):
    PhoneNumberFactory(organization=mission.organization, number="+14155550101", is_paused=True)
    number = PhoneNumberFactory(organization=mission.organization, number="+14155550102")
    message = _message(mission, channel=Message.Channel.SMS, from_address="")

    DeliverabilityAgent(mission=mission).process(message.lead)

    message.refresh_from_db()
    assert (message.phone_number_id, message.from_address) == (number.pk, "+14155550102")


def test_sms_falls_back_to_the_twilio_number_when_the_organization_has_none(mission, settings):
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    message = _message(mission, channel=Message.Channel.SMS, from_address="")

    DeliverabilityAgent(mission=mission).process(message.lead)

    message.refresh_from_db()
    assert (message.phone_number_id, message.from_address) == (None, "+15005550006")


def test_sms_with_every_number_full_skips_the_lead(mission):
    PhoneNumberFactory(organization=mission.organization, daily_cap=10, sent_today=10)
    message = _message(mission, channel=Message.Channel.SMS)

    result = DeliverabilityAgent(mission=mission).process(message.lead)

    assert result.final_status == MissionLead.Status.SKIPPED
    assert result.output == {"error": "no phone number with capacity"}
