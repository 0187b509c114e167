import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from outcomes.selectors import strategy_performance, wilson_interval, winning_strategies
from tests.factories import MissionFactory, OrganizationFactory, OutcomeLabelFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def mission():
    return MissionFactory(organization=OrganizationFactory())


def _outcome(mission, framework="PAS", tone="friendly", channel="email", **fields):
    return OutcomeLabelFactory(
        organization=mission.organization,
        message__mission=mission,
        message__channel=channel,
        framework=framework,
        tone=tone,
        **fields,
    )


@pytest.fixture
def outcomes(mission):
    _outcome(mission, opened=True, replied=True, meeting_booked=True, deal_closed=True, deal_value=Decimal("1000.50"))
    _outcome(mission, opened=True)
    _outcome(mission)
    _outcome(mission, delivered=False, bounced=True)
    _outcome(mission, "AIDA", "direct", replied=True, deal_closed=True, deal_value=Decimal("2000"))
    _outcome(mission, "AIDA", "direct", replied=True, meeting_booked=True)
    _outcome(mission, channel="sms", replied=True)
    # Another organization's outcome never counts.
    _outcome(MissionFactory(), replied=True)
    return mission


def _by_arm(rows):
    return {(row["framework"], row["tone"], row["channel"]): row for row in rows}


def test_strategy_performance_counts_and_rates_per_arm(outcomes):
    rows = _by_arm(strategy_performance(organization_id=outcomes.organization_id))

    assert set(rows) == {("PAS", "friendly", "email"), ("AIDA", "direct", "email"), ("PAS", "friendly", "sms")}
    pas = rows[("PAS", "friendly", "email")]
    assert {k: pas[k] for k in ("sent", "delivered", "opened", "replied", "meetings", "deals", "revenue")} == {
        "sent": 4,
        "delivered": 3,
        "opened": 2,
        "replied": 1,
        "meetings": 1,
        "deals": 1,
        "revenue": 1000.5,
    }
    assert pas["delivery_rate"] == 0.75
    assert pas["open_rate"] == 0.5
    assert pas["reply_rate"] == 0.25
    assert pas["meeting_rate"] == 0.25
    assert pas["close_rate"] == 0.25
    assert pas["avg_deal_value"] == 1000.5
    assert pas["reply_rate_ci95"] == [0.0456, 0.6994]  # Wilson interval of 1/4

    aida = rows[("AIDA", "direct", "email")]
    assert (aida["sent"], aida["replied"], aida["deals"], aida["revenue"]) == (2, 2, 1, 2000.0)
    assert aida["reply_rate"] == 1.0 and aida["close_rate"] == 0.5 and aida["avg_deal_value"] == 2000.0
    assert rows[("PAS", "friendly", "sms")]["sent"] == 1


def test_strategy_performance_is_one_query(outcomes, django_assert_num_queries):
    with django_assert_num_queries(1):
        strategy_performance(organization_id=outcomes.organization_id)


def test_strategy_performance_filters_by_campaign_and_time(outcomes):
    other_mission = MissionFactory(organization=outcomes.organization)
    _outcome(other_mission, "BAB", "professional")
    _outcome(outcomes, "FAB", "direct", sent_at=timezone.now() - dt.timedelta(days=30))
    org = outcomes.organization_id

    by_campaign = _by_arm(strategy_performance(organization_id=org, campaign_id=outcomes.campaign_id))
    recent = _by_arm(strategy_performance(organization_id=org, since=timezone.now() - dt.timedelta(days=10)))

    assert ("BAB", "professional", "email") not in by_campaign
    assert ("FAB", "direct", "email") in by_campaign
    assert ("FAB", "direct", "email") not in recent
    assert ("BAB", "professional", "email") in recent


def test_wilson_interval_contains_the_rate_for_every_arm(outcomes):
    for row in strategy_performance(organization_id=outcomes.organization_id):
        low, high = row["reply_rate_ci95"]
        assert 0 <= low <= row["reply_rate"] <= high <= 1


@pytest.mark.parametrize(("successes", "n"), [(0, 10), (10, 10), (3, 7), (40, 200)])
def test_wilson_interval_bounds(successes, n):
    low, high = wilson_interval(successes, n)

    assert 0 <= low <= successes / n <= high <= 1
    assert high - low < 1


def test_wilson_interval_without_data_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_winning_strategies_keeps_arms_with_enough_sends_best_first(outcomes):
    org = outcomes.organization_id

    top = winning_strategies(organization_id=org, min_samples=2)
    only_pas = winning_strategies(organization_id=org, min_samples=3)

    assert [(s["framework"], s["tone"], s["channel"]) for s in top] == [
        ("AIDA", "direct", "email"),
        ("PAS", "friendly", "email"),
    ]
    assert [(s["framework"], s["sent"]) for s in only_pas] == [("PAS", 4)]
    assert winning_strategies(organization_id=org) == []  # default: 10 sends at least


def test_winning_strategies_by_another_metric(outcomes):
    by_open_rate = winning_strategies(organization_id=outcomes.organization_id, metric="open_rate", min_samples=2)

    assert [s["framework"] for s in by_open_rate] == ["PAS", "AIDA"]


def test_winning_strategies_refuses_an_unknown_metric(outcomes):
    with pytest.raises(ValueError, match="Unknown metric"):
        winning_strategies(organization_id=outcomes.organization_id, metric="vibes")
