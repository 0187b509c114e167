"""A reply stops the lead's remaining steps; a campaign option stops the whole company."""

import pytest

from agents.compliance import stop_on_reply
from agents.models import Message
from tests.factories import CampaignFactory, LeadFactory, MessageFactory, MissionFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


def _queued(lead, mission, step=1, status=Message.Status.QUEUED):
    return MessageFactory(organization=lead.organization, mission=mission, lead=lead, step=step, status=status)


@pytest.fixture
def setup():
    organization = OrganizationFactory()
    leads = {
        "replier": LeadFactory(organization=organization, company="Brightlane"),
        "colleague": LeadFactory(organization=organization, company="BRIGHTLANE"),
        "stranger": LeadFactory(organization=organization, company="Other Co"),
        "blank": LeadFactory(organization=organization, company=""),
    }
    return organization, leads


def _status(message):
    message.refresh_from_db()
    return message.status


@pytest.mark.parametrize("stop_company", [False, True])
def test_stop_on_reply(setup, stop_company):
    organization, leads = setup
    campaign = CampaignFactory(organization=organization, stop_company_on_reply=stop_company)
    mission = MissionFactory(organization=organization, campaign=campaign)
    other_mission = MissionFactory(organization=organization)
    replier_steps = [_queued(leads["replier"], mission, 2), _queued(leads["replier"], other_mission, 1)]
    replier_sent = _queued(leads["replier"], mission, 1, status=Message.Status.SENT)
    colleague = _queued(leads["colleague"], other_mission, 1)
    stranger = _queued(leads["stranger"], mission, 1)
    blank = _queued(leads["blank"], mission, 1)

    cancelled = stop_on_reply(lead=leads["replier"])

    assert [_status(m) for m in replier_steps] == ["cancelled", "cancelled"]
    assert _status(replier_sent) == "sent"
    assert _status(colleague) == ("cancelled" if stop_company else "queued")
    assert _status(stranger) == "queued"
    assert _status(blank) == "queued"
    assert cancelled == (3 if stop_company else 2)
    assert Message.objects.get(pk=replier_steps[0].pk).error.startswith("stopped:")


def test_lead_without_company_stops_only_itself(setup):
    organization, leads = setup
    campaign = CampaignFactory(organization=organization, stop_company_on_reply=True)
    mission = MissionFactory(organization=organization, campaign=campaign)
    own = _queued(leads["blank"], mission, 2)
    other_blank = _queued(LeadFactory(organization=organization, company=""), mission, 1)

    assert stop_on_reply(lead=leads["blank"]) == 1
    assert _status(own) == "cancelled" and _status(other_blank) == "queued"
