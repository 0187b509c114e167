"""Reads over outcome labels: how each strategy (framework, tone, channel) performs.

Everything is counted by the database (one grouped query); Python only turns counts into rates.
Rates are over messages sent (one OutcomeLabel per sent message), as in seed 004. The row is written just before
the provider call and stamped with ``sent_at`` once the provider took the message, so only stamped rows count: a
send that failed for good keeps its row (``sent_at`` NULL) but never went out and must not dilute a rate.
"""

import math
from datetime import datetime, timedelta

from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet, Sum, Value
from django.db.models.functions import Lower, StrIndex, Substr
from django.utils import timezone

from agents.models import AgentRun, Campaign, Lead, Organization, Suppression
from outcomes.models import OutcomeLabel

Z_95 = 1.959964
METRICS = ("delivery_rate", "open_rate", "reply_rate", "meeting_rate", "close_rate", "avg_deal_value")
# Each rate over sends and the count it is the share of (avg_deal_value is not a proportion: no interval).
RATE_COUNTS = {
    "delivery_rate": "delivered",
    "open_rate": "opened",
    "reply_rate": "replied",
    "meeting_rate": "meetings",
    "close_rate": "deals",
}
DECIDING_LAYERS = (AgentRun.Layer.STATE_MACHINE, AgentRun.Layer.RULES, AgentRun.Layer.LLM)
# What works ranks an arm from this many sends: the usual floor before a rate is read as more than noise.
DEFAULT_MIN_SAMPLE = 30


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: honest for small samples and rates near 0 or 1."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def funnel_aggregates() -> dict:
    """The outcome funnel as aggregate expressions, for .aggregate() or .annotate()."""
    return {
        "delivered": Count("id", filter=Q(delivered=True)),
        "opened": Count("id", filter=Q(opened=True)),
        "replied": Count("id", filter=Q(replied=True)),
        "meetings": Count("id", filter=Q(meeting_booked=True)),
        "deals": Count("id", filter=Q(deal_closed=True)),
        "revenue_sum": Sum("deal_value", filter=Q(deal_closed=True)),
    }


STRATEGY_FIELDS = ("framework", "tone", "channel")


def _grouped_counts(queryset: QuerySet[OutcomeLabel], *by: str) -> QuerySet:
    """The funnel counts per (``*by``, framework, tone, channel), in one grouped query."""
    return (
        queryset.values(*by, *STRATEGY_FIELDS)
        .annotate(sent=Count("id"), **funnel_aggregates())
        .order_by(*by, *STRATEGY_FIELDS)
    )


def _with_rates(row: dict) -> dict:
    sent, deals = row["sent"], row["deals"]
    revenue = float(row.pop("revenue_sum") or 0)
    low, high = wilson_interval(row["replied"], sent)
    return {
        **row,
        "revenue": round(revenue, 2),
        "delivery_rate": _rate(row["delivered"], sent),
        "open_rate": _rate(row["opened"], sent),
        "reply_rate": _rate(row["replied"], sent),
        "meeting_rate": _rate(row["meetings"], sent),
        "close_rate": _rate(deals, sent),
        "avg_deal_value": round(revenue / deals, 2) if deals else 0.0,
        "reply_rate_ci95": [low, high],
    }


def _outcomes(*, organization_id: int, campaign_id: int | None = None, since: datetime | None = None):
    """The organization's outcomes of messages that went out: every rate here and in the personalizer's arm
    statistics is over these. A row without ``sent_at`` is a send in flight or one that failed for good."""
    queryset = OutcomeLabel.objects.filter(organization_id=organization_id, sent_at__isnull=False)
    if campaign_id is not None:
        queryset = queryset.filter(campaign_id=campaign_id)
    if since is not None:
        queryset = queryset.filter(sent_at__gte=since)
    return queryset


def strategy_performance(
    *, organization_id: int, campaign_id: int | None = None, since: datetime | None = None
) -> list[dict]:
    """Per (framework, tone, channel): counts, rates over sent, and a 95% Wilson interval of the reply rate."""
    rows = _grouped_counts(_outcomes(organization_id=organization_id, campaign_id=campaign_id, since=since))
    return [_with_rates(row) for row in rows]


