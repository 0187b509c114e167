from unittest import mock

import pytest

from agents.decisions.rules import rules_changed, rules_install_defaults
from agents.models import AgentRun, DecisionRule, Lead, Message, Mission, MissionLead
from agents.pipeline import personalizer
from agents.pipeline.personalizer import FRAMEWORKS, SMS_MAX_CHARS, TONES, PersonalizerAgent
from agents.pipeline.runner import run_batch
from tests.factories import (
    AgentRunFactory,
    LeadFactory,
    MissionFactory,
    MissionLeadFactory,
    OrganizationFactory,
    OutcomeLabelFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_llm(settings):
    settings.OPENAI_API_KEY = ""  # the template writer, whatever the environment says


@pytest.fixture
def mission():
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    return MissionFactory(
        organization=organization, status=Mission.Status.RUNNING, params={"sender_name": "Alex at Acme"}
    )


def _lead(mission, **fields):
    values = {"state": Lead.State.QUALIFIED, "icp_score": 0.8, "reactivation_probability": 0.6, **fields}
    lead = LeadFactory(organization=mission.organization, **values)
    MissionLeadFactory(mission=mission, lead=lead)
    return lead


def _rule(mission, **fields):
    DecisionRule.objects.create(organization=mission.organization, stage=DecisionRule.Stage.PERSONALIZE, **fields)
    rules_changed(mission.organization_id)


def test_writes_one_message_per_lead_with_its_decisions(mission):
    leads = [_lead(mission) for _ in range(3)]
    agent = PersonalizerAgent(mission=mission)

    results = [agent.process(lead) for lead in leads]

    assert Message.objects.filter(mission=mission).count() == 3
    for lead, result in zip(leads, results, strict=True):
        message = Message.objects.get(mission=mission, lead=lead, step=1)
        assert result.proceed is True
        assert result.decision.action == "proceed"
        assert result.output == {
            "message_id": message.pk,
            "framework": message.framework,
            "tone": message.tone,
            "variant": message.variant,
            "channel": "email",
            "writer": "template",
        }
        assert message.framework in FRAMEWORKS and message.tone in TONES and message.variant in ("A", "B")
        assert (message.organization_id, message.campaign_id) == (mission.organization_id, mission.campaign_id)
        assert message.channel == Message.Channel.EMAIL and message.to_address == lead.email
        assert message.status == Message.Status.QUEUED
        assert message.subject and lead.first_name in message.body and "Alex at Acme" in message.body
        decisions = message.agent_decisions["PersonalizerAgent"]
        assert {k: decisions[k] for k in ("framework", "tone", "variant", "writer", "model_version")} == {
            "framework": message.framework,
            "tone": message.tone,
            "variant": message.variant,
            "writer": "template",
            "model_version": None,
        }
        assert decisions["exploration"]["method"] == "thompson_beta"
        lead.refresh_from_db()
        assert lead.state == Lead.State.PERSONALIZED


def test_running_twice_keeps_the_same_row_and_the_same_choice(mission):
    lead = _lead(mission)

    PersonalizerAgent(mission=mission).process(lead)
    first = Message.objects.get(mission=mission, lead=lead)
    result = PersonalizerAgent(mission=mission).process(lead)  # a retried task: a new agent instance
    second = Message.objects.get(mission=mission, lead=lead)

    assert Message.objects.filter(mission=mission, lead=lead).count() == 1
    assert second.pk == first.pk == result.output["message_id"]
    fields = ("framework", "tone", "variant", "subject", "body", "channel")
    assert [getattr(second, f) for f in fields] == [getattr(first, f) for f in fields]
    choice = ("framework", "tone", "variant", "writer", "exploration")
    before, after = first.agent_decisions["PersonalizerAgent"], second.agent_decisions["PersonalizerAgent"]
    assert {k: after[k] for k in choice} == {k: before[k] for k in choice}


@pytest.mark.parametrize("status", [Message.Status.SENT, Message.Status.SENDING, Message.Status.CANCELLED])
def test_a_message_that_left_the_queue_is_never_rewritten(mission, status):
    lead = _lead(mission)
    PersonalizerAgent(mission=mission).process(lead)
    Message.objects.filter(lead=lead).update(status=status, subject="Sent subject", body="Sent body")
    Lead.objects.filter(pk=lead.pk).update(state=Lead.State.CONTACTED)
    lead.refresh_from_db()

    result = PersonalizerAgent(mission=mission).process(lead)

    message = Message.objects.get(mission=mission, lead=lead)
    assert (message.status, message.subject, message.body) == (status, "Sent subject", "Sent body")
    assert result.output == {"message_id": message.pk, "unchanged": status}
    lead.refresh_from_db()
    assert lead.state == Lead.State.CONTACTED


def test_arm_stats_come_from_outcomes_and_load_once_per_agent(mission):
    organization = mission.organization
    OutcomeLabelFactory(organization=organization, framework="PAS", tone="friendly", replied=True)
    OutcomeLabelFactory(organization=organization, framework="PAS", tone="friendly")
    OutcomeLabelFactory(organization=organization, framework="PAS", tone="friendly", message__channel="sms")
    OutcomeLabelFactory(framework="BAB", tone="direct", replied=True)  # another organization
    leads = [_lead(mission), _lead(mission)]
    agent = PersonalizerAgent(mission=mission)

    with mock.patch.object(personalizer, "strategy_performance", wraps=personalizer.strategy_performance) as spy:
        for lead in leads:
            agent.process(lead)

    spy.assert_called_once_with(organization_id=organization.pk)
    assert agent.arms_stats == {("PAS", "friendly"): (3, 1)}


def test_the_reviver_channel_is_used(mission):
    lead = _lead(mission)
    AgentRunFactory(mission=mission, lead=lead, agent=AgentRun.Agent.REVIVER, output_summary={"channel": "email"})
    AgentRunFactory(mission=mission, lead=lead, agent=AgentRun.Agent.REVIVER, output_summary={"channel": "sms"})

    result = PersonalizerAgent(mission=mission).process(lead)

    message = Message.objects.get(mission=mission, lead=lead)
    assert result.output["channel"] == "sms"
    assert message.channel == Message.Channel.SMS and message.to_address == lead.phone
    assert message.subject == ""
    assert 0 < len(message.body) <= SMS_MAX_CHARS
    assert message.agent_decisions["PersonalizerAgent"]["channel"] == "sms"


def test_sms_without_a_phone_number_falls_back_to_email(mission):
    lead = _lead(mission, phone="")
    AgentRunFactory(mission=mission, lead=lead, agent=AgentRun.Agent.REVIVER, output_summary={"channel": "sms"})

    PersonalizerAgent(mission=mission).process(lead)

    message = Message.objects.get(mission=mission, lead=lead)
    assert message.channel == Message.Channel.EMAIL and message.to_address == lead.email


def test_a_route_channel_rule_sets_the_channel(mission):
    _rule(
        mission,
        name="VPs with a phone get an SMS",
        condition='has_phone and seniority == "vp"',
        action=DecisionRule.Action.ROUTE_CHANNEL,
        parameters={"channel": "sms"},
    )
    vp, manager = _lead(mission, title="VP Sales"), _lead(mission, title="Sales Manager")
    agent = PersonalizerAgent(mission=mission)

    routed = agent.process(vp)
    agent.process(manager)

    assert routed.decision.action == "route_channel" and routed.decision.layer == AgentRun.Layer.RULES
    assert Message.objects.get(lead=vp).channel == Message.Channel.SMS
    assert Message.objects.get(lead=manager).channel == Message.Channel.EMAIL


def test_a_skip_rule_skips_the_lead_without_a_message(mission):
    _rule(mission, name="Cold leads wait", condition="icp_score != null and icp_score < 0.3", action="skip")
    lead = _lead(mission, icp_score=0.2)

    result = PersonalizerAgent(mission=mission).process(lead)

    assert result.proceed is False
    assert result.final_status == MissionLead.Status.SKIPPED
    assert result.decision.layer == AgentRun.Layer.RULES
    assert not Message.objects.filter(lead=lead).exists()
    lead.refresh_from_db()
    assert lead.state == Lead.State.QUALIFIED


def test_a_disqualify_rule_disqualifies_the_lead(mission):
    _rule(mission, name="No students", condition='seniority == "individual"', action="disqualify")
    lead = _lead(mission, title="Sales Development Representative")

    result = PersonalizerAgent(mission=mission).process(lead)

    assert result.proceed is False and result.final_status == MissionLead.Status.SKIPPED
    lead.refresh_from_db()
    assert lead.state == Lead.State.DISQUALIFIED


@pytest.mark.parametrize("state", [Lead.State.NEW, Lead.State.SUPPRESSED, Lead.State.DISQUALIFIED])
def test_the_lifecycle_stops_leads_that_cannot_be_personalized(mission, state):
    lead = _lead(mission, state=state)

    result = PersonalizerAgent(mission=mission).process(lead)

    assert result.proceed is False and result.final_status == MissionLead.Status.SKIPPED
    assert result.decision.layer == AgentRun.Layer.STATE_MACHINE
    assert not Message.objects.filter(lead=lead).exists()


def test_enrichment_signals_become_the_hook(mission):
    lead = _lead(mission, enrichment={"website_signals": {"value": ["hiring"], "source": "website"}})

    PersonalizerAgent(mission=mission).process(lead)

    message = Message.objects.get(lead=lead)
    assert "the open roles on your careers page" in message.body
    assert message.agent_decisions["PersonalizerAgent"]["signals_used"] == 1


def test_through_the_runner_every_step_is_recorded(mission):
    leads = [_lead(mission), _lead(mission, state=Lead.State.NEW)]

    survivors = run_batch(agent_class=PersonalizerAgent, mission_id=mission.pk, lead_ids=[lead.pk for lead in leads])

    assert survivors == [leads[0].pk]
    runs = {run.lead_id: run for run in AgentRun.objects.filter(mission=mission, agent=AgentRun.Agent.PERSONALIZER)}
    assert runs[leads[0].pk].decision == "proceed" and runs[leads[0].pk].success
    assert runs[leads[0].pk].output_summary["message_id"] == Message.objects.get(lead=leads[0]).pk
    assert runs[leads[1].pk].decision == "skip"
    statuses = dict(MissionLead.objects.filter(mission=mission).values_list("lead_id", "status"))
    assert statuses == {leads[0].pk: MissionLead.Status.PENDING, leads[1].pk: MissionLead.Status.SKIPPED}
