"""The LLM writer against a real local HTTP server speaking the OpenAI chat completions API."""

import json

import pytest
from django.utils import timezone
from werkzeug import Request, Response

from agents.decisions.rules import rules_install_defaults
from agents.models import AgentRun, Lead, Message, Mission
from agents.pipeline.personalizer import SMS_MAX_CHARS, PersonalizerAgent
from tests.factories import (
    AgentRunFactory,
    LeadFactory,
    MissionFactory,
    MissionLeadFactory,
    ModelVersionFactory,
    OrganizationFactory,
)
from tests.openai_api import chat_completion
from training.models import ModelVersion

pytestmark = pytest.mark.django_db

WRITER_MODEL = "ft:gpt-4o-mini-2024-07-18:acme:writer:abc123"
COMPLETIONS = "/v1/chat/completions"


@pytest.fixture
def openai_settings(openai_server, settings):
    return settings


@pytest.fixture
def writer_model():
    return ModelVersionFactory(
        kind=ModelVersion.Kind.MESSAGE_WRITER,
        status=ModelVersion.Status.DEPLOYED,
        ab_role=ModelVersion.Role.CHAMPION,  # the writer is chosen by the traffic split: the champion writes for all
        traffic_percentage=100.0,
        provider_model_id=WRITER_MODEL,
        deployed_at=timezone.now(),
    )


@pytest.fixture
def mission():
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    return MissionFactory(organization=organization, status=Mission.Status.RUNNING, params={"sender_name": "Alex"})


@pytest.fixture
def lead(mission):
    lead = LeadFactory(
        organization=mission.organization,
        first_name="Priya",
        last_name="Raman",
        email="priya.raman@northwind.example.com",
        company="Northwind Analytics",
        state=Lead.State.QUALIFIED,
        icp_score=0.9,
    )
    MissionLeadFactory(mission=mission, lead=lead)
    return lead


def _answer(content: str, model: str = WRITER_MODEL) -> Response:
    return Response(
        json.dumps(chat_completion(content, model=model, total_tokens=273)), content_type="application/json"
    )


def writer(request: Request) -> Response:
    """Writes with the placeholders it was given, as a model that follows the prompt would."""
    payload = request.get_json()
    context = json.loads(payload["messages"][-1]["content"])
    first, company = context["lead"]["first_name"], context["lead"]["company"]
    content = json.dumps(
        {
            "subject": f"{first}, a second look at {company}'s lost deals",
            "body": f"Hi {first},\n\nWhen we spoke last year, {company} was losing deals after the demo. "
            "Worth 15 minutes next week?\n\nAlex",
        }
    )
    return _answer(content, model=payload["model"])


def test_the_deployed_writer_writes_with_pii_restored(openai_settings, writer_model, httpserver, mission, lead):
    httpserver.expect_request(COMPLETIONS, method="POST").respond_with_handler(writer)

    result = PersonalizerAgent(mission=mission).process(lead)

    message = Message.objects.get(mission=mission, lead=lead)
    assert message.subject == "Priya, a second look at Northwind Analytics's lost deals"
    assert message.body.startswith("Hi Priya,\n\nWhen we spoke last year, Northwind Analytics was losing deals")
    decisions = message.agent_decisions["PersonalizerAgent"]
    assert decisions["writer"] == "llm" and decisions["model_version"] == writer_model.pk
    assert decisions["llm_tokens"] == 273
    assert result.output["writer"] == "llm"

    (request, _response), *others = httpserver.log
    assert others == []
    sent = request.get_data(as_text=True)
    for pii in ("Priya", "Raman", "Northwind", "priya.raman@northwind.example.com"):
        assert pii not in sent
    payload = request.get_json()
    assert payload["model"] == WRITER_MODEL
    assert payload["response_format"] == {"type": "json_object"}
    assert request.headers["Authorization"] == "Bearer test"
    context = json.loads(payload["messages"][-1]["content"])
    assert context["lead"]["first_name"] == "[NAME_1]" and context["lead"]["company"] == "[COMPANY_1]"
    assert context["framework"].startswith(message.framework) and context["tone"] == message.tone


