import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from agents import tasks
from agents.decisions.rules import rules_install_defaults
from agents.models import DecisionRule, Lead, Message
from agents.send_windows import in_send_window, next_window_start
from tests.factories import (
    LeadFactory,
    MessageFactory,
    OrganizationFactory,
    PhoneNumberFactory,
    SendingDomainFactory,
)
from tests.local_time import zone_at_local_hour

pytestmark = pytest.mark.django_db


def test_due_message_is_released_and_sent_once():
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    lead = LeadFactory(organization=organization, state=Lead.State.SCHEDULED, timezone=zone_at_local_hour(10, 19))
    message = MessageFactory(
        organization=organization, lead=lead, channel="sms", to_address=lead.phone, from_address="+15005550006",
        status="queued", scheduled_for=timezone.now() - dt.timedelta(minutes=1),
    )  # fmt: skip
    not_due = MessageFactory(
        organization=organization, status="queued", scheduled_for=timezone.now() + dt.timedelta(hours=1)
    )
    assert tasks.release_due_messages() == 1
    message.refresh_from_db()
    assert message.status == Message.Status.SENT and message.provider_message_id.startswith("SM")
    assert tasks.release_due_messages() == 0  # never twice
    not_due.refresh_from_db()
    assert not_due.status == Message.Status.QUEUED


def test_released_message_outside_its_window_waits_again():
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    lead = LeadFactory(organization=organization, state=Lead.State.SCHEDULED, timezone=zone_at_local_hour(0, 6))
    message = MessageFactory(
        organization=organization, lead=lead, channel="sms", to_address=lead.phone, status="queued",
        scheduled_for=timezone.now() - dt.timedelta(minutes=1),
    )  # fmt: skip
    assert tasks.release_due_messages() == 0
    message.refresh_from_db()
    assert message.status == Message.Status.QUEUED and message.scheduled_for > timezone.now()
    local = message.scheduled_for.astimezone(zoneinfo.ZoneInfo(lead.timezone))
    assert local.hour == 8 and local.minute == 0


@pytest.mark.parametrize(
    ("channel", "local", "open_"),
    [
        ("email", dt.datetime(2026, 11, 25, 9, 0), True),  # Wednesday morning
        ("email", dt.datetime(2026, 11, 25, 18, 30), False),
        ("email", dt.datetime(2026, 11, 28, 11, 0), False),  # Saturday
        ("sms", dt.datetime(2026, 11, 28, 11, 0), True),  # SMS: every day 08-21
        ("sms", dt.datetime(2026, 11, 25, 21, 30), False),  # TCPA quiet hours
    ],
)
def test_send_windows_in_the_leads_own_time(channel, local, open_):
    lead = Lead(timezone="America/Chicago")
    moment = local.replace(tzinfo=zoneinfo.ZoneInfo("America/Chicago"))
    assert in_send_window(lead=lead, channel=channel, now=moment) is open_
    opening = next_window_start(lead=lead, channel=channel, now=moment)
    assert in_send_window(lead=lead, channel=channel, now=opening)
    assert opening >= moment


def test_time_zone_from_the_phone_number_when_the_lead_has_none():
    lead = Lead(timezone="", phone="+442079460958")  # London
    london_9am = dt.datetime(2026, 11, 25, 9, 0, tzinfo=zoneinfo.ZoneInfo("Europe/London"))
    assert in_send_window(lead=lead, channel="email", now=london_9am)
    assert not in_send_window(lead=Lead(timezone="America/Los_Angeles"), channel="email", now=london_9am)


def test_an_organization_added_in_the_admin_gets_the_default_rules(admin_client):
    response = admin_client.post(
        "/admin/agents/organization/add/",
        {"name": "Globex", "postal_address": "1 Main St", "max_touches_per_week": "3", "sends_per_minute": "60",
         "memberships-TOTAL_FORMS": "0",
         "memberships-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert response.status_code == 302, response.content[:500]
    assert DecisionRule.objects.filter(organization__name="Globex").count() >= 5


def test_a_send_counts_against_its_domain_and_the_count_resets_daily():
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    lead = LeadFactory(organization=organization, state=Lead.State.SCHEDULED, timezone=zone_at_local_hour(10, 17))
    domain = SendingDomainFactory(organization=organization, sent_today=3)
    number = PhoneNumberFactory(organization=organization, sent_today=1)
    MessageFactory(
        organization=organization, lead=lead, channel="sms", to_address=lead.phone, status="queued",
        sending_domain=domain, phone_number=number, scheduled_for=timezone.now() - dt.timedelta(minutes=1),
    )  # fmt: skip
    assert tasks.release_due_messages() == 1
    domain.refresh_from_db()
    number.refresh_from_db()
    assert (domain.sent_today, number.sent_today) == (4, 2)
    assert tasks.reset_daily_counters() >= 1
    domain.refresh_from_db()
    assert domain.sent_today == 0
