import pytest

from agents.pipeline.seniority import SENIORITIES, seniority_band, seniority_of


@pytest.mark.parametrize(
    ("title", "level"),
    [
        ("Chief Revenue Officer", "c_level"),
        ("CEO", "c_level"),
        ("CFO", "c_level"),
        ("CISO", "c_level"),
        ("Co-founder", "c_level"),
        ("Co-Founder & VP Sales", "c_level"),
        ("President", "c_level"),
        ("Managing Director", "c_level"),
        ("VP Sales", "vp"),
        ("Vice President, Marketing", "vp"),
        ("SVP Operations", "vp"),
        ("Executive Vice President", "vp"),
        ("Head of Growth", "head"),
        ("Director of IT", "director"),
        ("Sales Director", "director"),
        ("Sales Manager", "manager"),
        ("Product Lead", "manager"),
        ("Account Executive", "individual"),
        ("Software Engineer", "individual"),
        ("Product Owner", "individual"),
        ("", "unknown"),
        ("Wizard", "unknown"),
    ],
)
def test_seniority_of(title, level):
    assert seniority_of(title) == level
    assert level in SENIORITIES


def test_acronym_inside_a_word_is_not_c_level():
    # "Director" contains "cto" and "Coordinator" contains "co"; neither is an acronym on its own.
    assert seniority_of("Director") == "director"
    assert seniority_of("Marketing Coordinator") == "individual"


@pytest.mark.parametrize(
    ("title", "band"),
    [
        ("Chief Revenue Officer", "executive"),
        ("VP Sales", "executive"),
        ("Head of Operations", "director"),
        ("Director of Marketing", "director"),
        ("Sales Manager", "practitioner"),
        ("Data Analyst", "practitioner"),
        ("Wizard", "unknown"),
    ],
)
def test_seniority_band_groups_the_levels_into_three_audiences(title, band):
    assert seniority_band(seniority_of(title)) == band
