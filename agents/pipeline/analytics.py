"""AnalyticsAgent: a mission's (or campaign's) funnel, what worked, an A/B read-out and plain recommendations.

Every figure comes from a few aggregate queries (leads, messages, outcomes, one grouped breakdown);
nothing loops over leads. Rates are over messages sent.
"""

import math
from collections import defaultdict

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from agents.models import AgentRun, Campaign, Lead, Message, Mission, MissionLead
from agents.pipeline.base import Agent, StepResult
from outcomes.models import OutcomeLabel
from outcomes.selectors import funnel_aggregates

Z_ALPHA = 1.959964  # two-sided test at 95%
Z_POWER = 0.841621  # 80% power
MIN_SENDS = 10  # below this a strategy's rate is noise, not advice
HIGH_DISQUALIFICATION = 0.3
LOW_DELIVERY = 0.9
LOW_OPEN = 0.15

S = Lead.State
# States a lead can only reach after passing qualification.
QUALIFIED_OR_LATER = (
    S.QUALIFIED,
    S.ENRICHED,
    S.PERSONALIZED,
    S.SCHEDULED,
    S.CONTACTED,
    S.ENGAGED,
    S.REPLIED,
    S.MEETING,
    S.WON,
    S.LOST,
)
# A message counts as sent once the outreach agent marked it so or its outcome row exists.
SENT = Q(status=Message.Status.SENT) | Q(outcome__isnull=False)


# --- Statistics ----------------------------------------------------------------------------------------------


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}".rstrip("0").rstrip(".") + "%"


def min_sample_per_arm(rate_a: float, rate_b: float) -> int | None:
    """Sends per arm needed to detect rate_a vs rate_b (two-sided 5%, power 80%); None when they are equal."""
    if rate_a == rate_b:
        return None
    mean = (rate_a + rate_b) / 2
    spread = Z_ALPHA * math.sqrt(2 * mean * (1 - mean)) + Z_POWER * math.sqrt(
        rate_a * (1 - rate_a) + rate_b * (1 - rate_b)
    )
    return math.ceil(spread**2 / (rate_a - rate_b) ** 2)


def two_proportion_z_test(successes_a: int, n_a: int, successes_b: int, n_b: int) -> dict | None:
    """Pooled two-proportion z-test of a's rate against b's; None unless both arms have sends."""
    if n_a <= 0 or n_b <= 0:
        return None
    rate_a, rate_b = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (rate_a - rate_b) / se if se else 0.0
    p_value = math.erfc(abs(z) / math.sqrt(2))  # = 2 * (1 - Phi(|z|)), without the cancellation
    return {
        "rate_a": round(rate_a, 4),
        "rate_b": round(rate_b, 4),
        "difference": round(rate_a - rate_b, 4),
        "z": round(z, 4),
        "p_value": round(p_value, 4),
        "significant": p_value < 0.05,
        "min_sample_per_arm": min_sample_per_arm(rate_a, rate_b),
    }


# --- Figures -------------------------------------------------------------------------------------------------


def _lead_counts(mission_leads: QuerySet[MissionLead]) -> dict:
    # distinct: in a campaign one lead may sit in several missions.
    return mission_leads.aggregate(
        leads=Count("lead", distinct=True),
        scored=Count("lead", distinct=True, filter=Q(lead__icp_score__isnull=False)),
        qualified=Count("lead", distinct=True, filter=Q(lead__state__in=QUALIFIED_OR_LATER)),
        disqualified=Count("lead", distinct=True, filter=Q(lead__state=S.DISQUALIFIED)),
    )


def _message_counts(messages: QuerySet[Message]) -> dict:
    return messages.aggregate(personalized=Count("lead", distinct=True), sent=Count("id", filter=SENT))


def _outcome_counts(outcomes: QuerySet[OutcomeLabel]) -> dict:
    counts = outcomes.aggregate(**funnel_aggregates())
    counts["revenue"] = round(float(counts.pop("revenue_sum") or 0), 2)
    return counts


