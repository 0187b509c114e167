"""PII redaction before LLM calls: nothing personal survives, and the answer can be put back together."""

import pytest

from outcomes.redaction import redact, redact_mapping, restore

KNOWN = {"first_name": "Maya", "last_name": "Okafor", "company": "Brightlane"}


def test_emails_are_replaced_and_the_same_address_keeps_its_placeholder():
    result = redact("Write to maya.okafor@brightlane.com, cc ops@acme.io, again MAYA.OKAFOR@brightlane.com.")
    assert result.text == "Write to [EMAIL_1], cc [EMAIL_2], again [EMAIL_1]."
    assert result.mapping == {"[EMAIL_1]": "maya.okafor@brightlane.com", "[EMAIL_2]": "ops@acme.io"}


@pytest.mark.parametrize(
    "phone",
    [
        "+1 415-555-0100",
        "(415) 555-0199",
        "415.555.0142",
        "+14155550001",  # E.164, though not an assigned number
        "+44 20 7946 0958",
        "020 7946 0958",
        "+49 30 1234567",
    ],
)
def test_phone_numbers_in_several_formats_are_replaced(phone):
    result = redact(f"Call me on {phone} tomorrow.")
    assert result.text == "Call me on [PHONE_1] tomorrow."
    assert restore(result.text, result.mapping) == f"Call me on {phone} tomorrow."


def test_the_same_number_written_two_ways_gets_one_placeholder():
    result = redact("Office +1 415-555-0100, mobile +1 415-555-0199, office again (415) 555-0100.")
    assert result.text == "Office [PHONE_1], mobile [PHONE_2], office again [PHONE_1]."


def test_plain_numbers_dates_and_scores_are_kept():
    text = "Lead 42 scored 0.43 on 2024-01-15; 120 employees; ARR 1500000."
    assert redact(text).text == text


def test_urls_are_replaced_without_their_trailing_punctuation():
    result = redact("See https://brightlane.example.com/about?x=1, or www.brightlane.io.")
    assert result.text == "See [URL_1], or [URL_2]."
    assert result.mapping["[URL_1]"] == "https://brightlane.example.com/about?x=1"


def test_known_values_are_replaced_whole_word_and_case_insensitively():
    result = redact("maya okafor of BRIGHTLANE said Maya's team likes Mayan art.", known=KNOWN)
    assert result.text == "[NAME_1] [NAME_2] of [COMPANY_1] said [NAME_1]'s team likes Mayan art."
    assert result.mapping == {"[NAME_1]": "Maya", "[NAME_2]": "Okafor", "[COMPANY_1]": "Brightlane"}


def test_the_longest_known_value_wins():
    result = redact("Brightlane Labs, not Brightlane.", known={"company": "Brightlane Labs", "brand": "Brightlane"})
    assert result.text == "[COMPANY_1], not [BRAND_1]."


def test_restore_puts_every_original_back_and_leaves_unknown_placeholders():
    text = "Maya Okafor (maya@brightlane.com, +14155550100) of Brightlane: https://brightlane.com"
    result = redact(text, known=KNOWN)
    for secret in ("Maya", "Okafor", "maya@brightlane.com", "+14155550100", "Brightlane", "https://"):
        assert secret not in result.text
    assert restore(result.text, result.mapping) == text
    assert restore("Ask [NAME_1] about [NAME_9].", result.mapping) == "Ask Maya about [NAME_9]."


def test_redact_mapping_walks_nested_values_with_one_mapping():
    data = {
        "lead": {"name": "Maya Okafor", "email": "maya@brightlane.com", "size": 120},
        "notes": ["Maya prefers SMS: +1 415-555-0100", "Brightlane renewed"],
    }
    result = redact_mapping(data, known=KNOWN)
    assert result.data == {
        "lead": {"name": "[NAME_1] [NAME_2]", "email": "[EMAIL_1]", "size": 120},
        "notes": ["[NAME_1] prefers SMS: [PHONE_1]", "[COMPANY_1] renewed"],
    }
    assert set(result.mapping) == {"[NAME_1]", "[NAME_2]", "[EMAIL_1]", "[PHONE_1]", "[COMPANY_1]"}


def test_empty_and_one_letter_known_values_are_ignored():
    assert redact("a plan", known={"first_name": "", "middle_name": "A", "last_name": None}).text == "a plan"
