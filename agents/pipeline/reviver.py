"""Reviver agent: how likely a dead lead is to come back now, and whether (and where) to try.

The probability comes from a logistic model with hand-set coefficients. Each factor adds to the log-odds,
so its contribution is also its explanation: a factor worth +0.7 made the lead about twice as likely to revive.

When the lead's A/B arm has a deployed policy model (``policy_probability``), the policy adjusts that score by
its relative lift: the probability of a positive outcome with the lead's best strategy over the positive rate
of the labels it was trained on. The policy predicts a different, much rarer event (a positive outcome of one
message, a few percent) than revival, so its raw probability would sit far below every threshold the business
rules were written for (skip below 0.15) and starve the policy's arm; the lift keeps the rules' scale.
"""

import math
import re

from django.db.models import Count, Q
from django.utils import timezone

from agents.decisions.engine import decide
from agents.decisions.lifecycle import lead_can, lead_transition
from agents.decisions.llm import LLMQuestion
from agents.models import AgentRun, Lead, MissionLead
from agents.pipeline.base import Agent, StepResult
from agents.pipeline.personalizer import FRAMEWORKS, TONES
from agents.pipeline.seniority import seniority_of
from outcomes.models import OutcomeLabel
from training.policy import PolicyLift, policy_best_lift

# Log-odds of a lead we know nothing about: about one in four revives (sigmoid(-1.0) = 0.27).
INTERCEPT = -1.0
# Freshly lost leads remember us: +0.8 at zero months, 0.1 less per month, bottoming out at -1.0
# (18 months and older: they have forgotten us, and their situation has usually changed).
RECENCY_AT_ZERO, RECENCY_PER_MONTH, RECENCY_FLOOR = 0.8, -0.1, -1.0
DAYS_PER_MONTH = 30.44
# Past engagement: a reply means far more than an open, a meeting more than a reply. Capped so a
# lead opened fifty newsletters does not outweigh everything else.
ENGAGEMENT_WEIGHTS = {"opens": 0.1, "replies": 0.5, "meetings": 0.8}
ENGAGEMENT_CAP = 1.5
# Somebody who unsubscribed or reported spam should not be tempted again.
OPT_OUT = -3.0
# What killed the deal. Checked in this order: "not interested" beats a mention of a competitor.
LOST_REASONS = (
    ("not_interested", -2.0, r"not interested|unsubscrib|do not contact|don'?t contact|remove me|no need|spam|stop\b"),
    ("competitor", -0.6, r"competitor|went with|chose|another vendor|alternative|in.?house|switched"),
    ("no_decision", 0.0, r"no decision|authority|decision.?maker|stakeholder|champion|reorg|sign.?off"),
    ("budget", 0.3, r"budget|price|pricing|cost|expensive|afford|funding"),
    ("timing", 0.7, r"timing|not now|later|next (quarter|year)|bad time|not the right time|busy|revisit|priorit"),
)
# Anchored at word starts only, so stems match ("unsubscrib") but "collateral" is not "later".
_LOST_PATTERNS = tuple(
    (category, weight, re.compile(rf"\b(?:{pattern})")) for category, weight, pattern in LOST_REASONS
)
# Each 0.1 of ICP fit above (or below) 0.5 adds (or removes) 0.15.
ICP_WEIGHT = 1.5
# Decision-makers can restart a deal on their own; individual contributors rarely can.
SENIORITY_WEIGHTS = {
    "c_level": 0.4,
    "vp": 0.35,
    "head": 0.25,
    "director": 0.25,
    "manager": 0.0,
    "individual": -0.3,
    "unknown": 0.0,
}
TOP_FACTORS = 3
STOP_ACTIONS = frozenset({"skip", "stop", "delay", "disqualify"})
CHANNELS = frozenset({"email", "sms"})


def policy_probability(lead: Lead) -> PolicyLift | None:
    """The probability of a positive outcome with the best strategy, by the policy model deployed to the lead's
    A/B arm, and that model's training base rate; None when the arm has none (the hand-set model alone scores).

    Every strategy the personalizer could use is scored, on each channel the lead can be reached on.
    """
    channels = ("email", "sms") if lead.phone else ("email",)
    candidates = [{"framework": f, "tone": t, "channel": c} for f in FRAMEWORKS for t in TONES for c in channels]
    return policy_best_lift(lead=lead, candidates=candidates)


def policy_adjusted(probability: float, factors: list[dict], policy: PolicyLift) -> tuple[float, list[dict]]:
    """The hand-set probability times the policy's lift (clipped to [0, 1]), with the policy as the first factor
    (its contribution in log-odds terms, like the others: log of the lift)."""
    factor = {
        "name": "policy_model",
        "contribution": round(math.log(max(policy.lift, 1e-6)), 3),
        "text": (
            f"Deployed policy {policy.version.version}: {policy.probability:.1%} with the best strategy vs "
            f"{policy.base_rate:.1%} on average (×{policy.lift:.2f})"
        ),
    }
    return min(1.0, max(0.0, probability * policy.lift)), [factor, *factors][:TOP_FACTORS]


def lost_reason_category(reason: str) -> str:
    text = (reason or "").casefold()
    for category, _, pattern in _LOST_PATTERNS:
        if pattern.search(text):
            return category
    return "unknown"


def months_since(moment) -> float | None:
    if moment is None:
        return None
    return max(0.0, (timezone.now() - moment).total_seconds() / 86400 / DAYS_PER_MONTH)


def _recency(months: float | None) -> tuple[float, str]:
    if months is None:
        return 0.0, "Never engaged, or no date known"
    contribution = max(RECENCY_FLOOR, RECENCY_AT_ZERO + RECENCY_PER_MONTH * months)
    return contribution, f"Last engaged {months:.0f} months ago"


