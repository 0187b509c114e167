"""The deployed policy model in the pipeline: the personalizer's strategy, the reviver's score, the holdout."""

import random
from pathlib import Path

import pytest

from agents.decisions.rules import rules_install_defaults
from agents.decisions.types import Decision
from agents.models import AgentRun, Lead, Message, Mission, MissionLead
from agents.pipeline import personalizer
from agents.pipeline.personalizer import FRAMEWORKS, TONES, Draft, PersonalizerAgent, choose_strategy
from agents.pipeline.reviver import (
    ReviverAgent,
    lead_history,
    policy_probability,
    reactivation_probability,
)
from agents.pipeline.runner import run_batch
from outcomes.services import outcome_record_sent
from tests.factories import LeadFactory, MissionFactory, MissionLeadFactory, ModelVersionFactory, OrganizationFactory
from tests.training.test_policy import train_planted
from training import features, policy
from training.models import ModelVersion
from training.policy import PolicyChoice, PolicyModel
from training.registry import model_deploy, model_retire, performance_rollup
from training.split import arm_for, is_holdout, split_cache_clear

pytestmark = pytest.mark.django_db

CHAMPION, CHALLENGER = ModelVersion.Role.CHAMPION, ModelVersion.Role.CHALLENGER


@pytest.fixture(autouse=True)
def _isolated(settings):
    settings.OPENAI_API_KEY = ""  # the template writer
    settings.TRAINING_HOLDOUT_PERCENTAGE = 0
    split_cache_clear()
    PolicyModel.forget()
    yield
    split_cache_clear()
    PolicyModel.forget()


@pytest.fixture
def mission():
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    return MissionFactory(organization=organization, status=Mission.Status.RUNNING, params={"sender_name": "Alex"})


@pytest.fixture
def trained(mission):
    return train_planted(mission.organization, n=2500)


@pytest.fixture
def deployed(trained):
    return model_deploy(version=trained, role=CHAMPION)


def _lead(mission, **fields):
    values = {"state": Lead.State.QUALIFIED, "icp_score": 0.8, "title": "CEO", "phone": "", **fields}
    lead = LeadFactory(organization=mission.organization, **values)
    MissionLeadFactory(mission=mission, lead=lead)
    return lead


def _candidates(channel="email"):
    return [{"framework": f, "tone": t, "channel": channel} for f in FRAMEWORKS for t in TONES]


def test_the_deployed_policy_picks_the_strategy_and_its_version_reaches_the_outcome(mission, deployed, monkeypatch):
    monkeypatch.setattr(policy, "exploration_rate", lambda version: 0.0)
    leads = [_lead(mission) for _ in range(4)]
    agent = PersonalizerAgent(mission=mission)

    for lead in leads:
        result = agent.process(lead)

        message = Message.objects.get(mission=mission, lead=lead)
        best, probability, _ = PolicyModel.load(deployed).best_strategy(lead, _candidates(), campaign=mission.campaign)
        assert (message.framework, message.tone) == (best["framework"], best["tone"])
        assert message.framework == "PAS"  # the planted signal: PAS works on executives
        assert result.output["framework"] == "PAS" and message.status == Message.Status.QUEUED
        record = message.agent_decisions["PersonalizerAgent"]
        assert record["policy"] == {"version": deployed.pk, "probability": round(probability, 4), "explored": False}
        assert record["model_version"] == deployed.pk and "policy_version" not in record
        assert record["exploration"]["method"] == "policy"

        outcome = outcome_record_sent(message=message)
        assert outcome.model_version == deployed

    assert performance_rollup(version=deployed)["messages"] == 4


def test_exploration_is_recorded_and_reproducible(mission, deployed, monkeypatch):
    monkeypatch.setattr(policy, "exploration_rate", lambda version: 1.0)
    lead = _lead(mission, title="Sales Manager")
    model = PolicyModel.load(deployed)

    PersonalizerAgent(mission=mission).process(lead)
    first = Message.objects.get(lead=lead)
    PersonalizerAgent(mission=mission).process(lead)  # a retried task
    second = Message.objects.get(lead=lead)

    record = first.agent_decisions["PersonalizerAgent"]
    assert record["policy"]["explored"] is True
    chosen = {"framework": first.framework, "tone": first.tone, "channel": "email"}
    contexts = features.lead_contexts(lead=lead, strategies=[chosen], now=first.created_at, campaign=mission.campaign)
    (expected,) = model.predict(contexts)
    assert record["policy"]["probability"] == pytest.approx(expected, abs=1e-3)
    assert (second.framework, second.tone, second.variant) == (first.framework, first.tone, first.variant)
    assert second.agent_decisions["PersonalizerAgent"]["policy"] == record["policy"]


