"""The message writer is split by traffic like the policy: each lead is written by its A/B arm's writer."""

import json

import pytest
from werkzeug import Request, Response

from agents.decisions.rules import rules_install_defaults
from agents.models import Lead, Message, Mission
from agents.pipeline import personalizer
from agents.pipeline.personalizer import PersonalizerAgent
from outcomes.services import outcome_record_sent
from tests.factories import LeadFactory, MissionFactory, MissionLeadFactory, ModelVersionFactory, OrganizationFactory
from tests.openai_api import chat_completion
from training import split
from training.models import ModelVersion
from training.policy import PolicyChoice
from training.registry import model_deploy, performance_rollup
from training.split import arm_for, split_cache_clear

pytestmark = pytest.mark.django_db

WRITER = ModelVersion.Kind.MESSAGE_WRITER
CHAMPION, CHALLENGER = ModelVersion.Role.CHAMPION, ModelVersion.Role.CHALLENGER
COMPLETIONS = "/v1/chat/completions"


@pytest.fixture(autouse=True)
def _isolated(settings):
    settings.TRAINING_HOLDOUT_PERCENTAGE = 0
    split_cache_clear()
    yield
    split_cache_clear()


@pytest.fixture
def mission():
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    return MissionFactory(organization=organization, status=Mission.Status.RUNNING, params={"sender_name": "Alex"})


def _writer(role: str, traffic: float | None = None, *, name: str) -> ModelVersion:
    version = ModelVersionFactory(kind=WRITER, backend="openai", provider_model_id=f"ft:gpt-4o-mini:acme:{name}:x")
    return model_deploy(version=version, role=role, traffic_percentage=traffic)


def _lead(mission) -> Lead:
    lead = LeadFactory(organization=mission.organization, state=Lead.State.QUALIFIED, icp_score=0.9, phone="")
    MissionLeadFactory(mission=mission, lead=lead)
    return lead


def _leads_on_both_arms(mission, champion, challenger, *, each: int) -> list[Lead]:
    """Leads until each arm has ``each`` of them (which leads fall where is the hash's business)."""
    leads, counts = [], {champion.pk: 0, challenger.pk: 0}
    while min(counts.values()) < each:
        lead = _lead(mission)
        arm = arm_for(lead_id=lead.pk, kind=WRITER)
        if counts[arm.pk] < each:
            leads.append(lead)
        counts[arm.pk] += 1
        assert sum(counts.values()) < 200, counts
    return leads


def _echo_writer(request: Request) -> Response:
    """A writer that signs with the model it was asked for, so each message shows who wrote it."""
    model = request.get_json()["model"]
    content = json.dumps({"subject": "A second look", "body": f"Hi [NAME_1], we spoke last year. ({model})"})
    return Response(json.dumps(chat_completion(content, model=model)), content_type="application/json")


def test_a_ten_percent_challenger_writes_for_ten_percent_of_the_leads(openai_server, mission, monkeypatch):
    monkeypatch.setattr(split, "CACHE_SECONDS", 60.0)  # the cache window, not a busy machine's speed, is tested
    champion = _writer(CHAMPION, name="champion")
    challenger = _writer(CHALLENGER, 10, name="challenger")
    champion.refresh_from_db()
    assert champion.traffic_percentage == 90.0
    agent = PersonalizerAgent(mission=mission)
    leads = [Lead(pk=lead_id) for lead_id in range(1, 20_001)]

    writers = [agent.writer_for(lead) for lead in leads]

    share = sum(writer == challenger for writer in writers) / len(writers)
    assert 0.09 <= share <= 0.11
    assert all(writer in (champion, challenger) for writer in writers)  # the champion writes for all the rest
    split_cache_clear()  # another process, or this one after its cache expired
    again = PersonalizerAgent(mission=mission)
    assert [again.writer_for(lead).pk for lead in leads] == [writer.pk for writer in writers]


def test_the_writer_split_is_cached_per_process(openai_server, mission, monkeypatch, django_assert_max_num_queries):
    monkeypatch.setattr(split, "CACHE_SECONDS", 60.0)
    _writer(CHAMPION, name="champion")
    _writer(CHALLENGER, 10, name="challenger")
    split_cache_clear()
    agent = PersonalizerAgent(mission=mission)

    with django_assert_max_num_queries(1):  # the experiment, once, for thousands of leads
        for lead_id in range(1, 5001):
            agent.writer_for(Lead(pk=lead_id))


