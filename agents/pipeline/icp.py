"""ICP intelligence: how well a lead fits the organization's ideal customer, and whether it qualifies.

The score is a weighted mean of four parts, each 0-1: industry, seniority, company size and
geography. A part the profile does not target, or the lead does not tell, scores a neutral 0.5
so missing data neither sinks nor lifts a lead.
"""

import math
import statistics
from collections import Counter
from functools import cached_property

import phonenumbers
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from phonenumbers import timezone as phone_timezones

from agents.decisions.engine import decide
from agents.decisions.lifecycle import lead_can, lead_transition
from agents.models import AgentRun, ICPProfile, Lead, MissionLead, Organization
from agents.pipeline.base import Agent, StepResult
from agents.pipeline.seniority import seniority_of
from outcomes.models import OutcomeLabel

DEFAULT_WEIGHTS = {"industry": 0.35, "seniority": 0.3, "company_size": 0.2, "geography": 0.15}
NEUTRAL = 0.5
# Without target seniorities, decision-makers fit best; an unplaceable title sits just below neutral.
SENIORITY_RANK = {
    "c_level": 1.0,
    "vp": 0.9,
    "head": 0.8,
    "director": 0.8,
    "manager": 0.5,
    "individual": 0.3,
    "unknown": 0.4,
}
# Company sizes are multiplicative: each halving below the range (or doubling above it) costs a third.
SIZE_COST_PER_DOUBLING = 1 / 3
# When deriving a profile, a value seen in under a tenth of the wins is noise rather than a target.
MIN_TARGET_SHARE = 0.1
MAX_TARGETS = 5
# Fewer wins than this describe a few deals, not a customer profile.
MIN_OUTCOMES = 20
POSITIVE_OUTCOMES = Q(deal_closed=True) | Q(meeting_booked=True) | Q(training_label=OutcomeLabel.Label.POSITIVE)
STOP_ACTIONS = frozenset({"skip", "stop", "delay"})


def timezone_area(name: str | None) -> str | None:
    """ "America/New_York" → "America"; None for "UTC", "Etc/…" and empty values."""
    if not name or "/" not in name:
        return None
    area = name.split("/", 1)[0]
    return None if area == "Etc" else area


def region_of(lead: Lead) -> str | None:
    """The lead's time zone area, else the area of its phone number's country."""
    area = timezone_area(lead.timezone)
    if area or not lead.phone:
        return area
    try:
        number = phonenumbers.parse(lead.phone)
    except phonenumbers.NumberParseException:
        return None
    return next(filter(None, map(timezone_area, phone_timezones.time_zones_for_number(number))), None)


def _industry_part(industry: str, targets: list[str]) -> float:
    wanted = {target.casefold().strip() for target in targets if target}
    industry = industry.casefold().strip()
    if not wanted or not industry:
        return NEUTRAL
    if industry in wanted:
        return 1.0
    # "B2B SaaS" against a target of "SaaS" is a near miss, not a miss.
    return 0.75 if any(target in industry or industry in target for target in wanted) else 0.0


def _seniority_part(level: str, targets: list[str]) -> float:
    if not targets:
        return SENIORITY_RANK[level]
    if level == "unknown":
        return NEUTRAL
    # Off-target seniority keeps half its default rank: a CEO is rarely a bad contact, just not the target.
    return 1.0 if level in targets else SENIORITY_RANK[level] / 2


def _company_size_part(size: int | None, low: int | None, high: int | None) -> float:
    if not size or (low is None and high is None):
        return NEUTRAL
    if low and size < low:
        doublings = math.log2(low / size)
    elif high and size > high:
        doublings = math.log2(size / high)
    else:
        return 1.0
    return max(0.0, 1.0 - SIZE_COST_PER_DOUBLING * doublings)


def _geography_part(region: str | None, targets: list[str]) -> float:
    if not targets or not region:
        return NEUTRAL
    return 1.0 if region.casefold() in {target.casefold() for target in targets} else 0.0


def icp_weights(raw: dict | None) -> dict[str, float]:
    """The profile's weights over the defaults, negative or non-numeric ones ignored, summing to 1."""
    weights = dict(DEFAULT_WEIGHTS)
    for part, value in (raw or {}).items():
        if part in weights and isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            weights[part] = float(value)
    total = sum(weights.values())
    if total <= 0:
        weights, total = dict(DEFAULT_WEIGHTS), sum(DEFAULT_WEIGHTS.values())
    return {part: weight / total for part, weight in weights.items()}


def icp_score(*, lead: Lead, profile: ICPProfile) -> tuple[float, dict]:
    """The lead's fit, 0 to 1, and each part's own 0-1 score."""
    breakdown = {
        "industry": _industry_part(lead.industry, profile.target_industries),
        "seniority": _seniority_part(seniority_of(lead.title), profile.target_seniorities),
        "company_size": _company_size_part(lead.company_size, profile.company_size_min, profile.company_size_max),
        "geography": _geography_part(region_of(lead), profile.target_regions),
    }
    weights = icp_weights(profile.weights)
    score = sum(weights[part] * value for part, value in breakdown.items())
    return min(1.0, max(0.0, score)), breakdown


