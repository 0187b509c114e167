"""Reply sentiment: the rule classifier on the labelled set, its conventions, and the LLM path against a real local
HTTP server speaking the OpenAI chat-completions format (structured output, PII redaction, every fallback)."""

import json
import time
from collections import Counter
from pathlib import Path

import pytest
from werkzeug import Response

from outcomes.models import OutcomeLabel
from outcomes.sentiment import LLMReplyAnalysis, ReplyAnalysis, SentimentAnalyzer, lead_known_pii, rules_analyze
from tests.factories import LeadFactory
from tests.openai_api import chat_completion

DATASET = Path(__file__).resolve().parent.parent / "data" / "labelled_replies.jsonl"
FIELDS = {"text", "sentiment_label", "category", "objection_type", "interest_level"}
SCORE_RANGE = {"positive": (0.5, 1.0), "neutral": (-0.2, 0.5), "negative": (-1.0, -0.2)}


def _labelled() -> list[dict]:
    return [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- The labelled set -----------------------------------------------------------------------------


def test_the_labelled_set_covers_every_kind_of_reply():
    rows = _labelled()
    assert len(rows) >= 100 and len({row["text"] for row in rows}) == len(rows)
    for row in rows:
        assert set(row) == FIELDS
        assert row["sentiment_label"] in OutcomeLabel.SentimentLabel.values
        assert row["interest_level"] in OutcomeLabel.InterestLevel.values
        assert row["objection_type"] in OutcomeLabel.Objection.values
        assert row["category"] in ("interested", "objection", "neutral", "unsubscribe", "out_of_office")
    categories = Counter(row["category"] for row in rows)
    objections = Counter(row["objection_type"] for row in rows if row["category"] == "objection")
    assert categories["out_of_office"] >= 8 and categories["unsubscribe"] >= 8
    assert categories["interested"] >= 15 and categories["neutral"] >= 10
    assert set(objections) == {"price", "timing", "authority", "competitor", "not_interested", "no_need"}
    assert min(objections.values()) >= 8


def test_the_rule_fallback_labels_the_set_accurately(report_figure):
    """Lines 1-130 were written before any rule; lines 131-284 came in four later batches written as blind checks,
    each measured before it informed a rule change: sentiment_label accuracy 64.7%, 59.5%, 72.5%, 78.9% (category
    58-65% on the last two). Expect about that on replies unlike these; the figures printed here are on text the
    rules were tuned on."""
    rows = _labelled()
    results = [(row, rules_analyze(reply_text=row["text"])) for row in rows]

    def accuracy(field: str, subset=results) -> float:
        return sum(getattr(got, field) == row[field] for row, got in subset) / len(subset)

    label, category = accuracy("sentiment_label"), accuracy("category")
    objection, interest = accuracy("objection_type"), accuracy("interest_level")
    print(f"\nrule fallback on {len(rows)} labelled replies:")
    print(f"  sentiment_label accuracy {label:.1%}")
    print(f"  category accuracy        {category:.1%}")
    print(f"  objection_type accuracy  {objection:.1%}")
    print(f"  interest_level accuracy  {interest:.1%}")
    for name in sorted({row["category"] for row in rows}):
        subset = [(row, got) for row, got in results if row["category"] == name]
        print(f"  {name:14} n={len(subset):3}  label {accuracy('sentiment_label', subset):.0%}")
    report_figure(f"rule fallback on {len(rows)} labelled replies: label {label:.1%}, category {category:.1%}")
    assert label >= 0.85
    assert category >= 0.80


# --- Rule conventions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label", "category", "objection", "interest"),
    [
        ("Not interested.", "negative", "objection", "not_interested", "none"),
        ("I'm not really interested in this, thanks", "negative", "objection", "not_interested", "none"),
        ("We already use Outreach for sequencing.", "negative", "objection", "competitor", "none"),
        ("We're on Salesloft, and it does the job.", "negative", "objection", "competitor", "none"),
        ("Way too expensive for a team of five.", "negative", "objection", "price", "none"),
        ("There's no budget for this.", "negative", "objection", "price", "none"),
        ("Let's circle back next quarter.", "neutral", "objection", "timing", "low"),
        ("This is not a priority right now.", "neutral", "objection", "timing", "low"),
        ("I'm not the right person. Talk to our VP of Sales.", "neutral", "objection", "authority", "low"),
        ("We don't need this.", "negative", "objection", "no_need", "none"),
        ("We handle that in-house.", "negative", "objection", "no_need", "none"),
        ("Please remove me from your list.", "negative", "unsubscribe", "not_interested", "none"),
        ("unsubscribe", "negative", "unsubscribe", "not_interested", "none"),
        ("Stop emailing me.", "negative", "unsubscribe", "not_interested", "none"),
        ("Out of the office until Monday, limited access to email.", "neutral", "out_of_office", "none", "none"),
        ("Sure, send over some times.", "positive", "interested", "none", "high"),
        ("Let's chat Tuesday.", "positive", "interested", "none", "high"),
        ("Maybe, send more info.", "positive", "interested", "none", "medium"),
        ("How much does it cost?", "neutral", "neutral", "none", "low"),
        ("What CRMs do you integrate with?", "neutral", "neutral", "none", "low"),
    ],
)
def test_the_rules_follow_the_conventions(text, label, category, objection, interest):
    analysis = rules_analyze(reply_text=text)
    assert (analysis.sentiment_label, analysis.category, analysis.objection_type, analysis.interest_level) == (
        label,
        category,
        objection,
        interest,
    )
    assert analysis.objection_detected is (objection != "none")
    assert analysis.interest_signal is (interest in ("high", "medium"))
    low, high = SCORE_RANGE[label]
    assert low <= analysis.sentiment_score <= high
    assert analysis.source == "rules" and analysis.reasoning.startswith("Rules: ")


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Not opposed to a quick chat, how's Thursday?", "interested"),  # negation idiom, not a no
        ("I don't want to set up a call.", "objection"),  # a negated meeting cue is a no
        ("Budget isn't an issue. Let's talk.", "interested"),  # money talk without a limit
        ("We use HubSpot as our CRM, does this integrate?", "neutral"),  # a question, not an objection
        ("Interesting idea, let me think about it.", "neutral"),  # polite curiosity alone
        ("Good timing actually, call me tomorrow at 11?", "interested"),  # "good timing" is not a deferral
    ],
)
def test_negation_and_questions_do_not_flip_the_meaning(text, category):
    assert rules_analyze(reply_text=text).category == category


