"""The first SMS to a number carries opt-out language; later ones do not."""

import pytest

from agents.compliance import SMS_OPT_OUT, sms_compliance
from agents.models import Message
from agents.sending import message_send
from tests.factories import LeadFactory, MessageFactory, MissionFactory

pytestmark = pytest.mark.django_db


def _sms(lead, mission, step):
    return MessageFactory(
        organization=lead.organization, mission=mission, lead=lead, step=step, channel=Message.Channel.SMS,
        to_address=lead.phone, from_address="+15005550006", sending_domain=None, status=Message.Status.QUEUED,
        body="Hi Maya, worth a quick call this week?",
    )  # fmt: skip


def test_first_sms_gets_opt_out_language_and_the_second_does_not():
    lead = LeadFactory()
    mission = MissionFactory(organization=lead.organization)
    first, second = _sms(lead, mission, 1), _sms(lead, mission, 2)

    first = message_send(message_id=first.pk)
    second = message_send(message_id=second.pk)

    assert first.body == "Hi Maya, worth a quick call this week? Reply STOP to opt out."
    assert first.provider_request["Body"] == first.body
    assert second.body == "Hi Maya, worth a quick call this week?"
    assert second.provider_request["Body"] == second.body


def test_opt_out_language_is_added_once():
    lead = LeadFactory()
    message = _sms(lead, MissionFactory(organization=lead.organization), 1)
    message.body = sms_compliance(message)

    assert sms_compliance(message) == message.body
    assert message.body.count(SMS_OPT_OUT) == 1


def test_a_number_texted_by_another_organization_still_gets_opt_out_language():
    lead = LeadFactory()
    other = LeadFactory(phone=lead.phone)
    message_send(message_id=_sms(other, MissionFactory(organization=other.organization), 1).pk)

    sent = message_send(message_id=_sms(lead, MissionFactory(organization=lead.organization), 1).pk)

    assert sent.body.endswith(SMS_OPT_OUT)
