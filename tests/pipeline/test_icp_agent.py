import pytest

from agents.decisions.rules import rules_install_defaults
from agents.models import AgentRun, ICPProfile, Lead, MissionLead
from agents.pipeline.icp import ICPIntelligenceAgent, icp_profile_for
from tests.factories import LeadFactory, MissionFactory, OrganizationFactory, OutcomeLabelFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    organization = OrganizationFactory()
    rules_install_defaults(organization=organization)
    profile = icp_profile_for(organization)
    profile.target_industries = ["SaaS"]
    profile.target_seniorities = ["c_level", "vp"]
    profile.company_size_min, profile.company_size_max = 50, 500
    profile.target_regions = ["America"]
    profile.qualify_threshold = 0.4
    profile.save()
    return ICPIntelligenceAgent(mission=MissionFactory(organization=organization))


def test_low_fit_lead_is_disqualified_by_the_rules(agent):
    lead = LeadFactory(
        organization=agent.organization, industry="Retail", title="Intern", company_size=5, timezone="Asia/Tokyo"
    )

    result = agent.process(lead)

    lead.refresh_from_db()
    assert lead.state == Lead.State.DISQUALIFIED
    assert lead.icp_score < 0.4
    assert result.proceed is False
    assert result.final_status == MissionLead.Status.SKIPPED
    assert result.decision.action == "disqualify"
    assert result.decision.layer == AgentRun.Layer.RULES
    assert set(result.output["breakdown"]) == {"industry", "seniority", "company_size", "geography"}


def test_good_fit_lead_is_qualified_by_the_state_machine(agent):
    lead = LeadFactory(organization=agent.organization, industry="SaaS", title="CEO", company_size=120)

    result = agent.process(lead)

    lead.refresh_from_db()
    assert lead.state == Lead.State.QUALIFIED
    assert lead.icp_score == pytest.approx(1.0)
    assert result.proceed is True
    assert result.decision.layer == AgentRun.Layer.STATE_MACHINE
    assert result.output == {
        "icp_score": 1.0,
        "breakdown": {"industry": 1.0, "seniority": 1.0, "company_size": 1.0, "geography": 1.0},
    }


def test_lead_in_a_live_conversation_is_scored_but_not_requalified(agent):
    lead = LeadFactory(organization=agent.organization, state=Lead.State.REPLIED)

    result = agent.process(lead)

    lead.refresh_from_db()
    assert lead.state == Lead.State.REPLIED
    assert lead.icp_score is not None
    assert (result.proceed, result.decision.action, result.decision.layer) == (False, "skip", "state_machine")


def test_profile_is_loaded_once_per_agent(agent, django_assert_max_num_queries):
    leads = LeadFactory.create_batch(3, organization=agent.organization)
    agent.process(leads[0])
    with django_assert_max_num_queries(2 * 3):  # per lead: save score and state, then qualify
        for lead in leads:
            agent.process(lead)


def test_admin_action_refreshes_from_outcomes(admin_client):
    organization = OrganizationFactory()
    profile = icp_profile_for(organization)
    url = "/admin/agents/icpprofile/"
    data = {"action": "refresh_from_outcomes", "_selected_action": [profile.pk]}

    response = admin_client.post(url, data, follow=True)
    assert "fewer than 20" in response.content.decode()
    profile.refresh_from_db()
    assert profile.source == ICPProfile.Source.MANUAL

    OutcomeLabelFactory.create_batch(
        20, organization=organization, message=None, deal_closed=True, lead_industry="SaaS"
    )
    response = admin_client.post(url, data, follow=True)
    assert "derived from 20 outcomes" in response.content.decode()
    profile.refresh_from_db()
    assert (profile.source, profile.target_industries) == (ICPProfile.Source.DERIVED, ["SaaS"])


def test_admin_pages_render_and_validate_the_json_fields(admin_client):
    profile = icp_profile_for(OrganizationFactory())
    change_url = f"/admin/agents/icpprofile/{profile.pk}/change/"
    assert admin_client.get("/admin/agents/icpprofile/?source=manual").status_code == 200
    assert admin_client.get(change_url).status_code == 200

    form = {
        "organization": profile.organization_id,
        "source": "manual",
        "qualify_threshold": "0.5",
        "target_industries": '["SaaS"]',
        "target_seniorities": '["boss"]',
        "target_regions": "",
        "company_size_min": "",
        "company_size_max": "",
        "weights": '{"industry": 1}',
    }
    response = admin_client.post(change_url, form)
    assert response.status_code == 200  # the form again, with the error
    assert "Unknown seniorities" in response.content.decode()

    response = admin_client.post(change_url, {**form, "target_seniorities": '["vp"]'})
    assert response.status_code == 302
    profile.refresh_from_db()
    assert (profile.target_seniorities, profile.target_regions, profile.qualify_threshold) == (["vp"], [], 0.5)