def test_a_polite_opener_does_not_soften_an_objection_but_openness_after_it_does():
    opener = rules_analyze(reply_text="We'd love to, but there's no budget for it this year.")
    after = rules_analyze(reply_text="We already use Outreach, but I'd be open to a comparison. Send a one-pager?")
    assert (opener.sentiment_label, opener.objection_type, opener.interest_level) == ("negative", "price", "none")
    assert (after.sentiment_label, after.objection_type, after.interest_level) == ("neutral", "competitor", "medium")


def test_the_quoted_thread_is_ignored():
    reply = (
        "Sounds good, Thursday at 10 works.\n\n"
        "On Tue, Mar 4, 2025 at 9:12 AM Jordan Lee <jordan@rex.example.com> wrote:\n"
        "> Not a fit? Reply 'unsubscribe' and I'll stop emailing you.\n"
    )
    analysis = rules_analyze(reply_text=reply)
    assert (analysis.category, analysis.interest_level) == ("interested", "high")


def test_the_fields_map_onto_the_outcome_row():
    analysis = rules_analyze(reply_text="Too expensive for us.")
    assert analysis.outcome_fields() == {
        "sentiment_label": "negative",
        "reply_sentiment_score": analysis.sentiment_score,
        "interest_signal": False,
        "interest_level": "none",
        "objection_detected": True,
        "objection_type": "price",
        "sentiment_reasoning": analysis.reasoning,
    }
    assert "'too expensive'" in analysis.reasoning


# --- The analyzer: rules when there is no model ---------------------------------------------------


