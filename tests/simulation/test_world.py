import collections
import datetime as dt

import phonenumbers
import pytest

from agents.models import Lead, Organization
from agents.pipeline import personalizer
from agents.pipeline.seniority import seniority_of
from agents.send_windows import lead_zone
from agents.services import leads_import
from simulation.propensity import FRAMEWORKS, INDUSTRY_GROUPS, SENIORITY_GROUP_OF, TONES
from simulation.world import DOMAINS, TITLES, World, domain_set

NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)


def test_a_seed_is_a_world():
    first, again, other = World.build(seed=3, leads=300), World.build(seed=3, leads=300), World.build(seed=4, leads=300)

    assert first.leads == again.leads
    assert first.model.describe() == again.model.describe()
    assert first.model.framework_factor == again.model.framework_factor
    assert first.organization_name == again.organization_name
    assert [lead.email for lead in first.leads] != [lead.email for lead in other.leads]


def test_leads_vary_across_industries_roles_sizes_and_time_zones():
    leads = World.build(seed=8, leads=1500).leads

    assert {lead.industry_group for lead in leads} == set(INDUSTRY_GROUPS)
    assert len({lead.industry for lead in leads}) == 12
    assert {lead.seniority for lead in leads} == set(SENIORITY_GROUP_OF)
    assert {lead.size_band for lead in leads} == {"small", "mid", "enterprise"}
    assert len({lead.timezone for lead in leads}) >= 10
    with_phone = [lead for lead in leads if lead.phone]
    assert 0.15 < len(with_phone) / len(leads) < 0.45
    assert len({lead.email for lead in leads}) == len(leads)
    assert len({lead.phone for lead in with_phone}) == len(with_phone)
    # Hidden traits are present but rare.
    counts = collections.Counter(
        dead=sum(lead.dead_email for lead in leads), complainer=sum(lead.complainer for lead in leads)
    )
    assert 0 < counts["dead"] < 0.03 * len(leads)
    assert 0 < counts["complainer"] < 0.03 * len(leads)


def test_phone_numbers_are_valid_e164_and_match_the_time_zone():
    leads = [lead for lead in World.build(seed=9, leads=1500).leads if lead.phone]

    for lead in leads:
        number = phonenumbers.parse(lead.phone)
        assert phonenumbers.is_valid_number(number), lead.phone
        assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == lead.phone
        assert phonenumbers.region_code_for_number(number) == lead.country


def test_every_title_lands_on_its_seniority_in_rex():
    for level, titles in TITLES.items():
        for title in titles:
            assert seniority_of(title) == level, title


def test_the_strategy_space_is_rexs():
    """If REX adds or renames a framework or tone, the world's preferences must follow."""
    assert FRAMEWORKS == personalizer.FRAMEWORKS
    assert TONES == personalizer.TONES


def test_preferences_differ_between_groups_and_between_seeds():
    worlds = [World.build(seed=seed, leads=1).model for seed in range(1, 6)]

    for model in worlds:
        assert sorted(model.preferred_framework.values()) == sorted(FRAMEWORKS)
        assert sorted(model.preferred_tone.values()) == sorted(TONES)
    assert len({tuple(model.preferred_framework.items()) for model in worlds}) > 1


@pytest.mark.django_db
def test_rex_imports_every_lead_as_it_is():
    world = World.build(seed=12, leads=400)
    organization = Organization.objects.create(name=world.organization_name, postal_address=world.postal_address)

    result = leads_import(organization=organization, rows=[lead.lead_row(now=NOW) for lead in world.leads])

    assert result.rejected == []
    assert Lead.objects.filter(organization=organization).count() == 400
    stored = {lead.email: lead for lead in Lead.objects.filter(organization=organization)}
    for world_lead in world.leads:
        lead = stored[world_lead.email]
        assert (lead.phone, lead.timezone, lead.industry) == (
            world_lead.phone,
            world_lead.timezone,
            world_lead.industry,
        )
        assert str(lead_zone(lead)) == world_lead.timezone


def test_the_lead_row_hides_the_worlds_secrets():
    row = World.build(seed=1, leads=1).leads[0].lead_row(now=NOW)

    hidden = {"receptiveness", "dead_email", "phone_kind", "complainer", "apple_mail", "security_gateway"}
    assert not hidden & set(row)
    assert dt.datetime.fromisoformat(row["last_engaged_at"]) < NOW


def test_the_sending_domains_grow_with_the_leads():
    small, large = domain_set("acme", 1800), domain_set("acme", 5000)

    assert len(small) == len(DOMAINS) and len(large) == 2 * len(DOMAINS)
    names = [domain.domain for domain in large]
    assert len(set(names)) == len(names) and "mail2.acme.example" in names
    assert sorted(domain.reputation for domain in large) == sorted(2 * [rep for _, rep in DOMAINS])