def winning_strategies(*, organization_id: int, metric: str = "reply_rate", min_samples: int = 10) -> list[dict]:
    """Strategies with at least ``min_samples`` sends, best first by ``metric``.

    Ties go to the arm with more evidence for ``metric`` (see ``_rank_key``), then to more sends.
    """
    _check_metric(metric)
    rows = _grouped_counts(_outcomes(organization_id=organization_id)).filter(sent__gte=min_samples)
    strategies = [_with_rates(row) for row in rows]
    strategies.sort(key=_rank_key(metric), reverse=True)
    return strategies


def _rank_key(metric: str):
    """Best first (sort with ``reverse=True``) by ``metric``; ties go to the higher lower bound of the metric's own
    95% Wilson interval (the same rate on more evidence), then to more sends. The average deal value is no
    proportion and has no interval: its ties go to the arm with more closed deals behind the average."""
    count = RATE_COUNTS.get(metric)

    def evidence(row: dict) -> float:
        return wilson_interval(row[count], row["sent"])[0] if count else row["deals"]

    return lambda row: (row[metric], evidence(row), row["sent"])


# --- What works: strategies to exploit or explore, and how each campaign's agents performed ---------------


def _with_intervals(row: dict) -> dict:
    """A 95% Wilson interval for every rate over sends, so small arms cannot pass for winners."""
    row["ci95"] = {rate: list(wilson_interval(row[count], row["sent"])) for rate, count in RATE_COUNTS.items()}
    return row


def strategy_leaderboard(
    *,
    organization_id: int,
    metric: str = "reply_rate",
    min_sample: int = DEFAULT_MIN_SAMPLE,
    channel: str | None = None,
    since: datetime | None = None,
) -> dict[str, list[dict]]:
    """Every (framework, tone, channel) arm with its rates and intervals, split by evidence.

    ``ranked``: arms with at least ``min_sample`` sends, best first as in ``winning_strategies`` (exploit).
    ``exploring``: arms still under it, most sends first; their rates are too uncertain to rank (explore).
    """
    _check_metric(metric)
    queryset = _outcomes(organization_id=organization_id, since=since)
    if channel:
        queryset = queryset.filter(channel=channel)
    return _by_evidence(_grouped_counts(queryset), metric=metric, min_sample=min_sample)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; use one of {', '.join(METRICS)}.")


def _by_evidence(groups, *, metric: str, min_sample: int) -> dict[str, list[dict]]:
    """Grouped counts as rate rows with intervals, split at ``min_sample`` sends: ``ranked`` best first by
    ``metric``, ``exploring`` most sends first (stable: ties keep framework, tone, channel order)."""
    rows = [_with_intervals(_with_rates(row)) for row in groups]
    ranked = sorted((row for row in rows if row["sent"] >= min_sample), key=_rank_key(metric), reverse=True)
    exploring = [row for row in rows if row["sent"] < min_sample]
    exploring.sort(key=lambda row: -row["sent"])
    return {"ranked": ranked, "exploring": exploring}


def _agent_row(row: dict) -> dict:
    """One agent's runs in one campaign; the layer split has the shape of agents.selectors.decision_stats."""
    runs, failures = row["runs"], row["failures"]
    per_layer = {layer: row[f"layer_{layer}"] for layer in DECIDING_LAYERS}
    decisions = sum(per_layer.values())
    average = row["avg_duration_ms"], row["avg_decision_ms"]
    return {
        "agent": row["agent"],
        "label": AgentRun.Agent(row["agent"]).label if row["agent"] in AgentRun.Agent.values else row["agent"],
        "runs": runs,
        "successes": runs - failures,
        "failures": failures,
        "success_rate": _rate(runs - failures, runs),
        "success_rate_ci95": list(wilson_interval(runs - failures, runs)),
        "decisions": decisions,
        "layers": {
            layer: {"count": n, "percent": round(100 * n / decisions, 1) if decisions else 0.0}
            for layer, n in per_layer.items()
        },
        "avg_duration_ms": round(average[0], 2) if average[0] is not None else None,
        "avg_decision_ms": round(average[1], 2) if average[1] is not None else None,
    }