def test_without_a_key_the_analyzer_uses_the_rules_and_says_why(settings):
    settings.OPENAI_API_KEY = ""
    analysis = SentimentAnalyzer().analyze(reply_text="Please take me off your list.")
    assert (analysis.source, analysis.category) == ("rules", "unsubscribe")
    assert analysis.extra["fallback_reason"] == "no model configured"


def test_an_empty_reply_is_neutral_without_calling_the_model(openai_server):
    analysis = SentimentAnalyzer().analyze(reply_text="  \n")
    assert (analysis.source, analysis.category) == ("rules", "neutral")
    assert analysis.extra["fallback_reason"] == "empty reply"
    assert openai_server.log == []


# --- The analyzer: the LLM path -------------------------------------------------------------------

MODEL_ANSWER = {
    "sentiment_score": -0.4,
    "sentiment_label": "negative",
    "interest_signal": False,
    "interest_level": "none",
    "objection_detected": True,
    "objection_type": "competitor",
    "category": "objection",
    "reasoning": "[NAME_1] says [COMPANY_1] renewed with another vendor.",
}


@pytest.fixture
def lead(db):
    return LeadFactory(
        first_name="Maya",
        last_name="Okafor",
        email="maya.okafor@brightlane.com",
        phone="+14155550123",
        company="Brightlane",
        website="https://brightlane.com",
    )


def _ask(lead, **overrides) -> ReplyAnalysis:
    arguments = {
        "reply_text": (
            "Hi Jordan, Brightlane renewed with Salesloft last month, so I'd rather not. "
            "If anything changes I'll call you from my mobile, (415) 555-0187.\n\n"
            "Maya Okafor\nmaya.okafor@brightlane.com"
        ),
        "original_message": "Hi Maya, saw Brightlane is hiring SDRs. Worth 15 minutes to compare notes?",
        "lead_context": {"industry": "SaaS", "role": "VP Sales", "company_size": 120, "lost_reason": "went dark"},
        "known_pii": lead_known_pii(lead),
    }
    return SentimentAnalyzer().analyze(**{**arguments, **overrides})


def _answer_with(server, content, **kwargs):
    server.expect_request("/v1/chat/completions", method="POST").respond_with_json(chat_completion(content, **kwargs))


def test_the_models_structured_answer_is_used(openai_server, lead, settings):
    settings.OPENAI_MODEL = "gpt-4o-mini"
    _answer_with(openai_server, MODEL_ANSWER, total_tokens=311)

    analysis = _ask(lead)

    assert analysis.source == "llm"
    assert (analysis.category, analysis.objection_type, analysis.sentiment_label) == (
        "objection",
        "competitor",
        "negative",
    )
    assert (analysis.sentiment_score, analysis.interest_level, analysis.objection_detected) == (-0.4, "none", True)
    assert analysis.reasoning == "Maya says Brightlane renewed with another vendor."  # placeholders restored
    assert analysis.extra == {"model": "gpt-4o-mini-2024-07-18", "tokens": 311}
    ((request, _),) = openai_server.log
    sent = json.loads(request.get_data(as_text=True))
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0
    schema = sent["response_format"]["json_schema"]
    assert sent["response_format"]["type"] == "json_schema" and schema["strict"] is True
    properties = schema["schema"]["properties"]
    assert properties["objection_type"]["enum"] == list(OutcomeLabel.Objection.values)
    assert set(properties) == set(LLMReplyAnalysis.model_fields)


def test_no_pii_of_the_lead_reaches_the_model(openai_server, lead):
    _answer_with(openai_server, MODEL_ANSWER)

    _ask(lead, lead_context={"industry": "SaaS", "contact_name": "Maya Okafor", "email": "maya.okafor@brightlane.com"})

    ((request, _),) = openai_server.log
    body = request.get_data(as_text=True)
    for secret in ("Maya", "Okafor", "maya.okafor", "Brightlane", "brightlane", "4155550123", "555-0187"):
        assert secret not in body
    for placeholder in ("[NAME_1]", "[NAME_2]", "[COMPANY_1]", "[EMAIL_1]", "[PHONE_1]"):
        assert placeholder in body
    # What the model needs stays: the words of the reply and the non-personal context.
    assert "renewed with Salesloft" in body and "SaaS" in body