def _funnel_rates(funnel: dict) -> dict:
    sent = funnel["sent"]
    return {
        "qualification_rate": _rate(funnel["qualified"], funnel["scored"]),
        "disqualification_rate": _rate(funnel["disqualified"], funnel["scored"]),
        "delivery_rate": _rate(funnel["delivered"], sent),
        "open_rate": _rate(funnel["opened"], sent),
        "reply_rate": _rate(funnel["replied"], sent),
        "meeting_rate": _rate(funnel["meetings"], sent),
        "close_rate": _rate(funnel["deals"], sent),
    }


def _rows(totals: dict[str, list[int]], key: str) -> list[dict]:
    rows = [
        {key: name, "sent": sent, "replies": replies, "reply_rate": _rate(replies, sent)}
        for name, (sent, replies) in totals.items()
    ]
    return sorted(rows, key=lambda r: (-r["reply_rate"], -r["sent"], r[key]))


def _breakdown(messages: QuerySet[Message]) -> dict[str, list[dict]]:
    """Sent and replies per framework, tone, variant and framework/tone, from one grouped query."""
    groups = (
        messages.filter(SENT)
        .values("framework", "tone", "variant")
        .annotate(sent=Count("id"), replies=Count("id", filter=Q(outcome__replied=True)))
        .order_by()
    )
    totals: dict[str, dict[str, list[int]]] = {dim: defaultdict(lambda: [0, 0]) for dim in ("f", "t", "v", "s")}
    for group in groups:
        keys = {"f": group["framework"], "t": group["tone"], "v": group["variant"]}
        keys["s"] = f"{group['framework']}/{group['tone']}"
        for dim, name in keys.items():
            totals[dim][name][0] += group["sent"]
            totals[dim][name][1] += group["replies"]
    return {
        "framework": _rows(totals["f"], "framework"),
        "tone": _rows(totals["t"], "tone"),
        "variant": _rows(totals["v"], "variant"),
        "strategy": _rows(totals["s"], "strategy"),
    }


def _compare(rows: list[dict], key: str, a: str, b: str) -> dict | None:
    by_name = {row[key]: row for row in rows}
    if a not in by_name or b not in by_name:
        return None
    test = two_proportion_z_test(by_name[a]["replies"], by_name[a]["sent"], by_name[b]["replies"], by_name[b]["sent"])
    if test is None:
        return None
    return {"a": a, "b": b, "sent_a": by_name[a]["sent"], "sent_b": by_name[b]["sent"], **test}


def _ab_tests(breakdown: dict[str, list[dict]]) -> dict:
    frameworks = [row for row in breakdown["framework"] if row["framework"] and row["sent"]]
    best_two = frameworks[:2]  # rows are sorted best reply rate first
    return {
        "variant": _compare(breakdown["variant"], "variant", "A", "B"),
        "framework": _compare(frameworks, "framework", best_two[0]["framework"], best_two[1]["framework"])
        if len(best_two) == 2
        else None,
    }


# --- Recommendations -----------------------------------------------------------------------------------------


def _strategy_advice(funnel: dict, breakdown: dict) -> str | None:
    if not funnel["sent"]:
        return "No messages sent yet: rerun the report once outreach has gone out and outcomes come in."
    proven = [row for row in breakdown["strategy"] if row["sent"] >= MIN_SENDS]
    if not proven:
        return (
            f"Only {funnel['sent']} sends so far, none of them {MIN_SENDS}+ on one strategy: "
            "keep exploring every framework and tone before shifting traffic."
        )
    best = proven[0]
    if not best["replies"]:
        return f"No replies yet over {funnel['sent']} sends: review the copy and the list before sending more."
    return (
        f"{best['strategy']} leads with a {_pct(best['reply_rate'])} reply rate over {best['sent']} sends; "
        "shift traffic to it."
    )


