from datetime import timedelta

import pytest
from django.utils import timezone

from agents.decisions.rules import rules_install_defaults
from agents.models import AgentRun, Lead, MissionLead
from agents.pipeline.reviver import ReviverAgent, lead_history, lost_reason_category, reactivation_probability
from tests.factories import LeadFactory, MissionFactory, OrganizationFactory, OutcomeLabelFactory
from tests.openai_api import chat_completion
from training.models import ModelVersion

pytestmark = pytest.mark.django_db

NO_HISTORY = {"opens": 0, "replies": 0, "meetings": 0, "opt_outs": 0}


def _ago(months: float):
    return timezone.now() - timedelta(days=30.44 * months)


@pytest.fixture
def agent():
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    return ReviverAgent(mission=MissionFactory(organization=organization))


def _unlikely(**fields):
    values = {"title": "Account Executive", "lost_reason": "Not interested, remove me", "icp_score": 0.1}
    return LeadFactory.build(last_engaged_at=_ago(24), **{**values, **fields})


def _borderline(**fields):
    # No date, an unplaceable title and a budget loss with a decent fit: logit -0.4, about 0.40.
    values = {"title": "Wizard", "lost_reason": "budget", "icp_score": 0.7, "last_engaged_at": None}
    return LeadFactory.build(**{**values, **fields})


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("timing", "timing"),
        ("Not now, maybe next quarter", "timing"),
        ("no budget", "budget"),
        ("price", "budget"),
        ("no decision", "no_decision"),
        ("authority", "no_decision"),
        ("competitor", "competitor"),
        ("Went with HubSpot", "competitor"),
        ("not interested", "not_interested"),
        ("Unsubscribed", "not_interested"),
        ("collateral damage", "unknown"),
        ("", "unknown"),
    ],
)
def test_lost_reason_category(reason, category):
    assert lost_reason_category(reason) == category


def test_warm_senior_lead_beats_a_cold_individual_contributor():
    warm = LeadFactory.build(title="CEO", lost_reason="timing", last_engaged_at=_ago(1), icp_score=0.8)
    cold = LeadFactory.build(
        title="Account Executive", lost_reason="competitor", last_engaged_at=_ago(14), icp_score=0.3
    )

    warm_p, warm_factors = reactivation_probability(lead=warm, history={**NO_HISTORY, "opens": 3, "replies": 1})
    cold_p, cold_factors = reactivation_probability(lead=cold, history=NO_HISTORY)

    assert 0 <= cold_p < warm_p <= 1
    assert warm_p > 0.8 and cold_p < 0.1
    for factors in (warm_factors, cold_factors):
        assert 0 < len(factors) <= 3
        assert set(factors[0]) == {"name", "contribution", "text"}
        sizes = [abs(factor["contribution"]) for factor in factors]
        assert sizes == sorted(sizes, reverse=True)
    assert {"name": "lost_reason", "contribution": -0.6, "text": "Lost reason: competitor"} in cold_factors
    assert warm_factors[0]["name"] == "engagement"


@pytest.mark.parametrize(
    "lead",
    [
        LeadFactory.build(title="", lost_reason="", last_engaged_at=None, icp_score=None),
        LeadFactory.build(title="CEO", lost_reason="timing", last_engaged_at=_ago(0), icp_score=1.0),
        LeadFactory.build(title="Intern", lost_reason="spam", last_engaged_at=_ago(120), icp_score=0.0),
    ],
    ids=["unknown", "best", "worst"],
)
def test_probability_stays_in_the_unit_interval(lead):
    probability, _ = reactivation_probability(lead=lead, history={"opens": 100, "replies": 50, "meetings": 9})
    assert 0 <= probability <= 1


def test_opting_out_outweighs_engagement():
    lead = LeadFactory.build(title="CEO", lost_reason="timing", last_engaged_at=_ago(1))
    engaged, _ = reactivation_probability(lead=lead, history={**NO_HISTORY, "replies": 3})
    opted_out, factors = reactivation_probability(lead=lead, history={**NO_HISTORY, "replies": 3, "opt_outs": 1})
    assert opted_out < 0.2 < engaged
    assert factors[0] == {"name": "engagement", "contribution": -3.0, "text": "Unsubscribed or reported spam before"}


def test_lead_history_counts_outcomes_in_one_query(django_assert_num_queries):
    lead = LeadFactory()
    make = OutcomeLabelFactory
    make(organization=lead.organization, lead=lead, message=None, opened=True, replied=True, meeting_booked=True)
    make(organization=lead.organization, lead=lead, message=None, opened=True)
    make(organization=lead.organization, lead=lead, message=None, unsubscribed=True)
    make(organization=lead.organization, message=None, opened=True)  # another lead

    with django_assert_num_queries(1):
        history = lead_history(lead)

    assert history == {"opens": 2, "replies": 1, "meetings": 1, "opt_outs": 1}


