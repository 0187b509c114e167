"""Promote an A/B test's challenger when it truly wins, retire it when it does not.

The score of an arm is the seed's: close rate × 0.5 + meeting rate × 0.3 + reply rate × 0.2. It is the mean of
a per-message score (``0.5·deal + 0.3·meeting + 0.2·reply``), so the two arms are compared with **Welch's
t-test on the per-message scores, one-sided, at the 95% level** (α = 0.05). The challenger is promoted to 100%
only when all of these hold:

* each arm has the minimum exposure: the challenger has been deployed ``min_days`` and each arm has sent
  ``min_messages_per_arm`` messages since then (only messages sent since the challenger's deployment count, for
  both arms, so both are measured over the same weeks);
* its score is at least ``MIN_LIFT`` (5%) above the champion's, *and* the difference is significant;
* guardrails: its unsubscribe rate is not more than ``UNSUBSCRIBE_TOLERANCE`` above the champion's and its spam
  complaint rate not more than ``SPAM_TOLERANCE`` above (absolute rate differences) — a breach counts when the
  excess is also significant (one-sided two-proportion z-test at α), so a few unlucky opt-outs in a small arm do
  not retire a better model.

**Triggered analysis.** When both arms are policy models, the personalizer records for every message whether
the other arm would have sent that lead something different (``ab_trigger`` in training/policy.py: no arm
explores and the arms' best strategies differ). Leads the arms treat alike add only noise, so the score test
runs on the triggered messages only, and the lift is the *diluted* lift: the triggered score difference times
the triggered share of all messages, over the champion's score on all its messages — what the challenger would
change across all traffic. Exposure and guardrails count all messages. A challenger that would send what the
champion sends to (nearly) every lead changes nothing and is retired. Messages sent before the trigger was
recorded, and the baseline arm, are compared whole.

Otherwise, once the exposure is reached, it is retired. Before that the decision is ``waiting``. Every look is
stored as a ``PromotionDecision`` with both arms' figures. Without a champion the challenger is measured against
the baseline arm: messages written without a model (``model_version`` empty).
"""

import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, IntegerField, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from outcomes.models import OutcomeLabel
from training import registry
from training.models import ModelVersion, PromotionDecision

logger = logging.getLogger("rex.training")

WEIGHTS = {"deal": 0.5, "meeting": 0.3, "reply": 0.2}
MIN_LIFT = 0.05
ALPHA = 0.05
UNSUBSCRIBE_TOLERANCE = 0.005  # half a percentage point
SPAM_TOLERANCE = 0.001  # mailbox providers act on complaint rates around 0.1-0.3%
DEFAULT_MIN_DAYS = 7
DEFAULT_MIN_MESSAGES = 200


@dataclass(frozen=True)
class ArmFigures:
    messages: int
    replies: int
    meetings: int
    deals: int
    unsubscribes: int
    spam_reports: int
    score: float
    score_variance: float

    def rate(self, count: int) -> float:
        return count / self.messages if self.messages else 0.0


def arm_figures(outcomes: QuerySet) -> ArmFigures:
    """Counts of one arm in one aggregate query, with the mean and sample variance of the per-message score
    (the score is linear in three 0/1 flags, so both follow from the counts and the pairwise co-occurrences)."""
    deal, meeting, reply = Q(deal_closed=True), Q(meeting_booked=True), Q(replied=True)
    counts = outcomes.aggregate(
        n=Count("id"),
        d=Count("id", filter=deal),
        m=Count("id", filter=meeting),
        r=Count("id", filter=reply),
        dm=Count("id", filter=deal & meeting),
        dr=Count("id", filter=deal & reply),
        mr=Count("id", filter=meeting & reply),
        unsub=Count("id", filter=Q(unsubscribed=True)),
        spam=Count("id", filter=Q(spam_reported=True)),
    )
    n = counts["n"]
    wd, wm, wr = WEIGHTS["deal"], WEIGHTS["meeting"], WEIGHTS["reply"]
    total = wd * counts["d"] + wm * counts["m"] + wr * counts["r"]
    squares = (
        wd * wd * counts["d"]
        + wm * wm * counts["m"]
        + wr * wr * counts["r"]
        + 2 * (wd * wm * counts["dm"] + wd * wr * counts["dr"] + wm * wr * counts["mr"])
    )
    mean = total / n if n else 0.0
    variance = max(0.0, (squares - n * mean * mean) / (n - 1)) if n > 1 else 0.0
    return ArmFigures(
        messages=n,
        replies=counts["r"],
        meetings=counts["m"],
        deals=counts["d"],
        unsubscribes=counts["unsub"],
        spam_reports=counts["spam"],
        score=mean,
        score_variance=variance,
    )