def test_each_lead_is_written_by_its_arms_writer_and_labelled_with_it(openai_server, mission):
    champion = _writer(CHAMPION, name="champion")
    challenger = _writer(CHALLENGER, 30, name="challenger")
    openai_server.expect_request(COMPLETIONS, method="POST").respond_with_handler(_echo_writer)
    leads = _leads_on_both_arms(mission, champion, challenger, each=3)
    agent = PersonalizerAgent(mission=mission)

    for lead in leads:
        agent.process(lead)

    models = [request.get_json()["model"] for request, _ in openai_server.log]
    assert len(models) == len(leads)
    for lead, model in zip(leads, models, strict=True):
        arm = arm_for(lead_id=lead.pk, kind=WRITER)
        message = Message.objects.get(lead=lead)
        record = message.agent_decisions["PersonalizerAgent"]
        assert model == arm.provider_model_id and message.body.endswith(f"({arm.provider_model_id})")
        assert (record["writer"], record["model_version"]) == ("llm", arm.pk)
        assert outcome_record_sent(message=message).model_version == arm
    assert {arm_for(lead_id=lead.pk, kind=WRITER) for lead in leads} == {champion, challenger}


def test_a_failed_call_is_credited_to_the_leads_writer_arm(openai_server, mission, monkeypatch):
    champion = _writer(CHAMPION, name="champion")
    challenger = _writer(CHALLENGER, 30, name="challenger")
    policy = ModelVersionFactory(kind=ModelVersion.Kind.POLICY, backend="local")
    choice = PolicyChoice(policy, {"framework": "PAS", "tone": "direct"}, 0.3, False)
    monkeypatch.setattr(personalizer, "policy_choose", lambda **kwargs: choice)
    openai_server.expect_request(COMPLETIONS, method="POST").respond_with_json(
        {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}, status=500
    )
    leads = _leads_on_both_arms(mission, champion, challenger, each=1)
    agent = PersonalizerAgent(mission=mission)

    for lead in leads:
        agent.process(lead)

    for lead in leads:
        arm = arm_for(lead_id=lead.pk, kind=WRITER)
        message = Message.objects.get(lead=lead)
        record = message.agent_decisions["PersonalizerAgent"]
        assert record["writer"] == "template" and record["llm_fallback"].startswith("InternalServerError")
        # The writer arm is credited with its failure; the policy keeps the strategy it chose.
        assert (record["model_version"], record["policy_version"], record["policy"]["version"]) == (
            arm.pk,
            policy.pk,
            policy.pk,
        )
        assert outcome_record_sent(message=message).model_version == arm
    assert performance_rollup(version=champion)["messages"] == 1
    assert performance_rollup(version=challenger)["messages"] == 1
    assert performance_rollup(version=policy)["messages"] == 2


def test_leads_outside_a_champion_less_test_get_the_template_and_no_writer(openai_server, mission):
    _writer(CHALLENGER, 20, name="challenger")
    openai_server.expect_request(COMPLETIONS, method="POST").respond_with_handler(_echo_writer)
    leads = [_lead(mission) for _ in range(12)]
    outside = [lead for lead in leads if arm_for(lead_id=lead.pk, kind=WRITER) is None]
    assert outside  # 80% of the leads: twelve of them all inside would be a broken split
    agent = PersonalizerAgent(mission=mission)

    for lead in outside:
        agent.process(lead)

    assert openai_server.log == []
    for lead in outside:
        record = Message.objects.get(lead=lead).agent_decisions["PersonalizerAgent"]
        assert (record["writer"], record["model_version"]) == ("template", None)
    labelled = Message.objects.values_list("agent_decisions__PersonalizerAgent__model_version", flat=True)
    assert len(labelled) == len(outside) and set(labelled) == {None}


def test_without_an_openai_key_no_lead_gets_a_writer(settings, mission):
    settings.OPENAI_API_KEY = ""
    _writer(CHAMPION, name="champion")

    assert PersonalizerAgent(mission=mission).writer_for(_lead(mission)) is None