def test_agent_skips_a_very_unlikely_lead_by_rule(agent):
    lead = _unlikely(organization=agent.organization, state=Lead.State.ENRICHED)
    lead.save()

    result = agent.process(lead)

    lead.refresh_from_db()
    assert lead.reactivation_probability < 0.15
    assert (result.proceed, result.final_status) == (False, MissionLead.Status.SKIPPED)
    assert (result.decision.action, result.decision.layer) == ("skip", AgentRun.Layer.RULES)
    assert lead.state == Lead.State.ENRICHED
    assert "channel" not in result.output
    assert len(result.output["factors"]) == 3


def test_agent_escalates_a_borderline_lead_to_the_llm_fallback(agent, settings):
    settings.OPENAI_API_KEY = ""
    lead = _borderline(organization=agent.organization, state=Lead.State.ENRICHED)
    lead.save()
    probability, _ = reactivation_probability(lead=lead, history=NO_HISTORY)
    assert 0.35 <= probability < 0.45

    result = agent.process(lead)

    decision = result.decision
    assert (decision.layer, decision.llm_fallback) == (AgentRun.Layer.LLM, True)
    assert decision.action == "email"  # the question's default: without a model, one email, never a coin flip
    assert result.proceed is True and result.output["channel"] == "email"
    lead.refresh_from_db()
    assert lead.reactivation_probability == pytest.approx(probability, abs=1e-4)


def test_agent_follows_the_channel_a_model_chooses(agent, openai_server):
    """The OpenAI SDK against a local server that answers like the chat completions API."""
    httpserver = openai_server
    answer = {"choice": "sms", "reason": "Replies faster by text."}
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        chat_completion(answer, total_tokens=100)
    )
    lead = _borderline(organization=agent.organization, first_name="Ingrid", last_name="Halvorsen", company="Fjordly")
    lead.save()

    result = agent.process(lead)

    assert (result.proceed, result.output["channel"]) == (True, "sms")
    assert (result.decision.layer, result.decision.llm_fallback) == (AgentRun.Layer.LLM, False)
    prompt = httpserver.log[0][0].get_data(as_text=True)
    assert '"sms"' in prompt or "- sms" in prompt
    # Names, company and address stay out of the prompt.
    for secret in ("Ingrid", "Halvorsen", "Fjordly", lead.email):
        assert secret not in prompt


def test_without_a_phone_sms_is_not_offered(agent, settings):
    settings.OPENAI_API_KEY = ""
    lead = _borderline(organization=agent.organization, phone="")
    lead.save()
    result = agent.process(lead)
    assert result.decision.action in {"email", "skip"}


def _lift(probability: float, base_rate: float = 0.05):
    from training.policy import PolicyLift

    return PolicyLift(version=ModelVersion(pk=41, version="v1.2.0"), probability=probability, base_rate=base_rate)


def test_the_policy_scales_the_hand_set_score_by_its_lift(agent, monkeypatch):
    from agents.pipeline import reviver

    lead = _borderline(organization=agent.organization)
    lead.save()
    heuristic, _ = reactivation_probability(lead=lead, history=NO_HISTORY)
    # A policy probability of 10% on a 5% base rate doubles the score instead of replacing it with 0.10,
    # which the "skip below 0.15" rule would have skipped.
    monkeypatch.setattr(reviver, "policy_probability", lambda lead: _lift(0.10))

    result = agent.process(lead)

    assert result.output["reactivation_probability"] == round(min(1.0, 2 * heuristic), 4)
    assert result.output["factors"][0]["name"] == "policy_model"
    assert result.output["factors"][0]["contribution"] == pytest.approx(0.693, abs=1e-3)
    assert result.output["policy"] == {
        "version": 41,
        "heuristic_probability": round(heuristic, 4),
        "policy_probability": 0.1,
        "base_rate": 0.05,
        "lift": 2.0,
    }
    assert result.proceed is True


def test_a_policy_that_expects_little_can_still_skip_a_lead(agent, monkeypatch):
    from agents.pipeline import reviver

    monkeypatch.setattr(reviver, "policy_probability", lambda lead: _lift(0.005))  # a tenth of the base rate
    lead = LeadFactory(organization=agent.organization, title="CEO", lost_reason="timing", last_engaged_at=_ago(1))
    heuristic, _ = reactivation_probability(lead=lead, history=NO_HISTORY)

    result = agent.process(lead)

    assert heuristic > 0.5 and result.output["reactivation_probability"] == round(heuristic / 10, 4)
    assert result.decision.action == "skip"


def test_the_lift_is_clipped_to_a_probability(agent, monkeypatch):
    from agents.pipeline import reviver

    monkeypatch.setattr(reviver, "policy_probability", lambda lead: _lift(0.5))  # ten times the base rate
    lead = LeadFactory(organization=agent.organization, title="CEO", lost_reason="timing", last_engaged_at=_ago(1))

    assert agent.process(lead).output["reactivation_probability"] == 1.0
