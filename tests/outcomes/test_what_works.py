"""What works: strategies ranked with Wilson intervals and a minimum sample; agent performance per campaign."""

import datetime as dt
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from agents.channels import ProviderError
from agents.models import AgentRun, Message
from agents.sending import message_send
from outcomes.models import OutcomeLabel
from outcomes.selectors import (
    agent_performance,
    strategy_leaderboard,
    strategy_performance,
    wilson_interval,
    winning_strategies,
)
from tests.factories import (
    AgentRunFactory,
    CampaignFactory,
    LeadFactory,
    MessageFactory,
    MissionFactory,
    OrganizationFactory,
)

pytestmark = pytest.mark.django_db

# 95% Wilson bounds solved by hand from the quadratic (p̂ - p)² = z²·p(1 - p)/n, z = 1.959964, rounded to 4 places.
WILSON_20_OF_40 = [0.352, 0.648]
WILSON_4_OF_40 = [0.0396, 0.2305]
WILSON_40_OF_40 = [0.9124, 1.0]


def _plant(
    org, framework, n, replies, *, opens=None, deals=None, tone="direct", channel="email", campaign=None, **fields
):
    """``n`` sent outcomes of one arm: the first ``replies`` replied (and the first ``opens`` opened, the first
    ``deals`` closed a deal, when given); ``fields`` go to every row."""
    lead = LeadFactory(organization=org)
    fields.setdefault("sent_at", timezone.now())
    firsts = {"opened": opens, "deal_closed": deals}
    OutcomeLabel.objects.bulk_create(
        OutcomeLabel(
            organization=org, lead=lead, campaign=campaign, framework=framework, tone=tone, channel=channel,
            delivered=True, replied=index < replies,
            **{flag: index < first for flag, first in firsts.items() if first is not None}, **fields,
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


def test_equal_rates_rank_by_the_chosen_metrics_own_interval_not_the_reply_rates(org):
    # Both open half their messages; X on twice the evidence. Y's replies must not decide an open-rate tie.
    _plant(org, "X", 60, 0, opens=30)
    _plant(org, "Y", 30, 15, opens=15)

    board = strategy_leaderboard(organization_id=org.pk, metric="open_rate", min_sample=30)
    by_reply = strategy_leaderboard(organization_id=org.pk, metric="reply_rate", min_sample=30)

    x, y = board["ranked"]
    assert (x["framework"], x["open_rate"], y["framework"], y["open_rate"]) == ("X", 0.5, "Y", 0.5)
    assert x["ci95"]["open_rate"][0] > y["ci95"]["open_rate"][0] and x["reply_rate_ci95"][0] < y["reply_rate_ci95"][0]
    assert _arms(winning_strategies(organization_id=org.pk, metric="open_rate", min_samples=30)) == ["X", "Y"]
    assert _arms(by_reply["ranked"]) == ["Y", "X"]


def test_an_average_deal_value_tie_goes_to_the_arm_with_more_deals_behind_it(org):
    _plant(org, "FEW", 30, 20, deals=2, deal_value=Decimal("500"))  # more replies, but two deals
    _plant(org, "MANY", 30, 0, deals=6, deal_value=Decimal("500"))

    board = strategy_leaderboard(organization_id=org.pk, metric="avg_deal_value", min_sample=30)

    assert [(row["framework"], row["avg_deal_value"]) for row in board["ranked"]] == [("MANY", 500.0), ("FEW", 500.0)]


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


class Refusing:
    """A provider that refuses every message for good (a 4xx: not retried)."""

    def send(self, message, *, custom_args):
        raise ProviderError("550 mailbox unavailable", status=400)


def test_a_send_that_failed_for_good_counts_nowhere(org, settings):
    """The outcome row is written before the provider call; a refused send keeps it, unstamped, and no rate (nor
    the personalizer's arm statistics, which read strategy_performance) may count it as sent."""
    settings.SENDGRID_API_KEY = ""  # the sandbox: builds the real request, sends nothing
    campaign = CampaignFactory(organization=org)
    mission = MissionFactory(organization=org, campaign=campaign)
    messages = MessageFactory.create_batch(
        3, organization=org, mission=mission, status=Message.Status.QUEUED, framework="PAS", tone="direct"
    )
    for message in messages[:2]:
        message_send(message_id=message.pk)
    with mock.patch("agents.sending.provider_for", return_value=Refusing()), pytest.raises(ProviderError):
        message_send(message_id=messages[2].pk)

    OutcomeLabel.objects.filter(message=messages[0]).update(delivered=True)  # the provider's webhook, later

    failed = OutcomeLabel.objects.get(message=messages[2])
    assert Message.objects.get(pk=messages[2].pk).status == Message.Status.FAILED and failed.sent_at is None
    assert OutcomeLabel.objects.filter(organization=org).count() == 3
    (arm,) = strategy_leaderboard(organization_id=org.pk, min_sample=1)["ranked"]
    assert (arm["framework"], arm["sent"], arm["delivery_rate"]) == ("PAS", 2, 0.5)
    assert [row["sent"] for row in strategy_performance(organization_id=org.pk)] == [2]
    assert [row["sent"] for row in winning_strategies(organization_id=org.pk, min_samples=1)] == [2]
    (row,) = agent_performance(organization=org, since=timezone.now() - dt.timedelta(days=1))
    assert row["outcomes"]["sent"] == 2 and [arm["sent"] for arm in row["strategies"]] == [2]


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


def test_agent_performance_breaks_each_campaign_down_by_strategy(org, campaigns):
    alpha, beta = campaigns
    _plant(org, "B", 40, 4, campaign=alpha, tone="friendly")
    _plant(org, "B", 30, 15, campaign=alpha, tone="friendly", channel="sms")
    _plant(org, "B", 5, 0, campaign=beta)

    rows = agent_performance(organization=org, min_sample=30)

    first, second, no_campaign = rows
    arms = [(arm["framework"], arm["tone"], arm["channel"], arm["exploring"]) for arm in first["strategies"]]
    assert arms == [
        ("B", "friendly", "sms", False),  # reply 50%, ranked first
        ("B", "friendly", "email", False),  # reply 10%
        ("A", "direct", "email", True),  # 10 sends: under the minimum, to explore
    ]
    sms, email, explore = first["strategies"]
    assert (sms["sent"], sms["replied"], sms["reply_rate"]) == (30, 15, 0.5)
    assert sms["ci95"]["reply_rate"] == list(wilson_interval(15, 30)) == sms["reply_rate_ci95"]
    assert email["ci95"]["reply_rate"] == WILSON_4_OF_40
    assert {"delivery_rate", "open_rate", "meeting_rate", "close_rate", "avg_deal_value"} <= set(explore)
    assert sum(arm["sent"] for arm in first["strategies"]) == first["outcomes"]["sent"] == 80
    assert [(arm["framework"], arm["sent"], arm["exploring"]) for arm in second["strategies"]] == [("B", 5, True)]
    assert no_campaign["strategies"] == []
    lenient = agent_performance(organization=org, campaign=alpha, min_sample=5, metric="open_rate")
    assert not any(arm["exploring"] for arm in lenient[0]["strategies"])


def test_agent_performance_for_one_agent(org, campaigns):
    alpha, _ = campaigns

    rows = agent_performance(organization=org, agent="personalizer")

    # Beta and the campaign-less missions had no personalizer runs and no outcomes.
    assert [row["campaign_id"] for row in rows] == [alpha.pk]
    assert [agent["agent"] for agent in rows[0]["agents"]] == ["personalizer"]
    assert rows[0]["agents"][0]["runs"] == 2
    assert rows[0]["outcomes"]["sent"] == 10 and [arm["framework"] for arm in rows[0]["strategies"]] == ["A"]


def test_agent_performance_refuses_an_unknown_metric(org):
    with pytest.raises(ValueError, match="Unknown metric"):
        agent_performance(organization=org, metric="vibes")


def test_agent_performance_counts_in_four_queries(org, campaigns, django_assert_num_queries):
    _plant(org, "B", 40, 4, campaign=campaigns[1])
    with django_assert_num_queries(4):
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
    assert (body["agent"], body["metric"], body["min_sample"]) == (None, "reply_rate", 30)
    assert [row["campaign_name"] for row in body["campaigns"]] == ["Alpha"]
    assert set(body["campaigns"][0]) == {"campaign_id", "campaign_name", "outcomes", "strategies", "agents"}
    (arm,) = body["campaigns"][0]["strategies"]
    assert (arm["framework"], arm["tone"], arm["sent"], arm["exploring"]) == ("A", "direct", 10, True)
    assert arm["ci95"]["reply_rate"] == list(wilson_interval(5, 10))
    assert body["campaigns"][0]["agents"][0]["success_rate_ci95"] == [0.3006, 0.9544]  # Wilson 3 of 4
    assert body["campaigns"][0]["outcomes"]["reply_rate"] == 0.5
    # agents.selectors.decision_stats, organization-wide: 3 + 2 in Alpha, 1 in beta, 1 without a campaign.
    assert body["organization_decisions"]["decisions"] == 7
    assert body["organization_decisions"]["layers"]["llm"]["count"] == 2


def test_agent_performance_api_for_one_agent_ranked_by_another_metric(api_client, org, campaigns):
    body = api_client.get(
        "/api/analytics/agent-performance", {"agent": "icp", "metric": "open_rate", "min_sample": 5}
    ).json()

    assert (body["agent"], body["metric"], body["min_sample"]) == ("icp", "open_rate", 5)
    assert [row["campaign_name"] for row in body["campaigns"]] == ["Alpha", "beta"]
    assert all([agent["agent"] for agent in row["agents"]] == ["icp"] for row in body["campaigns"])
    assert body["campaigns"][0]["strategies"][0]["exploring"] is False  # 10 sends >= 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"campaign": "abc"}, "campaign"),
        ({"campaign": "0"}, "campaign"),
        ({"campaign": "99999999999999999999"}, "campaign"),  # beyond a 64-bit id: a 400, not an overflow
        ({"agent": "robot"}, "agent"),
        ({"agent": "Personalizer"}, "agent"),  # the label is not the name
        ({"metric": "vibes"}, "metric"),
        ({"min_sample": "0"}, "min_sample"),
        ({"since": "last tuesday"}, "since"),
    ],
)
def test_agent_performance_api_rejects_bad_parameters(api_client, org, params, field):
    response = api_client.get("/api/analytics/agent-performance", params)

    assert response.status_code == 400 and list(response.json()) == [field]


