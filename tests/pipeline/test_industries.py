import pytest

from agents.industries import SECTOR_KEYWORDS, UNKNOWN, sector_of


@pytest.mark.parametrize(
    ("industry", "sector"),
    [
        ("SaaS", "information technology"),
        ("B2B SaaS", "information technology"),
        ("Cybersecurity", "information technology"),
        ("Developer Tools", "information technology"),
        ("IT Services", "information technology"),
        ("Fintech", "financials"),
        ("Banking", "financials"),
        ("Health Insurance", "financials"),  # the insurer's business, not the hospital's
        ("Healthcare", "health care"),
        ("Medical Devices", "health care"),
        ("Biotech", "health care"),
        ("Freight & Logistics", "industrials"),
        ("Manufacturing", "industrials"),
        ("Construction", "industrials"),
        ("Telecommunications", "communication services"),
        ("Oil & Gas", "energy"),
        ("Commercial Real Estate", "real estate"),
        ("Food & Beverage", "consumer staples"),
        ("Retail", "consumer discretionary"),
        ("Specialty Chemicals", "materials"),
        ("Water Utilities", "utilities"),
    ],
)
def test_sector_of_common_crm_industries(industry, sector):
    assert sector_of(industry) == sector


@pytest.mark.parametrize("industry", ["", "   ", "Widgets", "Apparatus"])
def test_an_industry_no_keyword_places_is_unknown(industry):
    assert sector_of(industry) == UNKNOWN


def test_keywords_match_whole_words_only():
    # "it" is a keyword (IT services); it must not match inside "Capital" or "Hospitality".
    assert sector_of("Hospitality") == "consumer discretionary"
    assert sector_of("Venture Capital") == "financials"


def test_the_eleven_gics_sectors():
    assert len({sector for sector, _ in SECTOR_KEYWORDS}) == 11
