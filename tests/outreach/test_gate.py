import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.utils import timezone

from agents.decisions.engine import decide
from agents.decisions.rules import rules_install_defaults
from agents.models import DecisionRule, Lead, LinkedInTask, Message
from agents.pipeline.outreach import gate_and_send, outreach_facts
from agents.rate_limits import consume, message_limits
from tests.factories import LeadFactory, MailboxFactory, MessageFactory, OrganizationFactory, SendingDomainFactory

pytestmark = pytest.mark.django_db

FREQUENCY_CAP = "Frequency cap reached waits"


def _organization(**fields):
    """An organization with the default rules, minus the send window (the tests must not depend on the clock)."""
    organization = OrganizationFactory(**fields)
    rules_install_defaults(organization=organization)
    DecisionRule.objects.filter(organization=organization, name="Outside the send window waits").delete()
    return organization


def _queued(organization, **fields) -> Message:
    lead = fields.pop("lead", None) or LeadFactory(organization=organization, state=Lead.State.PERSONALIZED)
    return MessageFactory(
        organization=organization, lead=lead, status=Message.Status.QUEUED, provider="", provider_message_id="",
        **fields,
    )  # fmt: skip


def test_a_send_over_the_limit_is_deferred_not_lost():
    organization = _organization()
    mailbox = MailboxFactory(sending_domain=SendingDomainFactory(organization=organization), min_gap_seconds=120)
    message = _queued(organization, mailbox=mailbox)
    sent_at = timezone.now()
    assert consume(message_limits(message), now=sent_at)[0]  # another message just went out of this mailbox

    result = gate_and_send(lead=message.lead, message=message)

    assert not result.proceed and result.decision.action == "proceed"
    assert result.output["deferred"].startswith(f"rex:mailbox:{mailbox.pk}:gap")
    message.refresh_from_db()
    assert message.status == Message.Status.QUEUED
    assert abs((message.scheduled_for - (sent_at + dt.timedelta(seconds=120))).total_seconds()) < 2
    assert result.output["scheduled_for"] == message.scheduled_for.isoformat()


def _sent(lead, *, channel: str, days_ago: float) -> Message:
    return MessageFactory(
        organization=lead.organization, lead=lead, channel=channel, status=Message.Status.SENT,
        sent_at=timezone.now() - dt.timedelta(days=days_ago),
    )  # fmt: skip


def test_frequency_cap_counts_every_channel_and_the_rules_layer_delays():
    organization = _organization(max_touches_per_week=3)
    lead = LeadFactory(organization=organization, state=Lead.State.SCHEDULED)
    for channel, days_ago in (("email", 1), ("sms", 2), ("linkedin", 6)):
        _sent(lead, channel=channel, days_ago=days_ago)
    _sent(lead, channel="email", days_ago=8)  # outside the 7 days
    MessageFactory(organization=organization, lead=lead, status=Message.Status.FAILED, sent_at=timezone.now())
    message = _queued(organization, lead=lead)

    facts = outreach_facts(lead=lead, message=message, now=timezone.now())
    assert facts["touches_last_7_days"] == 3 and facts["max_touches_per_week"] == 3
    decision = decide(lead=lead, stage="outreach", event="contact", facts=facts)
    assert decision.action == "delay" and decision.layer == "rules" and decision.params == {"days": 7}
    assert DecisionRule.objects.get(pk=decision.rule_id).name == FREQUENCY_CAP

    result = gate_and_send(lead=lead, message=message)
    message.refresh_from_db()
    assert not result.proceed and message.status == Message.Status.QUEUED and message.scheduled_for is not None


def test_under_the_frequency_cap_the_rule_does_not_match():
    organization = _organization(max_touches_per_week=3)
    lead = LeadFactory(organization=organization, state=Lead.State.SCHEDULED)
    _sent(lead, channel="email", days_ago=1)
    facts = outreach_facts(lead=lead, message=_queued(organization, lead=lead), now=timezone.now())
    assert decide(lead=lead, stage="outreach", event="contact", facts=facts).action == "proceed"


def test_the_data_migration_installs_the_rule_once():
    migration = importlib.import_module("agents.migrations.0006_frequency_cap_rule")
    organization = OrganizationFactory()
    migration.install_frequency_cap_rule(apps, None)
    migration.install_frequency_cap_rule(apps, None)
    rule = DecisionRule.objects.get(organization=organization, name=FREQUENCY_CAP)
    assert (rule.stage, rule.action, rule.priority, rule.parameters) == ("outreach", "delay", 25, {"days": 7})


def test_linkedin_step_becomes_an_operator_task_and_the_message_stays_queued():
    organization = _organization()
    lead = LeadFactory(
        organization=organization, state=Lead.State.PERSONALIZED, linkedin_url="https://www.linkedin.com/in/maya"
    )
    message = _queued(organization, lead=lead, channel="linkedin", sending_domain=None, to_address=lead.linkedin_url,
                      scheduled_for=timezone.now() - dt.timedelta(minutes=1))  # fmt: skip

    result = gate_and_send(lead=lead, message=message)
    again = gate_and_send(lead=lead, message=message)

    task = LinkedInTask.objects.get(message=message)
    assert result.output["linkedin_task"] == again.output["linkedin_task"] == task.pk and not result.proceed
    assert (task.profile_url, task.text, task.status) == (lead.linkedin_url, message.body, "pending")
    message.refresh_from_db()
    # Queued for the operator, and out of the release sweep.
    assert message.status == Message.Status.QUEUED and message.scheduled_for is None