def test_the_lead_context_alone_names_what_to_redact(openai_server):
    _answer_with(openai_server, MODEL_ANSWER)

    SentimentAnalyzer().analyze(
        reply_text="Thanks, but no. Priya Raman, Northwind",
        lead_context={"first_name": "Priya", "last_name": "Raman", "company": "Northwind", "industry": "Logistics"},
    )

    body = openai_server.log[0][0].get_data(as_text=True)
    assert "Priya" not in body and "Raman" not in body and "Northwind" not in body and "Logistics" in body


def test_a_server_error_falls_back_to_the_rules_without_retrying(openai_server, lead, caplog):
    openai_server.expect_request("/v1/chat/completions", method="POST").respond_with_response(
        Response(json.dumps({"error": {"message": "boom", "type": "server_error"}}), status=500)
    )

    analysis = _ask(lead)

    assert (analysis.source, analysis.category, analysis.objection_type) == ("rules", "objection", "competitor")
    assert analysis.extra["fallback_reason"].startswith("LLM failed: InternalServerError")
    assert len(openai_server.log) == 1
    assert "sentiment fallback to rules" in caplog.text


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("competitor, I think", "ValidationError"),  # not JSON at all
        ({**MODEL_ANSWER, "objection_type": "budget"}, "ValidationError"),  # outside the enum
        ({**MODEL_ANSWER, "sentiment_score": 3}, "ValidationError"),  # outside -1..1
        ({key: value for key, value in MODEL_ANSWER.items() if key != "category"}, "ValidationError"),
    ],
)
def test_an_invalid_answer_falls_back_to_the_rules(openai_server, lead, content, reason):
    _answer_with(openai_server, content)

    analysis = _ask(lead)

    assert analysis.source == "rules" and analysis.objection_type == "competitor"
    assert analysis.extra["fallback_reason"].startswith(f"LLM failed: {reason}")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<html><body>502 Bad Gateway</body></html>", "text/html"),  # a proxy's page with status 200
        ("", "application/json"),
        ('{"id": "chatcmpl-1", "object": "chat.completion"}', "application/json"),  # no choices
        ('{"choices": [{"index": 0, "message": null, "finish_reason": "stop"}]}', "application/json"),
    ],
    ids=["html", "empty", "no-choices", "null-message"],
)
def test_a_server_that_does_not_speak_the_api_falls_back_to_the_rules(openai_server, lead, body, content_type):
    openai_server.expect_request("/v1/chat/completions", method="POST").respond_with_response(
        Response(body, status=200, content_type=content_type)
    )

    analysis = _ask(lead)

    assert analysis.source == "rules" and analysis.objection_type == "competitor"
    assert analysis.extra["fallback_reason"].startswith("LLM failed: ")


def test_a_refusal_falls_back_to_the_rules(openai_server, lead):
    refusal = chat_completion("")
    refusal["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    openai_server.expect_request("/v1/chat/completions", method="POST").respond_with_json(refusal)

    analysis = _ask(lead)

    assert analysis.source == "rules"
    assert analysis.extra["fallback_reason"] == "LLM failed: UnusableAnswer: refused: I can't help with that."


def test_a_timeout_falls_back_to_the_rules(openai_server, lead, settings):
    settings.OPENAI_TIMEOUT = 0.2

    def slow(request):
        time.sleep(0.6)
        return Response(json.dumps(chat_completion(MODEL_ANSWER)), content_type="application/json")

    openai_server.expect_request("/v1/chat/completions", method="POST").respond_with_handler(slow)

    analysis = _ask(lead)

    assert analysis.source == "rules"
    assert analysis.extra["fallback_reason"].startswith("LLM failed: APITimeoutError")
    # Let the server finish the abandoned request here, or it lands in a later test's log.
    deadline = time.monotonic() + 5
    while not openai_server.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(openai_server.log) == 1