def welch_p_value(challenger: ArmFigures, champion: ArmFigures) -> float:
    """One-sided p-value of "the challenger's mean score is higher" (Welch's t-test)."""
    from scipy import stats  # ~75 MB: loaded by the promotion check only, not by every process that imports admin

    se2_a = challenger.score_variance / challenger.messages
    se2_b = champion.score_variance / champion.messages
    difference = challenger.score - champion.score
    if se2_a + se2_b == 0:
        return 0.0 if difference > 0 else 1.0
    t = difference / math.sqrt(se2_a + se2_b)
    df = (se2_a + se2_b) ** 2 / (
        (se2_a**2 / (challenger.messages - 1) if challenger.messages > 1 else 0)
        + (se2_b**2 / (champion.messages - 1) if champion.messages > 1 else 0)
        or 1e-12
    )
    return float(stats.t.sf(t, df))


def _significantly_higher(count_a: int, n_a: int, count_b: int, n_b: int) -> bool:
    """One-sided two-proportion z-test at ALPHA: is rate a truly above rate b (not a few unlucky messages)?"""
    from scipy import stats

    pooled = (count_a + count_b) / (n_a + n_b) if n_a + n_b else 0.0
    spread = math.sqrt(pooled * (1 - pooled) * (1 / max(n_a, 1) + 1 / max(n_b, 1)))
    if spread == 0:
        return count_a / max(n_a, 1) > count_b / max(n_b, 1)
    z = (count_a / max(n_a, 1) - count_b / max(n_b, 1)) / spread
    return float(stats.norm.sf(z)) < ALPHA


def _guardrail_breach(challenger: ArmFigures, champion: ArmFigures) -> str:
    """A guardrail holds unless the challenger's rate is above the champion's by more than the tolerance *and*
    significantly so: two unlucky unsubscribes in 200 messages are noise, not a worse model."""
    checks = (
        ("unsubscribe", challenger.unsubscribes, champion.unsubscribes, UNSUBSCRIBE_TOLERANCE),
        ("spam complaint", challenger.spam_reports, champion.spam_reports, SPAM_TOLERANCE),
    )
    for name, ours, theirs, tolerance in checks:
        excess = challenger.rate(ours) - champion.rate(theirs)
        if excess > tolerance and _significantly_higher(ours, challenger.messages, theirs, champion.messages):
            return f"{name} rate {excess:+.2%} above the champion's (tolerance {tolerance:.2%}, significant)"
    return ""


def _verdict(lift: float, breach: str, p_value: float) -> tuple[str, str]:
    if breach:
        return PromotionDecision.Outcome.RETIRED, f"Guardrail: {breach}."
    if lift < MIN_LIFT:
        return PromotionDecision.Outcome.RETIRED, f"Score lift {lift:+.1%} is below the required {MIN_LIFT:.0%}."
    if p_value >= ALPHA:
        return PromotionDecision.Outcome.RETIRED, (
            f"Score lift {lift:+.1%} is not significant (Welch one-sided p = {p_value:.3f} ≥ {ALPHA})."
        )
    return PromotionDecision.Outcome.PROMOTED, (
        f"Score lift {lift:+.1%}, significant (Welch one-sided p = {p_value:.4f} < {ALPHA}); guardrails hold."
    )


def _arm_outcomes(version: ModelVersion | None, kind: str, since: datetime) -> QuerySet:
    outcomes = OutcomeLabel.objects.filter(sent_at__gte=since)
    if version is not None:
        return outcomes.filter(registry.attributed_to(version))
    # The baseline arm: messages no model of this kind produced (nor, for a policy, chose the strategy of).
    # The JSON key is coalesced: a missing key is NULL, and NOT (NULL IN ...) would drop the row.
    baseline = outcomes.exclude(model_version__kind=kind)
    if kind == ModelVersion.Kind.POLICY:
        chosen_by = Coalesce(Cast(KT("agent_decisions__PersonalizerAgent__policy__version"), IntegerField()), 0)
        policy_ids = list(ModelVersion.objects.filter(kind=kind).values_list("pk", flat=True))
        baseline = baseline.alias(_chosen_by=chosen_by).exclude(_chosen_by__in=policy_ids)
    return baseline


TRIGGER_KEY = "agent_decisions__PersonalizerAgent__policy__triggered"


@dataclass(frozen=True)
class Comparison:
    """The two arms since the challenger's deployment: all their messages, and the messages compared."""

    ours_all: ArmFigures
    theirs_all: ArmFigures
    ours: ArmFigures
    theirs: ArmFigures
    triggered: bool  # whether ``ours`` / ``theirs`` are the triggered messages only

    @property
    def share(self) -> float:
        """The compared messages' share of all messages (1.0 without a triggered analysis)."""
        total = self.ours_all.messages + self.theirs_all.messages
        return (self.ours.messages + self.theirs.messages) / total if total else 0.0

    @property
    def lift(self) -> float:
        """The challenger's relative score lift over all traffic (diluted from the triggered messages)."""
        difference = (self.ours.score - self.theirs.score) * self.share
        if self.theirs_all.score == 0:
            return math.inf if difference > 0 else 0.0
        return difference / self.theirs_all.score


