"""Reads over outcome labels: how each strategy (framework, tone, channel) performs.

Everything is counted by the database (one grouped query); Python only turns counts into rates.
Rates are over messages sent (one OutcomeLabel per sent message), as in seed 004.
"""

import math
from datetime import datetime

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from outcomes.models import OutcomeLabel

Z_95 = 1.959964
METRICS = ("delivery_rate", "open_rate", "reply_rate", "meeting_rate", "close_rate", "avg_deal_value")


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


def _grouped_counts(queryset: QuerySet[OutcomeLabel]) -> QuerySet:
    return (
        queryset.values("framework", "tone", "channel")
        .annotate(sent=Count("id"), **funnel_aggregates())
        .order_by("framework", "tone", "channel")
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
    queryset = OutcomeLabel.objects.filter(organization_id=organization_id)
    if campaign_id is not None:
        queryset = queryset.filter(campaign_id=campaign_id)
    if since is not None:
        # Outcomes without a send time (not yet stamped by the outreach agent) count from creation.
        queryset = queryset.alias(when=Coalesce("sent_at", "created_at")).filter(when__gte=since)
    return queryset


def strategy_performance(
    *, organization_id: int, campaign_id: int | None = None, since: datetime | None = None
) -> list[dict]:
    """Per (framework, tone, channel): counts, rates over sent, and a 95% Wilson interval of the reply rate."""
    rows = _grouped_counts(_outcomes(organization_id=organization_id, campaign_id=campaign_id, since=since))
    return [_with_rates(row) for row in rows]


def winning_strategies(*, organization_id: int, metric: str = "reply_rate", min_samples: int = 10) -> list[dict]:
    """Strategies with at least ``min_samples`` sends, best first by ``metric``.

    Ties go to the arm whose reply-rate interval has the higher lower bound (more evidence), then to more sends.
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; use one of {', '.join(METRICS)}.")
    rows = _grouped_counts(_outcomes(organization_id=organization_id)).filter(sent__gte=min_samples)
    strategies = [_with_rates(row) for row in rows]
    strategies.sort(key=lambda s: (s[metric], s["reply_rate_ci95"][0], s["sent"]), reverse=True)
    return strategies
