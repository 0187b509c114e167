"""The LLM reasoner against a real local HTTP server speaking the OpenAI chat-completions format."""

import json
from dataclasses import replace

import pytest
from werkzeug import Response

from agents.decisions.llm import LLMQuestion, LLMReasoner, llm_cache_stats, openai_client
from tests.factories import LeadFactory
from tests.openai_api import chat_completion

pytestmark = pytest.mark.django_db

OPTIONS = ["PAS/professional", "AIDA/friendly", "skip"]


@pytest.fixture
def llm_server(openai_server):
    return openai_server


def answer_with(server, content, **kwargs):
    server.expect_request("/v1/chat/completions", method="POST").respond_with_json(chat_completion(content, **kwargs))


@pytest.fixture
def lead():
    return LeadFactory(
        first_name="Maya",
        last_name="Okafor",
        email="maya.okafor@brightlane.com",
        phone="+14155550123",
        company="Brightlane",
        website="https://brightlane.com",
    )


def question_for(lead) -> LLMQuestion:
    return LLMQuestion(
        question="Which message strategy should revive this lead?",
        options=OPTIONS,
        context={
            "name": f"{lead.first_name} {lead.last_name}",
            "email": lead.email,
            "phone": lead.phone,
            "company": lead.company,
            "website": lead.website,
            "title": lead.title,
            "reactivation_probability": 0.41,
            "notes": "Maya said to call her mobile (415) 555-0187 after Q3; Brightlane renewed with a competitor.",
        },
        known_pii={"first_name": lead.first_name, "last_name": lead.last_name, "company": lead.company},
    )


def test_the_model_chooses_and_no_pii_reaches_it(llm_server, lead):
    answer_with(llm_server, {"choice": "PAS/professional", "reason": "[NAME_1] at [COMPANY_1] went quiet."})

    answer = LLMReasoner().choose(question_for(lead))

    assert (answer.choice, answer.tokens, answer.cache_hit, answer.fallback) == ("PAS/professional", 57, False, False)
    assert answer.reason == "Maya at Brightlane went quiet."
    ((request, _),) = llm_server.log
    body = request.get_data(as_text=True)
    for secret in ("Maya", "Okafor", "maya.okafor", "brightlane", "Brightlane", "4155550123", "555-0187", "https:"):
        assert secret not in body
    for placeholder in ("[NAME_1]", "[NAME_2]", "[EMAIL_1]", "[PHONE_1]", "[PHONE_2]", "[COMPANY_1]", "[URL_1]"):
        assert placeholder in body
    sent = json.loads(body)
    assert sent["model"] == "gpt-4o-mini"
    assert sent["response_format"] == {"type": "json_object"}
    assert sent["temperature"] == 0
    assert request.headers["Authorization"] == "Bearer test"


def test_the_same_question_is_answered_from_the_cache(llm_server, lead):
    answer_with(llm_server, {"choice": "AIDA/friendly", "reason": "Warm tone for [NAME_1]."})
    reasoner = LLMReasoner()

    first = reasoner.choose(question_for(lead))
    second = reasoner.choose(question_for(lead))

    assert len(llm_server.log) == 1
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.choice == "AIDA/friendly" and second.reason == "Warm tone for Maya."
    assert second.tokens == 0  # nothing spent on a hit
    assert llm_cache_stats() == {"hits": 1, "misses": 1, "hit_rate": 0.5}


def test_a_lead_with_the_same_shape_of_context_hits_the_cache_with_its_own_names(llm_server, lead):
    answer_with(llm_server, {"choice": "skip", "reason": "[NAME_1] has churned."})
    LLMReasoner().choose(question_for(lead))
    other = LeadFactory(
        organization=lead.organization,
        first_name="Sam",
        last_name="Reyes",
        email="sam@northwind.io",
        phone="+14155550124",
        company="Northwind",
        website="https://northwind.io",
    )
    question = question_for(other)
    question.context["notes"] = question.context["notes"].replace("Maya", "Sam").replace("Brightlane", "Northwind")

    answer = LLMReasoner().choose(question)

    assert len(llm_server.log) == 1
    assert answer.cache_hit and answer.reason == "Sam has churned."


def test_a_choice_outside_the_options_falls_back(llm_server, lead, caplog):
    answer_with(llm_server, {"choice": "call them at 3am", "reason": "why not"}, total_tokens=31)

    answer = LLMReasoner().choose(question_for(lead))

    assert answer.fallback and answer.choice in OPTIONS and answer.tokens == 31
    assert "not one of the options" in answer.reason
    assert "LLM fallback" in caplog.text


def test_an_answer_that_is_not_json_falls_back(llm_server, lead):
    answer_with(llm_server, "PAS/professional, obviously")
    answer = LLMReasoner().choose(question_for(lead))
    assert answer.fallback and answer.choice in OPTIONS


def test_a_server_error_falls_back_without_retrying(llm_server, lead):
    llm_server.expect_request("/v1/chat/completions", method="POST").respond_with_response(
        Response(json.dumps({"error": {"message": "boom", "type": "server_error"}}), status=500)
    )

    answer = LLMReasoner().choose(question_for(lead))

    assert answer.fallback and answer.choice in OPTIONS and answer.tokens == 0
    assert answer.reason.startswith("LLM call failed: InternalServerError")
    assert len(llm_server.log) == 1
    # A failure is not cached: the next call asks the model again.
    LLMReasoner().choose(question_for(lead))
    assert len(llm_server.log) == 2


def test_without_a_key_the_fallback_is_deterministic(settings, lead):
    settings.OPENAI_API_KEY = ""
    assert openai_client() is None

    first = LLMReasoner().choose(question_for(lead))
    second = LLMReasoner().choose(question_for(lead))

    assert first.fallback and second.fallback
    assert first.choice == second.choice and first.choice in OPTIONS
    assert first.reason.startswith("no model configured")


def test_without_a_key_a_question_with_a_default_takes_it(settings, lead):
    settings.OPENAI_API_KEY = ""
    answers = {option: LLMReasoner().choose(replace(question_for(lead), default=option)) for option in OPTIONS}

    assert {option: answer.choice for option, answer in answers.items()} == {option: option for option in OPTIONS}
    assert all(answer.fallback and answer.reason.endswith("the question's default") for answer in answers.values())


def test_the_client_is_built_once_per_settings(settings):
    settings.OPENAI_API_KEY = "one"
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"
    client = openai_client()
    assert openai_client() is client
    assert str(client.base_url) == "http://127.0.0.1:9/v1/"

    settings.OPENAI_BASE_URL = "http://127.0.0.1:10/v1"
    assert openai_client() is not client
    assert str(openai_client().base_url) == "http://127.0.0.1:10/v1/"


def test_a_question_needs_options():
    with pytest.raises(ValueError):
        LLMReasoner().choose(LLMQuestion(question="?", options=[], context={}, known_pii={}))