def _ab_advice(test: dict | None, what: str) -> str | None:
    if test is None:
        return None
    leader, other = (test["a"], test["b"]) if test["difference"] >= 0 else (test["b"], test["a"])
    rates = {test["a"]: _pct(test["rate_a"]), test["b"]: _pct(test["rate_b"])}
    if test["min_sample_per_arm"] is None:
        return f"{what} {test['a']} and {test['b']} reply at the same rate so far ({rates[leader]}); keep testing."
    if test["significant"]:
        return (
            f"{what} {leader} beats {other} ({rates[leader]} vs {rates[other]} reply rate, p={test['p_value']:.3f}); "
            "make it the default."
        )
    needed = test["min_sample_per_arm"]
    until = f"until ~{needed} sends per arm" if needed > max(test["sent_a"], test["sent_b"]) else "a while longer"
    return (
        f"{what} {leader}'s lead over {other} ({rates[leader]} vs {rates[other]}) is not significant yet "
        f"(p={test['p_value']:.2f}); keep testing {until}."
    )


def _funnel_advice(funnel: dict, rates: dict) -> list[str]:
    advice = []
    if funnel["scored"] and rates["disqualification_rate"] >= HIGH_DISQUALIFICATION:
        advice.append(f"High disqualification ({_pct(rates['disqualification_rate'])}): review the ICP profile.")
    if funnel["sent"] >= MIN_SENDS and rates["delivery_rate"] < LOW_DELIVERY:
        advice.append(
            f"Delivery rate is only {_pct(rates['delivery_rate'])}: check sending-domain health (SPF, DKIM, DMARC, "
            "warm-up) before sending more."
        )
    if funnel["delivered"] >= 2 * MIN_SENDS and funnel["opened"] / funnel["delivered"] < LOW_OPEN:
        advice.append(f"Few opens ({funnel['opened']} of {funnel['delivered']} delivered): test new subject lines.")
    if funnel["replied"] >= 5 and not funnel["meetings"]:
        advice.append(f"{funnel['replied']} replies but no meeting yet: follow up on replies faster.")
    return advice


def recommendations(funnel: dict, rates: dict, breakdown: dict, ab_tests: dict) -> list[str]:
    """Plain sentences an operator can act on, derived from the figures above."""
    advice = [
        _strategy_advice(funnel, breakdown),
        _ab_advice(ab_tests["variant"], "Variant"),
        _ab_advice(ab_tests["framework"], "Framework"),
        *_funnel_advice(funnel, rates),
    ]
    advice = [sentence for sentence in advice if sentence]
    return advice or ["No problem stands out: keep the current mix and let the strategy sampler keep exploring."]


# --- Reports -------------------------------------------------------------------------------------------------


def _report(*, mission_leads, messages, outcomes, scope: dict) -> dict:
    funnel = {**_lead_counts(mission_leads), **_message_counts(messages), **_outcome_counts(outcomes)}
    rates = _funnel_rates(funnel)
    breakdown = _breakdown(messages)
    ab_tests = _ab_tests(breakdown)
    return {
        **scope,
        "generated_at": timezone.now().isoformat(),
        "funnel": funnel,
        "funnel_rates": rates,
        "rates": breakdown,
        "ab_tests": ab_tests,
        "recommendations": recommendations(funnel, rates, breakdown, ab_tests),
    }


def mission_report(mission: Mission) -> dict:
    """The mission's funnel, per-framework/tone/variant reply rates, A/B tests and recommendations (JSON-ready)."""
    return _report(
        mission_leads=MissionLead.objects.filter(mission=mission),
        messages=Message.objects.filter(mission=mission),
        outcomes=OutcomeLabel.objects.filter(mission=mission),
        scope={"mission_id": mission.pk, "campaign_id": mission.campaign_id},
    )


def campaign_report(campaign: Campaign) -> dict:
    """The same report over every mission of the campaign."""
    return _report(
        mission_leads=MissionLead.objects.filter(mission__campaign=campaign),
        messages=Message.objects.filter(campaign=campaign),
        outcomes=OutcomeLabel.objects.filter(campaign=campaign),
        scope={"campaign_id": campaign.pk, "missions": campaign.missions.count()},
    )


class AnalyticsAgent(Agent):
    name = AgentRun.Agent.ANALYTICS

    def process(self, lead: Lead) -> StepResult:
        raise NotImplementedError("AnalyticsAgent reports on the whole mission: call run_for_mission(), not process().")

    def run_for_mission(self) -> dict:
        report = mission_report(self.mission)
        self.mission.report = report
        self.mission.save(update_fields=["report"])
        return report