def test_without_a_deployed_policy_thompson_sampling_is_unchanged(mission, trained):
    lead = _lead(mission)

    agent = PersonalizerAgent(mission=mission)
    agent.process(lead)

    message = Message.objects.get(lead=lead)
    rng = random.Random(f"{mission.pk}:{lead.pk}")
    framework, tone, exploration = choose_strategy(arms_stats=agent.arms_stats, rng=rng)
    assert (message.framework, message.tone, message.variant) == (framework, tone, rng.choice(("A", "B")))
    record = message.agent_decisions["PersonalizerAgent"]
    assert record["exploration"] == exploration and "policy" not in record and record["model_version"] is None


def test_only_leads_in_the_policy_arm_get_the_policy(mission, trained):
    model_deploy(version=trained, role=CHALLENGER, traffic_percentage=50)  # no champion: the rest is Thompson
    leads = [_lead(mission) for _ in range(16)]
    agent = PersonalizerAgent(mission=mission)

    for lead in leads:
        agent.process(lead)

    for lead in leads:
        record = Message.objects.get(lead=lead).agent_decisions["PersonalizerAgent"]
        in_arm = arm_for(lead_id=lead.pk, kind=ModelVersion.Kind.POLICY) == trained
        assert ("policy" in record) == in_arm
        assert record["model_version"] == (trained.pk if in_arm else None)
        assert record["exploration"]["method"] == ("policy" if in_arm else "thompson_beta")
    assert 0 < sum("policy" in m.agent_decisions["PersonalizerAgent"] for m in Message.objects.all()) < 16


def test_a_retired_policy_or_a_missing_artifact_falls_back_to_thompson(mission, deployed):
    first, second = _lead(mission), _lead(mission)
    Path(deployed.artifact_path).unlink()

    PersonalizerAgent(mission=mission).process(first)
    model_retire(version=deployed)
    PersonalizerAgent(mission=mission).process(second)

    for lead in (first, second):
        record = Message.objects.get(lead=lead).agent_decisions["PersonalizerAgent"]
        assert record["exploration"]["method"] == "thompson_beta" and "policy" not in record


def test_an_llm_written_message_names_the_writer_and_keeps_the_policy():
    policy_version = ModelVersionFactory(kind=ModelVersion.Kind.POLICY, backend="local")
    writer = ModelVersionFactory(kind=ModelVersion.Kind.MESSAGE_WRITER)
    brief = personalizer.Brief(LeadFactory.build(), "PAS", "direct", "A", "email", [], "Alex")
    choice = PolicyChoice(policy_version, {"framework": "PAS", "tone": "direct"}, 0.31, False)
    decision = Decision(stage="personalize", action="proceed", layer=AgentRun.Layer.RULES)

    with_llm = personalizer._decisions_record(brief, Draft("s", "b", "llm", writer.pk), {}, decision, choice)
    with_template = personalizer._decisions_record(brief, Draft("s", "b"), {}, decision, choice)

    assert (with_llm["model_version"], with_llm["policy_version"]) == (writer.pk, policy_version.pk)
    assert with_template["model_version"] == policy_version.pk and "policy_version" not in with_template
    expected = {"version": policy_version.pk, "probability": 0.31, "explored": False}
    assert with_llm["policy"] == with_template["policy"] == expected


# --- Holdout -------------------------------------------------------------------------------------------------


def test_holdout_leads_are_never_contacted(mission, settings):
    settings.TRAINING_HOLDOUT_PERCENTAGE = 50
    leads = [_lead(mission) for _ in range(20)]
    held = {lead.pk for lead in leads if is_holdout(lead_id=lead.pk)}
    assert 0 < len(held) < 20

    survivors = run_batch(agent_class=PersonalizerAgent, mission_id=mission.pk, lead_ids=[lead.pk for lead in leads])

    assert set(survivors) == {lead.pk for lead in leads} - held
    assert set(Message.objects.values_list("lead_id", flat=True)) == set(survivors)
    for run in AgentRun.objects.filter(lead_id__in=held):
        assert (run.decision, run.decision_reason, run.output_summary["skipped"]) == ("skip", "holdout", "holdout")
    statuses = set(MissionLead.objects.filter(lead_id__in=held).values_list("status", flat=True))
    assert statuses == {MissionLead.Status.SKIPPED}
    assert set(Lead.objects.filter(pk__in=held).values_list("state", flat=True)) == {Lead.State.QUALIFIED}


def test_a_queued_message_of_a_lead_that_joined_the_holdout_is_cancelled(mission, settings):
    lead = _lead(mission)
    PersonalizerAgent(mission=mission).process(lead)
    settings.TRAINING_HOLDOUT_PERCENTAGE = 100

    result = PersonalizerAgent(mission=mission).process(lead)

    message = Message.objects.get(lead=lead)
    assert (message.status, message.error) == (Message.Status.CANCELLED, "holdout")
    assert result.proceed is False and result.final_status == MissionLead.Status.SKIPPED


