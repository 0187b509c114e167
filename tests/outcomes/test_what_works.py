"""What works: strategies ranked with Wilson intervals and a minimum sample; agent performance per campaign."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from agents.models import AgentRun
from outcomes.models import OutcomeLabel
from outcomes.selectors import agent_performance, strategy_leaderboard
from tests.factories import (
    AgentRunFactory,
    CampaignFactory,
    LeadFactory,
    MissionFactory,
    OrganizationFactory,
)

pytestmark = pytest.mark.django_db

# 95% Wilson bounds solved by hand from the quadratic (p̂ - p)² = z²·p(1 - p)/n, z = 1.959964, rounded to 4 places.
WILSON_20_OF_40 = [0.352, 0.648]
WILSON_4_OF_40 = [0.0396, 0.2305]
WILSON_40_OF_40 = [0.9124, 1.0]


def _plant(org, framework, n, replies, *, tone="direct", channel="email", campaign=None, **fields):
    lead = LeadFactory(organization=org)
    OutcomeLabel.objects.bulk_create(
        OutcomeLabel(
            organization=org, lead=lead, campaign=campaign, framework=framework, tone=tone, channel=channel,
            delivered=True, replied=index < replies, **fields,
        )
        for index in range(n)
    )  # fmt: skip


@pytest.fixture
def org(membership):
    return membership.organization


@pytest.fixture
def planted(org):
    _plant(org, "A", 40, 20)  # reply 50%
    _plant(org, "B", 40, 4)  # reply 10%
    _plant(org, "C", 5, 5)  # reply 100%, but five sends prove little
    _plant(OrganizationFactory(), "Z", 50, 50)  # another organization's never count
    return org


def _arms(rows) -> list[str]:
    return [row["framework"] for row in rows]


def test_the_better_arm_ranks_first_with_hand_computed_intervals(planted):
    board = strategy_leaderboard(organization_id=planted.pk, min_sample=30)

    assert _arms(board["ranked"]) == ["A", "B"]
    a, b = board["ranked"]
    assert (a["sent"], a["replied"], a["reply_rate"], b["reply_rate"]) == (40, 20, 0.5, 0.1)
    assert a["ci95"]["reply_rate"] == a["reply_rate_ci95"] == WILSON_20_OF_40
    assert b["ci95"]["reply_rate"] == WILSON_4_OF_40
    assert a["delivery_rate"] == 1.0 and a["ci95"]["delivery_rate"] == WILSON_40_OF_40
    assert a["ci95"]["meeting_rate"][0] == 0.0


def test_arms_under_the_minimum_sample_are_flagged_to_explore_not_ranked(planted):
    strict = strategy_leaderboard(organization_id=planted.pk, min_sample=30)
    lenient = strategy_leaderboard(organization_id=planted.pk, min_sample=5)

    assert _arms(strict["exploring"]) == ["C"] and strict["exploring"][0]["reply_rate"] == 1.0
    assert _arms(lenient["ranked"]) == ["C", "A", "B"] and lenient["exploring"] == []


def test_ranking_by_average_deal_value(org):
    _plant(org, "A", 30, 10, deal_closed=True, deal_value=Decimal("100"))
    _plant(org, "B", 30, 2, deal_closed=True, deal_value=Decimal("900"))

    board = strategy_leaderboard(organization_id=org.pk, metric="avg_deal_value", min_sample=30)

    assert _arms(board["ranked"]) == ["B", "A"]
    assert board["ranked"][0]["avg_deal_value"] == 900.0 and board["ranked"][0]["close_rate"] == 1.0


def test_channel_and_since_narrow_the_outcomes(org):
    _plant(org, "A", 30, 3, channel="email", sent_at=timezone.now())
    _plant(org, "S", 30, 3, channel="sms", sent_at=timezone.now())
    _plant(org, "OLD", 30, 3, channel="sms", sent_at=timezone.now() - dt.timedelta(days=60))

    sms = strategy_leaderboard(organization_id=org.pk, channel="sms")
    recent_sms = strategy_leaderboard(
        organization_id=org.pk, channel="sms", since=timezone.now() - dt.timedelta(days=7)
    )

    assert sorted(_arms(sms["ranked"])) == ["OLD", "S"]
    assert _arms(recent_sms["ranked"]) == ["S"]


def test_the_leaderboard_is_one_query(planted, django_assert_num_queries):
    with django_assert_num_queries(1):
        strategy_leaderboard(organization_id=planted.pk)


def test_an_unknown_metric_is_refused(org):
    with pytest.raises(ValueError, match="Unknown metric"):
        strategy_leaderboard(organization_id=org.pk, metric="vibes")


# --- Agent performance ----------------------------------------------------------------------------------------


@pytest.fixture
def campaigns(org):
    alpha, beta = CampaignFactory(organization=org, name="Alpha"), CampaignFactory(organization=org, name="beta")
    mission = MissionFactory(organization=org, campaign=alpha)
    L = AgentRun.Layer
    for layer, success, duration, decision_ms in [
        (L.RULES, True, 10, 1.0), (L.RULES, True, 20, 3.0),
        (L.STATE_MACHINE, True, 30, None), (L.NONE, False, 40, None),
    ]:  # fmt: skip
        AgentRunFactory(
            mission=mission, agent="icp", decision_layer=layer, success=success, duration_ms=duration,
            decision_ms=decision_ms,
        )  # fmt: skip
    AgentRunFactory.create_batch(2, mission=mission, agent="personalizer", decision_layer=L.LLM, duration_ms=5)
    AgentRunFactory(mission=MissionFactory(organization=org, campaign=beta), agent="icp")
    AgentRunFactory(mission=MissionFactory(organization=org, campaign=None), agent="outreach")
    AgentRunFactory(mission=MissionFactory(), agent="icp")  # another organization's
    _plant(org, "A", 10, 5, campaign=alpha)
    return alpha, beta


def test_agent_performance_per_campaign_and_agent(org, campaigns):
    alpha, beta = campaigns

    rows = agent_performance(organization=org)

    assert [(row["campaign_id"], row["campaign_name"]) for row in rows] == [
        (alpha.pk, "Alpha"),
        (beta.pk, "beta"),
        (None, ""),
    ]
    first = rows[0]
    assert [agent["agent"] for agent in first["agents"]] == ["icp", "personalizer"]  # pipeline order
    icp = first["agents"][0]
    assert (icp["runs"], icp["successes"], icp["failures"], icp["success_rate"]) == (4, 3, 1, 0.75)
    assert icp["decisions"] == 3
    assert icp["layers"] == {
        "state_machine": {"count": 1, "percent": 33.3},
        "rules": {"count": 2, "percent": 66.7},
        "llm": {"count": 0, "percent": 0.0},
    }
    assert (icp["avg_duration_ms"], icp["avg_decision_ms"]) == (25.0, 2.0)
    assert first["agents"][1]["layers"]["llm"] == {"count": 2, "percent": 100.0}
    assert (first["outcomes"]["sent"], first["outcomes"]["replied"], first["outcomes"]["reply_rate"]) == (10, 5, 0.5)
    assert rows[1]["outcomes"]["sent"] == 0 and rows[1]["outcomes"]["ci95"]["reply_rate"] == [0.0, 1.0]
    assert [agent["agent"] for agent in rows[2]["agents"]] == ["outreach"]


def test_agent_performance_for_one_campaign_and_a_time_window(org, campaigns):
    alpha, beta = campaigns
    AgentRun.objects.filter(mission__campaign=alpha, agent="personalizer").update(
        created_at=timezone.now() - dt.timedelta(days=30)
    )

    only_beta = agent_performance(organization=org, campaign=beta)
    recent = agent_performance(organization=org, campaign=alpha, since=timezone.now() - dt.timedelta(days=7))

    assert [row["campaign_id"] for row in only_beta] == [beta.pk]
    assert [agent["agent"] for agent in recent[0]["agents"]] == ["icp"]


def test_agent_performance_counts_in_three_queries(org, campaigns, django_assert_num_queries):
    with django_assert_num_queries(3):
        agent_performance(organization=org)


# --- API ------------------------------------------------------------------------------------------------------


def test_winning_strategies_api(api_client, planted):
    response = api_client.get("/api/analytics/winning-strategies", {"min_sample": 30})

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["metric"], body["min_sample"], body["channel"], body["since"]) == ("reply_rate", 30, None, None)
    assert _arms(body["ranked"]) == ["A", "B"] and _arms(body["exploring"]) == ["C"]
    assert body["ranked"][0]["ci95"]["reply_rate"] == WILSON_20_OF_40
    assert {"delivery_rate", "open_rate", "meeting_rate", "close_rate", "avg_deal_value"} <= set(body["ranked"][0])


def test_winning_strategies_api_defaults_and_filters(api_client, org):
    _plant(org, "S", 30, 3, channel="sms")
    _plant(org, "E", 29, 3, channel="email")

    default = api_client.get("/api/analytics/winning-strategies/").json()
    sms = api_client.get("/api/analytics/winning-strategies", {"channel": "sms", "since": "2000-01-01"}).json()

    assert default["min_sample"] == 30 and _arms(default["ranked"]) == ["S"] and _arms(default["exploring"]) == ["E"]
    assert _arms(sms["ranked"]) == ["S"] and sms["exploring"] == [] and sms["since"].startswith("2000-01-01T00:00")


@pytest.mark.parametrize(
    "params",
    [{"min_sample": "0"}, {"min_sample": "many"}, {"channel": "fax"}, {"since": "last tuesday"}, {"metric": "vibes"}],
)
def test_winning_strategies_api_rejects_bad_parameters(api_client, org, params):
    response = api_client.get("/api/analytics/winning-strategies", params)

    assert response.status_code == 400
    assert list(response.json()) == list(params)


def test_agent_performance_api(api_client, org, campaigns):
    alpha, _ = campaigns

    body = api_client.get("/api/analytics/agent-performance", {"campaign": alpha.pk}).json()

    assert body["campaign"] == alpha.pk and body["since"] is None
    assert [row["campaign_name"] for row in body["campaigns"]] == ["Alpha"]
    assert body["campaigns"][0]["agents"][0]["success_rate_ci95"] == [0.3006, 0.9544]  # Wilson 3 of 4
    assert body["campaigns"][0]["outcomes"]["reply_rate"] == 0.5
    # agents.selectors.decision_stats, organization-wide: 3 + 2 in Alpha, 1 in beta, 1 without a campaign.
    assert body["organization_decisions"]["decisions"] == 7
    assert body["organization_decisions"]["layers"]["llm"]["count"] == 2


@pytest.mark.parametrize("value", ["abc", "0"])
def test_agent_performance_api_rejects_a_bad_campaign(api_client, org, value):
    response = api_client.get("/api/analytics/agent-performance", {"campaign": value})

    assert response.status_code == 400 and list(response.json()) == ["campaign"]


def test_agent_performance_api_refuses_another_organizations_campaign(api_client, org):
    response = api_client.get("/api/analytics/agent-performance", {"campaign": CampaignFactory().pk})

    assert response.status_code == 400
    assert "No campaign" in response.json()["campaign"][0]


def test_analytics_are_scoped_to_the_callers_organization(api_client, org):
    _plant(OrganizationFactory(), "Z", 50, 50)
    AgentRunFactory(agent="icp")

    strategies = api_client.get("/api/analytics/winning-strategies", {"min_sample": 1}).json()
    performance = api_client.get("/api/analytics/agent-performance").json()

    assert strategies["ranked"] == [] and strategies["exploring"] == []
    assert performance["campaigns"] == [] and performance["organization_decisions"]["decisions"] == 0


def test_every_endpoint_is_in_the_openapi_schema(client):
    schema = client.get("/api/schema/").content.decode()

    for path in (
        "/api/outcomes:",
        "/api/outcomes/{outcome_id}:",
        "/api/analytics/winning-strategies:",
        "/api/analytics/agent-performance:",
        "/api/webhook-events:",
        "/api/webhook-events/{event_id}:",
        "/api/webhook-events/{event_id}/reprocess:",
    ):
        assert path in schema
    for component in ("WinningStrategiesOutput", "AgentPerformanceOutput", "OutcomeLabelOutput", "RateIntervals"):
        assert component in schema
