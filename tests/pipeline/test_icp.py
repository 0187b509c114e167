import pytest

from agents.models import ICPProfile
from agents.pipeline.icp import DEFAULT_WEIGHTS, icp_profile_for, icp_profile_refresh, icp_score, icp_weights
from outcomes.models import OutcomeLabel
from tests.factories import LeadFactory, OrganizationFactory, OutcomeLabelFactory

pytestmark = pytest.mark.django_db

PARTS = {"industry", "seniority", "company_size", "geography"}


@pytest.fixture
def profile():
    profile = icp_profile_for(OrganizationFactory())
    profile.target_industries = ["SaaS", "Fintech"]
    profile.target_seniorities = ["c_level", "vp"]
    profile.company_size_min, profile.company_size_max = 50, 500
    profile.target_regions = ["America"]
    profile.save()
    return profile


def _lead(profile, **fields):
    return LeadFactory.build(organization=profile.organization, **fields)


def test_perfect_fit_scores_higher_than_poor_fit(profile):
    good, good_parts = icp_score(
        lead=_lead(profile, industry="SaaS", title="CEO", company_size=120, timezone="America/New_York"),
        profile=profile,
    )
    poor, poor_parts = icp_score(
        lead=_lead(profile, industry="Retail", title="Intern", company_size=4, timezone="Asia/Tokyo"),
        profile=profile,
    )
    assert good == pytest.approx(1.0)
    assert good_parts == {"industry": 1.0, "seniority": 1.0, "company_size": 1.0, "geography": 1.0}
    assert 0 <= poor < 0.2 < good
    assert set(poor_parts) == PARTS
    assert all(0 <= value <= 1 for value in poor_parts.values())


def test_company_size_falls_off_outside_the_range(profile):
    parts = [
        icp_score(lead=_lead(profile, company_size=size), profile=profile)[1]["company_size"]
        for size in (500, 1000, 2000, 8000)
    ]
    assert parts[0] == 1.0
    assert parts[0] > parts[1] > parts[2] > parts[3] == 0.0


def test_unknowns_are_neutral(profile):
    lead = _lead(profile, industry="", title="", company_size=None, timezone="", phone="")
    score, parts = icp_score(lead=lead, profile=profile)
    assert parts == {"industry": 0.5, "seniority": 0.5, "company_size": 0.5, "geography": 0.5}
    assert score == pytest.approx(0.5)


def test_empty_targets_are_neutral_and_seniority_uses_the_default_ranking():
    profile = icp_profile_for(OrganizationFactory())
    lead = LeadFactory.build(organization=profile.organization, title="VP Sales")
    _, parts = icp_score(lead=lead, profile=profile)
    assert parts == {"industry": 0.5, "seniority": 0.9, "company_size": 0.5, "geography": 0.5}


def test_region_comes_from_the_phone_number_without_a_time_zone(profile):
    lead = _lead(profile, timezone="", phone="+4930901820")
    profile.target_regions = ["Europe"]
    assert icp_score(lead=lead, profile=profile)[1]["geography"] == 1.0


def test_weights_are_normalised(profile):
    lead = _lead(profile, industry="SaaS", title="Sales Manager", company_size=2000, timezone="Europe/Berlin")
    default_score, parts = icp_score(lead=lead, profile=profile)
    profile.weights = {part: weight * 10 for part, weight in DEFAULT_WEIGHTS.items()}
    assert icp_score(lead=lead, profile=profile)[0] == pytest.approx(default_score)
    profile.weights = {"industry": 2, "seniority": 0, "company_size": 0, "geography": 0}
    assert icp_score(lead=lead, profile=profile)[0] == pytest.approx(parts["industry"])


def test_icp_weights_ignore_bad_values_and_sum_to_one():
    weights = icp_weights({"industry": "a lot", "seniority": -1, "geography": True, "colour": 5})
    assert weights == pytest.approx(
        {part: weight / sum(DEFAULT_WEIGHTS.values()) for part, weight in DEFAULT_WEIGHTS.items()}
    )
    assert sum(
        icp_weights({"industry": 0, "seniority": 0, "company_size": 0, "geography": 0}).values()
    ) == pytest.approx(1)


def test_icp_profile_for_creates_once_with_default_weights():
    organization = OrganizationFactory()
    profile = icp_profile_for(organization)
    assert profile.weights == DEFAULT_WEIGHTS
    assert profile.source == ICPProfile.Source.MANUAL
    assert icp_profile_for(organization).pk == profile.pk


def _won(organization, count, **fields):
    fields.setdefault("deal_closed", True)
    OutcomeLabelFactory.create_batch(count, organization=organization, message=None, **fields)


def test_icp_profile_refresh_needs_enough_outcomes(profile):
    organization = profile.organization
    _won(organization, 5, lead_industry="Retail", lead_role="Intern", company_size=3)
    # Negative and neutral outcomes never count towards the profile.
    _won(organization, 30, deal_closed=False, training_label=OutcomeLabel.Label.NEGATIVE, lead_industry="Retail")
    before = ICPProfile.objects.values().get(pk=profile.pk)

    assert icp_profile_refresh(organization=organization, min_outcomes=20) is None
    assert ICPProfile.objects.values().get(pk=profile.pk) == before


def test_icp_profile_refresh_derives_targets_from_positive_outcomes(profile):
    organization = profile.organization
    america = {"lead_context": {"timezone": "America/Chicago"}}
    for size in range(100, 1300, 100):  # 12 won deals, 100 to 1200 employees
        _won(organization, 1, lead_industry="Healthcare", lead_role="Director of IT", company_size=size, **america)
    _won(organization, 5, deal_closed=False, meeting_booked=True, lead_industry="Logistics", lead_role="COO")
    _won(organization, 3, deal_closed=False, training_label=OutcomeLabel.Label.POSITIVE, lead_industry="Logistics")
    _won(organization, 1, lead_industry="Mining", lead_role="Head of Ops", lead_context={"region": "Africa"})
    _won(organization, 40, deal_closed=False, lead_industry="Retail", lead_role="Intern", company_size=5)

    refreshed = icp_profile_refresh(organization=organization, min_outcomes=20)

    assert refreshed is not None
    refreshed.refresh_from_db()
    assert refreshed.source == ICPProfile.Source.DERIVED
    assert refreshed.sample_size == 21
    # Mining is one win in 21: below the 10% share that makes a target.
    assert refreshed.target_industries == ["Healthcare", "Logistics"]
    assert refreshed.target_seniorities == ["director", "c_level"]
    assert (refreshed.company_size_min, refreshed.company_size_max) == (210, 1090)
    # The outcomes without a region in their context fall back to their lead's time zone (the factory's New York).
    assert set(refreshed.target_regions) == {"America"}
