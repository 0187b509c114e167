"""Reputation of a sending domain (or one mailbox) from its outcomes over a rolling window.

The formula, over the email outcomes sent in the last ``window_days`` (28 by default)::

    bounce_rate    = hard or blocked bounces / sends      (a bounce with no type counts as hard)
    deferral_rate  = soft bounces / sends                 (a soft bounce is a deferral: retried, not lost)
    complaint_rate = spam reports / sends
    reply_rate     = replies / sends

    score = clamp(1.0 − 10 × bounce_rate − 100 × complaint_rate − 2 × deferral_rate
                  + min(0.5 × reply_rate, 0.05), 0, 1)

The weights put each auto-pause threshold in terms of the score: a 2% bounce rate costs 0.2 and a 0.1%
complaint rate costs 0.1 (mailbox providers treat complaints about ten times as harshly as bounces),
5% deferrals cost 0.1, and replies earn at most +0.05 (a 10% reply rate), so engagement can soften but never
hide a bounce or complaint problem. Below ``MIN_SENDS`` (20) sends the rates are noise: the score is a
neutral 1.0 with the note "insufficient data", and no rate threshold applies.
"""

import datetime as dt

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from agents.models import Mailbox, SendingDomain
from outcomes.models import OutcomeLabel

WINDOW_DAYS = 28
MIN_SENDS = 20
BOUNCE_WEIGHT = 10.0
COMPLAINT_WEIGHT = 100.0
DEFERRAL_WEIGHT = 2.0
REPLY_WEIGHT = 0.5
REPLY_BONUS_CAP = 0.05
FORMULA = (
    "clamp(1 - 10*bounce_rate - 100*complaint_rate - 2*deferral_rate + min(0.5*reply_rate, 0.05), 0, 1); "
    f"neutral 1.0 below {MIN_SENDS} sends"
)

_SOFT = OutcomeLabel.BounceType.SOFT


def _outcomes(*, window_days: int) -> QuerySet:
    since = timezone.now() - dt.timedelta(days=window_days)
    # An outcome without sent_at (imported, or the send time was lost) counts from when it was recorded.
    in_window = Q(sent_at__gte=since) | Q(sent_at__isnull=True, created_at__gte=since)
    return OutcomeLabel.objects.filter(in_window, channel="email")


def outcome_stats(outcomes: QuerySet, *, window_days: int) -> dict:
    counts = outcomes.aggregate(
        sends=Count("id"),
        bounces=Count("id", filter=Q(bounced=True) & ~Q(bounce_type=_SOFT)),
        deferrals=Count("id", filter=Q(bounce_type=_SOFT)),
        complaints=Count("id", filter=Q(spam_reported=True)),
        replies=Count("id", filter=Q(replied=True)),
    )
    sends = counts["sends"]

    def rate(n: int) -> float:
        return round(n / sends, 6) if sends else 0.0

    return {
        "window_days": window_days,
        **counts,
        "bounce_rate": rate(counts["bounces"]),
        "deferral_rate": rate(counts["deferrals"]),
        "complaint_rate": rate(counts["complaints"]),
        "reply_rate": rate(counts["replies"]),
    }


def score_from(stats: dict) -> float:
    """The documented formula applied to ``outcome_stats``; 1.0 when there are too few sends."""
    if stats["sends"] < MIN_SENDS:
        return 1.0
    score = (
        1.0
        - BOUNCE_WEIGHT * stats["bounce_rate"]
        - COMPLAINT_WEIGHT * stats["complaint_rate"]
        - DEFERRAL_WEIGHT * stats["deferral_rate"]
        + min(REPLY_WEIGHT * stats["reply_rate"], REPLY_BONUS_CAP)
    )
    return round(min(1.0, max(0.0, score)), 4)


def _scored(outcomes: QuerySet, window_days: int) -> tuple[float, dict]:
    stats = outcome_stats(outcomes, window_days=window_days)
    inputs = {**stats, "formula": FORMULA}
    if stats["sends"] < MIN_SENDS:
        inputs["note"] = f"insufficient data: {stats['sends']} sends (< {MIN_SENDS}) in {window_days} days"
    return score_from(stats), inputs


def reputation(domain: SendingDomain, *, window_days: int = WINDOW_DAYS) -> tuple[float, dict]:
    """``(score, inputs)`` for the domain: the score in [0, 1] and the counts and rates it came from."""
    return _scored(_outcomes(window_days=window_days).filter(message__sending_domain=domain), window_days)


def mailbox_reputation(mailbox: Mailbox, *, window_days: int = WINDOW_DAYS) -> tuple[float, dict]:
    return _scored(_outcomes(window_days=window_days).filter(message__mailbox=mailbox), window_days)