def arms_compare(challenger: ModelVersion, champion: ModelVersion | None, since: datetime) -> Comparison:
    ours_outcomes = _arm_outcomes(challenger, challenger.kind, since)
    theirs_outcomes = _arm_outcomes(champion, challenger.kind, since)
    ours_all, theirs_all = arm_figures(ours_outcomes), arm_figures(theirs_outcomes)
    recorded = Q(**{f"{TRIGGER_KEY}__isnull": False})
    if champion is None or not (ours_outcomes.filter(recorded).exists() or theirs_outcomes.filter(recorded).exists()):
        return Comparison(ours_all, theirs_all, ours_all, theirs_all, triggered=False)
    triggered = Q(**{TRIGGER_KEY: True})
    return Comparison(
        ours_all,
        theirs_all,
        arm_figures(ours_outcomes.filter(triggered)),
        arm_figures(theirs_outcomes.filter(triggered)),
        triggered=True,
    )


def _figures(comparison: Comparison, p_value: float | None, **extra) -> dict:
    def arm(figures: ArmFigures) -> dict:
        return {
            **asdict(figures),
            "reply_rate": figures.rate(figures.replies),
            "meeting_rate": figures.rate(figures.meetings),
            "close_rate": figures.rate(figures.deals),
        }

    lift = comparison.lift
    figures = {
        "challenger": arm(comparison.ours_all),
        "champion": arm(comparison.theirs_all),
        "lift": None if math.isinf(lift) else lift,
        "test": "Welch t-test on per-message score, one-sided",
        "alpha": ALPHA,
        "p_value": p_value,
        "min_lift": MIN_LIFT,
        **extra,
    }
    if comparison.triggered:
        figures["triggered"] = {
            "challenger": arm(comparison.ours),
            "champion": arm(comparison.theirs),
            "share": comparison.share,
        }
    return figures


def ab_test_decide(
    *,
    challenger: ModelVersion,
    min_days: float = DEFAULT_MIN_DAYS,
    min_messages_per_arm: int = DEFAULT_MIN_MESSAGES,
    now: datetime | None = None,
    decided_by=None,
) -> PromotionDecision:
    """Look at one challenger's A/B test, act on it (promote / retire / wait) and store the decision."""
    now = now or timezone.now()
    champion = ModelVersion.objects.filter(kind=challenger.kind, ab_role=ModelVersion.Role.CHAMPION).first()
    since = challenger.deployed_at or now
    comparison = arms_compare(challenger, champion, since)
    ours, theirs = comparison.ours, comparison.theirs
    exposure = {"since": since.isoformat(), "min_days": min_days, "min_messages_per_arm": min_messages_per_arm}
    exposed = min(comparison.ours_all.messages, comparison.theirs_all.messages)
    p_value = None
    if now - since < timedelta(days=min_days) or exposed < min_messages_per_arm:
        outcome = PromotionDecision.Outcome.WAITING
        reason = (
            f"Not enough exposure yet: {comparison.ours_all.messages} vs {comparison.theirs_all.messages} messages "
            f"in {(now - since).total_seconds() / 86400:.1f} days."
        )
    elif min(ours.messages, theirs.messages) < 2:
        outcome = PromotionDecision.Outcome.RETIRED
        reason = (
            f"The arms would have sent the same strategy to all but {ours.messages + theirs.messages} of "
            f"{comparison.ours_all.messages + comparison.theirs_all.messages} leads: the challenger changes nothing."
        )
    else:
        p_value = welch_p_value(ours, theirs)
        breach = _guardrail_breach(comparison.ours_all, comparison.theirs_all)
        outcome, reason = _verdict(comparison.lift, breach, p_value)
        if comparison.triggered:
            reason += f" Compared on the {comparison.share:.0%} of messages the arms would have sent differently."
    with transaction.atomic():
        if outcome == PromotionDecision.Outcome.PROMOTED:
            registry.model_deploy(version=challenger, traffic_percentage=100.0, role=ModelVersion.Role.CHAMPION)
        elif outcome == PromotionDecision.Outcome.RETIRED:
            registry.model_retire(version=challenger)
        decision = PromotionDecision.objects.create(
            kind=challenger.kind,
            challenger=challenger,
            champion=champion,
            outcome=outcome,
            reason=reason,
            figures=_figures(comparison, p_value, exposure=exposure),
            decided_by=decided_by,
        )
    logger.info("ab test %s %s: %s — %s", challenger.kind, challenger.version, outcome, reason)
    return decision


def promote_ab_test_winner(
    *,
    kind: str | None = None,
    min_days: float = DEFAULT_MIN_DAYS,
    min_messages_per_arm: int = DEFAULT_MIN_MESSAGES,
    now: datetime | None = None,
    decided_by=None,
) -> list[PromotionDecision]:
    """The daily promotion check: decide every deployed challenger (of ``kind``, or of every kind)."""
    challengers = ModelVersion.objects.filter(
        status=ModelVersion.Status.DEPLOYED, ab_role=ModelVersion.Role.CHALLENGER
    ).order_by("kind", "deployed_at")
    if kind:
        challengers = challengers.filter(kind=kind)
    return [
        ab_test_decide(
            challenger=challenger,
            min_days=min_days,
            min_messages_per_arm=min_messages_per_arm,
            now=now,
            decided_by=decided_by,
        )
        for challenger in challengers
    ]