def _agent_rows(runs: QuerySet[AgentRun]) -> dict[int | None, list[dict]]:
    grouped = (
        runs.values("mission__campaign", "agent")
        .annotate(
            runs=Count("id"),
            failures=Count("id", filter=Q(success=False)),
            avg_duration_ms=Avg("duration_ms"),
            avg_decision_ms=Avg("decision_ms"),
            **{f"layer_{layer}": Count("id", filter=Q(decision_layer=layer)) for layer in DECIDING_LAYERS},
        )
        .order_by()
    )
    pipeline_order = {agent: index for index, agent in enumerate(AgentRun.Agent.values)}
    by_campaign: dict[int | None, list[dict]] = {}
    for row in sorted(grouped, key=lambda r: pipeline_order.get(r["agent"], len(pipeline_order))):
        by_campaign.setdefault(row["mission__campaign"], []).append(_agent_row(row))
    return by_campaign


def _empty_funnel() -> dict:
    return {"sent": 0, "delivered": 0, "opened": 0, "replied": 0, "meetings": 0, "deals": 0, "revenue_sum": None}


def _campaign_strategies(outcomes: QuerySet[OutcomeLabel], *, metric: str, min_sample: int) -> dict:
    """Per campaign: its (framework, tone, channel) arms as in ``strategy_leaderboard``, in one grouped query;
    ranked arms first (best first by ``metric``), then those under ``min_sample`` sends flagged ``exploring``."""
    groups: dict[int | None, list[dict]] = {}
    for row in _grouped_counts(outcomes, "campaign"):
        groups.setdefault(row.pop("campaign"), []).append(row)
    strategies = {}
    for campaign_id, rows in groups.items():
        board = _by_evidence(rows, metric=metric, min_sample=min_sample)
        strategies[campaign_id] = [
            *({**row, "exploring": False} for row in board["ranked"]),
            *({**row, "exploring": True} for row in board["exploring"]),
        ]
    return strategies


def agent_performance(
    *,
    organization: Organization,
    campaign: Campaign | None = None,
    since: datetime | None = None,
    agent: str | None = None,
    metric: str = "reply_rate",
    min_sample: int = DEFAULT_MIN_SAMPLE,
) -> list[dict]:
    """Per campaign: each agent's runs (successes, failures, decision-layer split, latency) beside the outcome
    rates of the messages that campaign sent, overall (``outcomes``) and per framework x tone x channel
    (``strategies``, with Wilson intervals and the minimum sample as in ``strategy_leaderboard``). Missions
    without a campaign are one row with ``campaign_id`` None.

    ``agent`` keeps only that agent's runs. The outcome figures stay the campaign's: a message is the work of the
    whole pipeline (the personalizer picks its framework and tone, the outreach agent sends it), so the rates of
    its strategies are not split by agent. A campaign is listed when it has runs of the agents shown or outcomes.

    Four queries whatever the size: runs grouped by (campaign, agent), outcomes grouped by campaign, outcomes
    grouped by (campaign, framework, tone, channel), names.
    """
    _check_metric(metric)
    runs = AgentRun.objects.filter(mission__organization=organization)
    if campaign is not None:
        runs = runs.filter(mission__campaign=campaign)
    if since is not None:
        runs = runs.filter(created_at__gte=since)
    if agent is not None:
        runs = runs.filter(agent=agent)
    agents = _agent_rows(runs)
    outcomes = _outcomes(organization_id=organization.pk, campaign_id=campaign.pk if campaign else None, since=since)
    funnels = {
        row.pop("campaign"): row
        for row in outcomes.values("campaign").annotate(sent=Count("id"), **funnel_aggregates()).order_by()
    }
    strategies = _campaign_strategies(outcomes, metric=metric, min_sample=min_sample)
    ids = set(agents) | set(funnels) | ({campaign.pk} if campaign is not None else set())
    names = dict(Campaign.objects.filter(organization=organization, pk__in=ids - {None}).values_list("pk", "name"))
    rows = [
        {
            "campaign_id": campaign_id,
            "campaign_name": names.get(campaign_id, "") if campaign_id is not None else "",
            "outcomes": _with_intervals(_with_rates(funnels.get(campaign_id) or _empty_funnel())),
            "strategies": strategies.get(campaign_id, []),
            "agents": agents.get(campaign_id, []),
        }
        for campaign_id in ids
    ]
    rows.sort(key=lambda row: (row["campaign_id"] is None, row["campaign_name"].lower(), row["campaign_id"] or 0))
    return rows