def test_agent_performance_api_takes_the_largest_id(api_client, org):
    response = api_client.get("/api/analytics/agent-performance", {"campaign": 2**63 - 1})

    assert response.status_code == 400 and "No campaign" in response.json()["campaign"][0]


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


def test_the_schema_documents_the_agent_performance_parameters_and_strategies(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/analytics/agent-performance"]["get"]
    parameters = {parameter["name"]: parameter["schema"] for parameter in operation["parameters"]}
    assert set(parameters) == {"campaign", "agent", "since", "metric", "min_sample"}
    assert "personalizer" in parameters["agent"]["enum"] and parameters["campaign"]["maximum"] == 2**63 - 1
    components = schema["components"]["schemas"]
    assert {"agent", "metric", "min_sample"} <= set(components["AgentPerformanceOutput"]["properties"])
    strategies = components["CampaignPerformance"]["properties"]["strategies"]
    assert strategies["items"]["$ref"] == "#/components/schemas/CampaignStrategy"
    assert {"framework", "tone", "channel", "exploring", "ci95"} <= set(components["CampaignStrategy"]["properties"])


# --- Admin ----------------------------------------------------------------------------------------------------


def test_the_what_works_page_shows_each_campaigns_strategies_and_filters_by_agent(admin_client, org, campaigns):
    alpha, _ = campaigns
    _plant(org, "B", 40, 4, campaign=alpha, tone="friendly")
    url = "/admin/outcomes/outcomelabel/what-works/"
    params = {"organization": org.pk, "metric": "reply_rate", "min_sample": 30}

    page = admin_client.get(url, params).content.decode()
    only_icp = admin_client.get(url, {**params, "agent": "icp"}).content.decode()

    agents = page[page.index('id="agent-performance"') :]
    alpha_section = agents[agents.index("Alpha") : agents.index("beta")]
    strategies = alpha_section[alpha_section.index("Strategies") : alpha_section.index("<h4>Agents")]
    assert "friendly" in strategies and "10.0% [4.0%, 23.1%]" in strategies  # 4 of 40 with its Wilson interval
    assert strategies.index("friendly") < strategies.index("exploring")  # ranked B first, then A to explore
    assert "Personalizer" in alpha_section
    icp_agents = only_icp[only_icp.index('id="agent-performance"') :]
    assert "ICP intelligence" in icp_agents and "<td>Personalizer</td>" not in icp_agents