def test_a_server_error_falls_back_to_the_template(openai_settings, writer_model, httpserver, mission, lead):
    httpserver.expect_request(COMPLETIONS, method="POST").respond_with_json(
        {"error": {"message": "The server had an error", "type": "server_error", "param": None, "code": None}},
        status=500,
    )

    result = PersonalizerAgent(mission=mission).process(lead)

    message = Message.objects.get(mission=mission, lead=lead)
    decisions = message.agent_decisions["PersonalizerAgent"]
    # The template stood in, and the writer's arm is still credited with the message (and its failure).
    assert decisions["writer"] == "template" and decisions["model_version"] == writer_model.pk
    assert decisions["llm_fallback"].startswith("InternalServerError")
    assert "last year" in message.body.lower() and "Priya" in message.body
    assert result.proceed is True and result.output["writer"] == "template"
    assert len(httpserver.log) == 1  # OPENAI_MAX_RETRIES=0: one attempt, then the template


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("Sure! Here is your email.", "JSONDecodeError"),
        (json.dumps({"subject": "Hello"}), "KeyError"),
        (json.dumps({"subject": "Hi [NAME_7]", "body": "Hello [NAME_7], long time."}), "ValueError"),
        (json.dumps({"subject": "Hi", "body": "   "}), "ValueError"),
    ],
)
def test_an_unusable_answer_falls_back_to_the_template(
    openai_settings, writer_model, httpserver, mission, lead, content, error
):
    httpserver.expect_request(COMPLETIONS, method="POST").respond_with_response(_answer(content))

    PersonalizerAgent(mission=mission).process(lead)

    decisions = Message.objects.get(mission=mission, lead=lead).agent_decisions["PersonalizerAgent"]
    assert decisions["writer"] == "template"
    assert decisions["llm_fallback"].startswith(error)


def test_without_a_deployed_writer_no_request_is_made(openai_settings, httpserver, mission, lead):
    ModelVersionFactory(status=ModelVersion.Status.READY, provider_model_id=WRITER_MODEL)

    PersonalizerAgent(mission=mission).process(lead)

    assert Message.objects.get(lead=lead).agent_decisions["PersonalizerAgent"]["writer"] == "template"
    assert httpserver.log == []


def test_without_a_key_no_request_is_made(openai_settings, writer_model, httpserver, mission, lead):
    openai_settings.OPENAI_API_KEY = ""

    PersonalizerAgent(mission=mission).process(lead)

    assert Message.objects.get(lead=lead).agent_decisions["PersonalizerAgent"]["writer"] == "template"
    assert httpserver.log == []


def test_an_sms_longer_than_the_limit_falls_back_to_the_template(
    openai_settings, writer_model, httpserver, mission, lead
):
    AgentRunFactory(mission=mission, lead=lead, agent=AgentRun.Agent.REVIVER, output_summary={"channel": "sms"})
    content = json.dumps({"subject": "", "body": "Hi [NAME_1], " + "we spoke last year. " * 20})
    httpserver.expect_request(COMPLETIONS, method="POST").respond_with_response(_answer(content))

    PersonalizerAgent(mission=mission).process(lead)

    message = Message.objects.get(lead=lead)
    assert message.channel == Message.Channel.SMS and len(message.body) <= SMS_MAX_CHARS
    decisions = message.agent_decisions["PersonalizerAgent"]
    assert decisions["writer"] == "template" and "max 320" in decisions["llm_fallback"]


def test_a_short_sms_from_the_writer_is_kept_without_subject(openai_settings, writer_model, httpserver, mission, lead):
    AgentRunFactory(mission=mission, lead=lead, agent=AgentRun.Agent.REVIVER, output_summary={"channel": "sms"})
    content = json.dumps({"subject": "ignored", "body": "Hi [NAME_1], Alex here, we spoke last year. Worth a call?"})
    httpserver.expect_request(COMPLETIONS, method="POST").respond_with_response(_answer(content))

    PersonalizerAgent(mission=mission).process(lead)

    message = Message.objects.get(lead=lead)
    assert (message.subject, message.body) == ("", "Hi Priya, Alex here, we spoke last year. Worth a call?")
    assert message.agent_decisions["PersonalizerAgent"]["writer"] == "llm"