# --- Training data ----------------------------------------------------------------------------------------

# Silence this long after a send is itself the answer: replies and bounces come within days, not weeks.
TRAINING_SETTLE_DAYS = 7
# Signals after which a row's label is known. More may follow (a reply can become a meeting, then a deal), but
# the message has already shown whether it worked; a later export with a higher quality bar still sees the row.
TRAINING_TERMINAL_SIGNALS = (
    Q(bounced=True)
    | Q(replied=True)
    | Q(meeting_booked=True)
    | Q(meeting_completed=True)
    | Q(deal_closed=True)
    | Q(deal_lost=True)
)


def _lead_opted_out() -> Q:
    """The lead opted out anywhere: an unsubscribe or spam report on any of their outcomes, the suppressed state,
    or a suppression entry of the organization for their email, their email's domain or their phone."""
    opted_out = OutcomeLabel.objects.filter(lead_id=OuterRef("lead_id")).filter(
        Q(unsubscribed=True) | Q(spam_reported=True)
    )
    entries = Suppression.objects.filter(organization_id=OuterRef("organization_id")).filter(
        Q(kind=Suppression.Kind.EMAIL, value=OuterRef("_lead_email"))
        | Q(kind=Suppression.Kind.DOMAIN, value=OuterRef("_lead_domain"))
        | (Q(kind=Suppression.Kind.PHONE, value=OuterRef("lead__phone")) & ~Q(value=""))
    )
    return Q(lead__state=Lead.State.SUPPRESSED) | Exists(opted_out) | Exists(entries)


def training_ready(
    *, organization_id: int | None = None, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[OutcomeLabel]:
    """Outcome labels a model may learn from: seed 004's ``training_ready_outcomes`` view.

    * **complete**: sent (``sent_at`` set), and either a terminal signal (bounce, reply, meeting, deal won or
      lost) or sent at least ``TRAINING_SETTLE_DAYS`` ago;
    * **clean**: the lead did not opt out (see ``_lead_opted_out``) and the row has a message body; opens by
      mail proxies and clicks by link scanners never reached the label (the tracker keeps them apart);
    * **unused**: ``included_in_training`` is False.

    ``since`` (inclusive) and ``until`` (exclusive) bound ``sent_at``; ``organization_id`` None means every
    organization. Unordered: callers that stream order by ``id``.
    """
    settled = timezone.now() - timedelta(days=TRAINING_SETTLE_DAYS)
    queryset = OutcomeLabel.objects.filter(sent_at__isnull=False, included_in_training=False).exclude(message_body="")
    if organization_id is not None:
        queryset = queryset.filter(organization_id=organization_id)
    if since is not None:
        queryset = queryset.filter(sent_at__gte=since)
    if until is not None:
        queryset = queryset.filter(sent_at__lt=until)
    queryset = queryset.filter(TRAINING_TERMINAL_SIGNALS | Q(sent_at__lte=settled))
    return without_opted_out(queryset).order_by()


def without_opted_out(queryset: QuerySet[OutcomeLabel]) -> QuerySet[OutcomeLabel]:
    """Drop the rows of leads who opted out: no model learns from someone who asked us to stop."""
    return queryset.alias(
        _lead_email=Lower("lead__email"),
        _lead_domain=Lower(Substr("lead__email", StrIndex("lead__email", Value("@")) + 1)),
    ).exclude(_lead_opted_out())
