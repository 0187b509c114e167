"""decide(): each layer decides in its own scenario, and every decision is timed."""

import json
import time

import pytest

from agents.decisions import rules
from agents.decisions.engine import decide
from agents.decisions.llm import LLMQuestion
from agents.decisions.rules import rules_install_defaults
from agents.models import AgentRun, DecisionRule, Lead
from tests.factories import LeadFactory

pytestmark = pytest.mark.django_db

Layer = AgentRun.Layer
OPTIONS = ["revive/PAS", "revive/AIDA", "skip"]


@pytest.fixture(autouse=True)
def _fresh_rules():
    rules.forget_loaded_rules()


@pytest.fixture
def lead():
    lead = LeadFactory(state=Lead.State.SCORED, first_name="Maya", last_name="Okafor", company="Brightlane")
    rules_install_defaults(organization=lead.organization)
    return lead


def borderline_question(lead) -> LLMQuestion:
    return LLMQuestion(
        question="Is this borderline lead worth a reactivation message, and which one?",
        options=OPTIONS,
        context={"name": lead.first_name, "email": lead.email, "lost_reason": "budget", "probability": 0.4},
        known_pii={"first_name": lead.first_name, "last_name": lead.last_name, "company": lead.company},
    )


def test_the_state_machine_skips_an_event_the_lifecycle_forbids(lead):
    lead.state = Lead.State.REPLIED

    decision = decide(lead=lead, stage="qualify", facts={"icp_score": 0.1, "icp_threshold": 0.4}, event="qualify")

    assert (decision.action, decision.layer) == ("skip", Layer.STATE_MACHINE)
    assert decision.by_state_machine
    assert decision.reason == "lead is 'replied': 'qualify' not allowed"
    assert decision.latency_ms > 0


def test_a_suppressed_lead_stops(lead):
    lead.state = Lead.State.SUPPRESSED
    decision = decide(lead=lead, stage="outreach", facts={"suppressed": False, "in_send_window": True})
    assert (decision.action, decision.layer) == ("stop", Layer.STATE_MACHINE)


def test_the_rules_disqualify_a_low_icp_score(lead):
    decision = decide(lead=lead, stage="qualify", facts={"icp_score": 0.2, "icp_threshold": 0.4}, event="qualify")

    rule = DecisionRule.objects.get(organization=lead.organization, name="ICP below threshold disqualifies")
    assert (decision.action, decision.layer, decision.rule_id) == ("disqualify", Layer.RULES, rule.pk)
    assert decision.reason == rule.name
    assert decision.stage == "qualify"
    assert decision.latency_ms > 0


def test_rule_parameters_come_with_the_decision(lead):
    facts = {"suppressed": False, "days_since_contact": 3, "in_send_window": True}
    lead.state = Lead.State.SCHEDULED
    decision = decide(lead=lead, stage="outreach", facts=facts, event="contact")
    assert (decision.action, decision.params) == ("delay", {"days": 14})
    decision.params["days"] = 1  # the caller's copy; the cached rule keeps its own
    assert decide(lead=lead, stage="outreach", facts=facts, event="contact").params == {"days": 14}


def test_nothing_matched_proceeds(lead):
    decision = decide(lead=lead, stage="qualify", facts={"icp_score": 0.8, "icp_threshold": 0.4}, event="qualify")
    assert (decision.action, decision.layer, decision.rule_id) == ("proceed", Layer.STATE_MACHINE, None)
    assert decision.reason.startswith("lifecycle allows 'qualify' from 'scored'")
    assert decision.latency_ms > 0


def test_a_borderline_revival_goes_to_the_llm_and_falls_back_without_a_key(settings, lead):
    settings.OPENAI_API_KEY = ""
    facts = {"reactivation_probability": 0.4}

    first = decide(lead=lead, stage="reactivate", facts=facts, llm_question=borderline_question(lead))
    second = decide(lead=lead, stage="reactivate", facts=facts, llm_question=borderline_question(lead))

    assert first.layer == Layer.LLM and first.llm_fallback
    assert first.action in OPTIONS and second.action == first.action
    assert first.reason.startswith("no model configured")
    assert first.rule_id == DecisionRule.objects.get(name="Borderline revival goes to the LLM").pk
    assert first.latency_ms > 0


def test_an_escalation_without_a_question_proceeds_as_a_fallback(lead):
    decision = decide(lead=lead, stage="reactivate", facts={"reactivation_probability": 0.4})
    assert (decision.action, decision.layer, decision.llm_fallback) == ("proceed", Layer.LLM, True)


def test_the_llm_decides_a_borderline_revival(settings, httpserver, lead):
    settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL = "test", httpserver.url_for("/v1")
    settings.OPENAI_MAX_RETRIES = 0
    content = json.dumps({"choice": "revive/AIDA", "reason": "[NAME_1] left over budget, not fit."})
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 80, "completion_tokens": 20, "total_tokens": 100},
        }
    )

    decision = decide(
        lead=lead, stage="reactivate", facts={"reactivation_probability": 0.4}, llm_question=borderline_question(lead)
    )

    assert (decision.action, decision.layer, decision.llm_tokens) == ("revive/AIDA", Layer.LLM, 100)
    assert (decision.llm_cache_hit, decision.llm_fallback) == (False, False)
    assert decision.reason == "Maya left over budget, not fit."


def test_a_decision_runs_no_query_once_the_rules_are_loaded(lead, django_assert_num_queries):
    facts = {"icp_score": 0.2, "icp_threshold": 0.4}
    decide(lead=lead, stage="qualify", facts=facts, event="qualify")
    with django_assert_num_queries(0):
        for _ in range(10):
            assert decide(lead=lead, stage="qualify", facts=facts, event="qualify").action == "disqualify"