# --- Reviver -------------------------------------------------------------------------------------------------


def test_the_reviver_scores_with_the_policy_of_the_leads_arm(mission, deployed):
    lead = _lead(mission, phone="+14155550123", lost_reason="bad timing")
    both = _candidates("email") + _candidates("sms")
    _, expected, _ = PolicyModel.load(deployed).best_strategy(lead, both)
    base_rate = deployed.metrics["train_base_rate"]
    heuristic, _ = reactivation_probability(lead=lead, history=lead_history(lead))

    score = policy_probability(lead)
    assert (score.version, score.base_rate) == (deployed, base_rate)
    assert score.probability == pytest.approx(expected) and score.lift == pytest.approx(expected / base_rate)
    result = ReviverAgent(mission=mission).process(lead)

    # The policy moves the hand-set score by its lift, so the rules' thresholds keep their meaning.
    assert result.output["reactivation_probability"] == round(min(1.0, heuristic * expected / base_rate), 4)
    assert result.output["factors"][0]["name"] == "policy_model"
    assert result.output["policy"]["heuristic_probability"] == round(heuristic, 4)
    assert result.output["policy"]["policy_probability"] == round(expected, 4)
    assert result.output["policy"]["lift"] == pytest.approx(expected / base_rate, abs=1e-4)


def test_the_reviver_falls_back_without_a_policy(mission, trained):
    lead = _lead(mission)

    assert policy_probability(lead) is None
    result = ReviverAgent(mission=mission).process(lead)

    assert result.output["factors"][0]["name"] != "policy_model"


def _twin(version: ModelVersion, number: str) -> ModelVersion:
    """Another version of the same artifact: a challenger that chooses exactly as the champion does."""
    twin = ModelVersion.objects.get(pk=version.pk)
    twin.pk, twin.version, twin.status, twin.ab_role = None, number, ModelVersion.Status.READY, ""
    twin.save()
    return twin


def _prefers_the_last_candidate(version: ModelVersion, monkeypatch) -> None:
    real_best = PolicyModel.best_of

    def best_of(self, candidates, contexts):
        best, probability, scores = real_best(self, candidates, contexts)
        return (candidates[-1] if self.version.pk == version.pk else best), probability, scores

    monkeypatch.setattr(PolicyModel, "best_of", best_of)


def test_each_message_records_whether_the_other_ab_arm_would_have_sent_something_else(mission, deployed, monkeypatch):
    monkeypatch.setattr(policy, "exploration_rate", lambda version: 0.0)
    challenger = model_deploy(version=_twin(deployed, "v9.0.0"), role=CHALLENGER, traffic_percentage=50)
    leads = [_lead(mission) for _ in range(12)]
    agent = PersonalizerAgent(mission=mission)
    for lead in leads[:6]:
        agent.process(lead)

    # The same artifact twice: every lead would get the same strategy from either arm.
    records = [Message.objects.get(lead=lead).agent_decisions["PersonalizerAgent"]["policy"] for lead in leads[:6]]
    assert {record["triggered"] for record in records} == {False}
    arms = {record["version"] for record in records}
    for record in records:
        assert record["compared_with"] == [({deployed.pk, challenger.pk} - {record["version"]}).pop()]

    # Now the challenger prefers something else: every lead is triggered, whichever arm it is in.
    _prefers_the_last_candidate(challenger, monkeypatch)
    for lead in leads[6:]:
        agent.process(lead)
    records = [Message.objects.get(lead=lead).agent_decisions["PersonalizerAgent"]["policy"] for lead in leads[6:]]
    assert {record["triggered"] for record in records} == {True}
    assert len(arms | {record["version"] for record in records}) == 2  # both arms took part


def test_an_exploring_lead_is_never_triggered_and_without_a_rival_nothing_is_recorded(mission, deployed, monkeypatch):
    monkeypatch.setattr(policy, "exploration_rate", lambda version: 1.0)
    lead = _lead(mission)
    PersonalizerAgent(mission=mission).process(lead)  # the champion alone: no A/B test, no counterfactual
    assert "triggered" not in Message.objects.get(lead=lead).agent_decisions["PersonalizerAgent"]["policy"]

    challenger = model_deploy(version=_twin(deployed, "v9.0.0"), role=CHALLENGER, traffic_percentage=50)
    _prefers_the_last_candidate(challenger, monkeypatch)  # the arms differ, but every lead explores
    other = _lead(mission)
    PersonalizerAgent(mission=mission).process(other)
    assert Message.objects.get(lead=other).agent_decisions["PersonalizerAgent"]["policy"]["triggered"] is False