def _engagement(history: dict) -> tuple[float, str]:
    if history.get("opt_outs"):
        return OPT_OUT, "Unsubscribed or reported spam before"
    raw = sum(weight * (history.get(kind) or 0) for kind, weight in ENGAGEMENT_WEIGHTS.items())
    counts = ", ".join(f"{history.get(kind) or 0} {kind}" for kind in ENGAGEMENT_WEIGHTS)
    return min(ENGAGEMENT_CAP, raw), f"Past engagement: {counts}"


def _lost_reason(reason: str) -> tuple[float, str]:
    category = lost_reason_category(reason)
    weight = next((weight for name, weight, _ in _LOST_PATTERNS if name == category), 0.0)
    return weight, f"Lost reason: {category.replace('_', ' ')}"


def _icp(score: float | None) -> tuple[float, str]:
    if score is None:
        return 0.0, "Not ICP-scored"
    return ICP_WEIGHT * (score - 0.5), f"ICP fit {score:.2f}"


def reactivation_probability(*, lead: Lead, history: dict) -> tuple[float, list[dict]]:
    """The probability that the lead revives now, and the (up to) three factors that moved it most.

    ``history`` counts this lead's past outcomes: opens, replies, meetings and opt_outs.
    """
    level = seniority_of(lead.title)
    parts = {
        "recency": _recency(months_since(lead.last_engaged_at)),
        "engagement": _engagement(history),
        "lost_reason": _lost_reason(lead.lost_reason),
        "icp_score": _icp(lead.icp_score),
        "seniority": (SENIORITY_WEIGHTS[level], f"Seniority: {level.replace('_', ' ')}"),
    }
    logit = INTERCEPT + sum(contribution for contribution, _ in parts.values())
    probability = 1 / (1 + math.exp(-logit))
    factors = [
        {"name": name, "contribution": round(contribution, 3), "text": text}
        for name, (contribution, text) in parts.items()
        if contribution
    ]
    factors.sort(key=lambda factor: abs(factor["contribution"]), reverse=True)
    return probability, factors[:TOP_FACTORS]


def lead_history(lead: Lead) -> dict:
    """This lead's past outcomes, counted in one aggregate query."""
    return OutcomeLabel.objects.filter(organization_id=lead.organization_id, lead=lead).aggregate(
        opens=Count("id", filter=Q(opened=True)),
        replies=Count("id", filter=Q(replied=True)),
        meetings=Count("id", filter=Q(meeting_booked=True)),
        opt_outs=Count("id", filter=Q(unsubscribed=True) | Q(spam_reported=True)),
    )


class ReviverAgent(Agent):
    """Scores the lead's chance of reviving and asks the decision engine whether, and where, to try."""

    name = AgentRun.Agent.REVIVER

    def _question(self, lead: Lead, facts: dict, factors: list[dict]) -> LLMQuestion:
        options = ["email", "sms", "skip"] if lead.phone else ["email", "skip"]
        # Only facts about the deal, never about the person: names and addresses stay out of the prompt.
        context = {
            **facts,
            "industry": lead.industry or None,
            "company_size": lead.company_size,
            "has_phone": bool(lead.phone),
            "factors": [factor["text"] for factor in factors],
        }
        known_pii = {
            "first_name": lead.first_name,
            "last_name": lead.last_name,
            "company": lead.company,
            "email": lead.email,
        }
        return LLMQuestion(
            question="Should we try to revive this lead now, and on which channel first?",
            options=options,
            context=context,
            known_pii=known_pii,
            # The rules let this lead through without deciding; without a model, one email (the least intrusive
            # channel) is what the operator who launched the mission expects, not a coin flip that drops a third.
            default="email",
        )

    def process(self, lead: Lead) -> StepResult:
        heuristic, factors = reactivation_probability(lead=lead, history=lead_history(lead))
        policy = policy_probability(lead)
        probability = heuristic
        if policy is not None:
            probability, factors = policy_adjusted(heuristic, factors, policy)
        lead.reactivation_probability = round(min(1.0, max(0.0, probability)), 4)
        lead.save(update_fields=["reactivation_probability", "updated_at"])
        months = months_since(lead.last_engaged_at)
        facts = {
            "reactivation_probability": lead.reactivation_probability,
            "heuristic_probability": round(heuristic, 4),
            "policy_probability": round(policy.probability, 4) if policy else None,
            "policy_base_rate": policy.base_rate if policy else None,
            "icp_score": lead.icp_score,
            "seniority": seniority_of(lead.title),
            "lost_reason_category": lost_reason_category(lead.lost_reason),
            "months_since_engaged": round(months, 1) if months is not None else None,
        }
        decision = decide(lead=lead, stage="reactivate", facts=facts, llm_question=self._question(lead, facts, factors))
        output = {"reactivation_probability": lead.reactivation_probability, "factors": factors}
        if policy is not None:
            output["policy"] = {
                "version": policy.version.pk,
                "heuristic_probability": facts["heuristic_probability"],
                "policy_probability": facts["policy_probability"],
                "base_rate": policy.base_rate,
                "lift": round(policy.lift, 4),
            }
        if decision.action in STOP_ACTIONS:
            if decision.action == "disqualify" and lead_can(lead, "disqualify"):
                lead_transition(lead, "disqualify")
            return StepResult(proceed=False, output=output, decision=decision, final_status=MissionLead.Status.SKIPPED)
        channel = decision.action if decision.action in CHANNELS else decision.params.get("channel")
        if channel:
            output["channel"] = channel
        return StepResult(output=output, decision=decision)
