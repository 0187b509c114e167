import itertools

import pytest

from agents.models import Lead
from agents.pipeline.personalizer import (
    FRAMEWORKS,
    SMS_MAX_CHARS,
    TONES,
    VARIANTS,
    lead_signals,
    render_message,
    render_sms,
)

pytestmark = pytest.mark.django_db

COMBINATIONS = list(itertools.product(FRAMEWORKS, TONES, VARIANTS))


@pytest.fixture
def lead():
    return Lead(first_name="Maya", last_name="Patel", company="Brightlane", industry="SaaS", title="VP Sales")


@pytest.fixture
def blank_lead():
    return Lead(email="someone@example.com")


def _render(lead, framework, tone, variant, signals=(), sender_name="Alex at Acme"):
    return render_message(
        lead=lead, framework=framework, tone=tone, variant=variant, signals=list(signals), sender_name=sender_name
    )


@pytest.mark.parametrize(("framework", "tone", "variant"), COMBINATIONS)
def test_every_combination_renders_a_subject_and_body(lead, framework, tone, variant):
    subject, body = _render(lead, framework, tone, variant, signals=["your Series A news"])

    assert subject and body
    assert "\n" not in subject and not subject.startswith("Subject")
    for text in (subject, body):
        assert "{{" not in text and "{%" not in text and "None" not in text and "  " not in text
    assert "last year" in body.lower()
    assert "Maya" in body and "Alex at Acme" in body
    assert "\n\n\n" not in body
    assert "unsubscribe" not in body.lower()


@pytest.mark.parametrize(("framework", "variant"), list(itertools.product(FRAMEWORKS, VARIANTS)))
def test_the_tone_changes_the_wording(lead, framework, variant):
    bodies = {tone: _render(lead, framework, tone, variant)[1] for tone in TONES}

    assert len(set(bodies.values())) == len(TONES)


@pytest.mark.parametrize(("framework", "tone"), list(itertools.product(FRAMEWORKS, TONES)))
def test_the_variants_have_different_subject_lines(lead, framework, tone):
    subject_a, _ = _render(lead, framework, tone, "A")
    subject_b, _ = _render(lead, framework, tone, "B")

    assert subject_a != subject_b


@pytest.mark.parametrize(("framework", "tone", "variant"), COMBINATIONS)
def test_missing_lead_fields_fall_back_to_plain_words(blank_lead, framework, tone, variant):
    subject, body = _render(blank_lead, framework, tone, variant, sender_name="")

    text = f"{subject}\n{body}"
    assert "{{" not in text and "None" not in text and " ," not in text and "  " not in text
    assert any(fallback in text.lower() for fallback in ("your team", "your company", "b2b"))
    assert body.splitlines()[0].startswith(("Hello there", "Hi there", "Hi,"))
    assert body.splitlines()[-1] == "The team"


def test_the_signal_is_used_as_a_hook_only_when_there_is_one(lead):
    _, with_signal = _render(lead, "PAS", "professional", "A", signals=["the open roles on your careers page"])
    _, without = _render(lead, "PAS", "professional", "A")

    assert "I also noticed the open roles on your careers page" in with_signal
    assert "noticed" not in without


def test_names_are_not_html_escaped(lead):
    lead.company = "O'Brien & Sons"

    subject, body = _render(lead, "AIDA", "professional", "A")

    assert "O'Brien & Sons" in subject and "O'Brien & Sons" in body
    assert "&amp;" not in body and "&#x27;" not in body


def test_an_unknown_framework_is_refused(lead):
    with pytest.raises(ValueError, match="Unknown framework"):
        _render(lead, "SPIN", "professional", "A")


@pytest.mark.parametrize(("framework", "tone", "variant"), COMBINATIONS)
def test_sms_is_short_and_complete(lead, framework, tone, variant):
    body = render_sms(lead=lead, framework=framework, tone=tone, variant=variant, sender_name="Alex at Acme")

    assert 0 < len(body) <= SMS_MAX_CHARS
    assert "\n" not in body and "{{" not in body
    assert "last year" in body and "Maya" in body


def test_sms_stays_within_the_limit_with_very_long_fields(lead):
    lead.first_name = "Maximiliana-Alexandra" * 4
    sender = "Alexander from the Extremely Long Company Name Incorporated " * 3

    body = render_sms(lead=lead, framework="AIDA", tone="professional", variant="A", sender_name=sender)

    assert len(body) <= SMS_MAX_CHARS
    assert body.endswith("…")


def test_sms_for_a_blank_lead_uses_fallbacks(blank_lead):
    body = render_sms(lead=blank_lead, framework="PAS", tone="friendly", variant="B", sender_name="")

    assert body.startswith("Hi there! We spoke last year.")


def test_lead_signals_reads_operator_phrases_and_scraper_signals():
    lead = Lead(
        enrichment={
            "signals": {"value": ["your new office in Austin"], "source": "manual"},
            "website_signals": {"value": ["hiring", "hubspot", "series_b"], "source": "website"},
        }
    )

    assert lead_signals(lead) == [
        "your new office in Austin",
        "the open roles on your careers page",
        "your Series B news",
    ]
    assert lead_signals(Lead()) == []