def icp_profile_for(organization: Organization) -> ICPProfile:
    profile, _ = ICPProfile.objects.get_or_create(organization=organization, defaults={"weights": DEFAULT_WEIGHTS})
    return profile


def _common(counts: Counter) -> list[str]:
    total = sum(counts.values())
    return [value for value, n in counts.most_common(MAX_TARGETS) if n / total >= MIN_TARGET_SHARE]


def _derived_industries(outcomes: QuerySet) -> list[str]:
    rows = outcomes.exclude(lead_industry="").values("lead_industry").annotate(n=Count("id"))
    return _common(Counter({row["lead_industry"]: row["n"] for row in rows}))


def _derived_seniorities(outcomes: QuerySet) -> list[str]:
    counts: Counter = Counter()
    for row in outcomes.exclude(lead_role="").values("lead_role").annotate(n=Count("id")):
        counts[seniority_of(row["lead_role"])] += row["n"]
    counts.pop("unknown", None)
    return _common(counts)


def _derived_size_range(outcomes: QuerySet) -> tuple[int, int] | None:
    sizes = list(outcomes.filter(company_size__isnull=False).values_list("company_size", flat=True))
    if len(sizes) < 2:
        return (sizes[0], sizes[0]) if sizes else None
    deciles = statistics.quantiles(sizes, n=10, method="inclusive")
    return round(deciles[0]), round(deciles[-1])


def _derived_regions(outcomes: QuerySet) -> list[str]:
    counts: Counter = Counter()
    # lead_context is free-form JSON, so the region is read in Python; the lead's time zone is the fallback.
    for context, lead_timezone in outcomes.values_list("lead_context", "lead__timezone").iterator():
        context = context if isinstance(context, dict) else {}
        region = context.get("region") or timezone_area(context.get("timezone")) or timezone_area(lead_timezone)
        if region:
            counts[region] += 1
    return _common(counts)


@transaction.atomic
def icp_profile_refresh(*, organization: Organization, min_outcomes: int = MIN_OUTCOMES) -> ICPProfile | None:
    """Rebuild the targets from won deals, booked meetings and positive labels.

    Returns None, changing nothing, with fewer than ``min_outcomes`` of them. A part the outcomes say
    nothing about (say, no outcome records a company size) keeps its current target.
    """
    outcomes = OutcomeLabel.objects.filter(organization=organization).filter(POSITIVE_OUTCOMES)
    sample_size = outcomes.count()
    if sample_size < min_outcomes:
        return None
    profile = icp_profile_for(organization)
    profile.target_industries = _derived_industries(outcomes) or profile.target_industries
    profile.target_seniorities = _derived_seniorities(outcomes) or profile.target_seniorities
    profile.target_regions = _derived_regions(outcomes) or profile.target_regions
    size_range = _derived_size_range(outcomes)
    if size_range:
        profile.company_size_min, profile.company_size_max = size_range
    profile.source = ICPProfile.Source.DERIVED
    profile.sample_size = sample_size
    profile.full_clean()
    profile.save()
    return profile


class ICPIntelligenceAgent(Agent):
    """Scores each lead against the ICP, then lets the decision engine qualify or disqualify it."""

    name = AgentRun.Agent.ICP

    @cached_property
    def profile(self) -> ICPProfile:
        # One profile per agent instance: a batch of leads is scored against the same targets.
        return icp_profile_for(self.organization)

    def _facts(self, lead: Lead) -> dict:
        return {
            "icp_score": lead.icp_score,
            "icp_threshold": self.profile.qualify_threshold,
            "industry": lead.industry or None,
            "seniority": seniority_of(lead.title),
            "company_size": lead.company_size,
            "region": region_of(lead),
        }

    def process(self, lead: Lead) -> StepResult:
        score, breakdown = icp_score(lead=lead, profile=self.profile)
        lead.icp_score = round(score, 4)
        # A lead past the point of scoring (replied, won, suppressed) keeps its state; the state
        # machine layer of the decision below then refuses to qualify it.
        if lead_can(lead, "score"):
            lead_transition(lead, "score", save=False)
        lead.save(update_fields=["icp_score", "state", "updated_at"])
        decision = decide(lead=lead, stage="qualify", event="qualify", facts=self._facts(lead))
        output = {
            "icp_score": round(score, 3),
            "breakdown": {part: round(value, 3) for part, value in breakdown.items()},
        }
        if decision.action == "disqualify":
            lead_transition(lead, "disqualify")
            return StepResult(proceed=False, output=output, decision=decision, final_status=MissionLead.Status.SKIPPED)
        if decision.action in STOP_ACTIONS:
            return StepResult(proceed=False, output=output, decision=decision, final_status=MissionLead.Status.SKIPPED)
        lead_transition(lead, "qualify")
        return StepResult(output=output, decision=decision)
