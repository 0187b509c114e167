"""The figures of a run, read from REX's own tables (what REX recorded) and graded by the world (what was true).

Nothing here writes: the report is what an operator could see in REX, next to the world's oracle.
"""

from collections import Counter
from collections.abc import Iterable

import numpy as np
from django.db.models import Count, Q
from django.utils import timezone

from agents.models import AgentRun, Lead, Message, Mission, Organization, Suppression
from outcomes.models import OutcomeLabel
from simulation.oracle import Efficacy, efficacy
from simulation.propensity import FRAMEWORKS, TONES, Strategy
from simulation.world import World
from training import features
from training.models import ModelVersion, PromotionDecision
from training.policy import PolicyModel, PolicyUnavailable

RATES = ("delivered", "opened", "replied", "positive", "meeting", "deal")


def outcome_counts(outcomes) -> dict:
    """Sends and what happened to them, as REX recorded it (one aggregate query)."""
    counts = outcomes.aggregate(
        sends=Count("id"),
        delivered=Count("id", filter=Q(delivered=True)),
        bounced=Count("id", filter=Q(bounced=True)),
        opened=Count("id", filter=Q(opened=True)),
        replied=Count("id", filter=Q(replied=True)),
        positive=Count("id", filter=Q(training_label=OutcomeLabel.Label.POSITIVE)),
        meeting=Count("id", filter=Q(meeting_booked=True)),
        deal=Count("id", filter=Q(deal_closed=True)),
        unsubscribed=Count("id", filter=Q(unsubscribed=True)),
        spam=Count("id", filter=Q(spam_reported=True)),
    )
    sends = counts["sends"]
    counts.update({f"{name}_rate": (counts[name] / sends if sends else 0.0) for name in RATES})
    return counts


def choices_graded(world: World, messages: Iterable[Message]) -> Efficacy:
    """The world's grade of the strategies REX chose for these messages."""
    pairs = []
    for message in messages:
        lead = world.lead_for(message.to_address)
        if lead is not None and message.framework in FRAMEWORKS and message.tone in TONES:
            pairs.append((lead, Strategy(message.framework, message.tone, message.channel)))
    return efficacy(world.model, pairs)


def arm_of(message: Message) -> str:
    """Which A/B arm wrote the message: a policy version's id, or the baseline (Thompson sampling)."""
    record = (message.agent_decisions or {}).get("PersonalizerAgent", {})
    policy = record.get("policy") or {}
    return f"policy:{policy['version']}" if policy.get("version") else "baseline"


def mission_holds(mission: Mission) -> dict:
    """Messages still waiting after the mission, and why (the outreach gate's last word on each)."""
    queued = mission.messages.filter(status=Message.Status.QUEUED)
    runs = AgentRun.objects.filter(mission=mission, agent=AgentRun.Agent.OUTREACH)
    return {
        "held": queued.count(),
        "held_by_rules": runs.filter(decision="delay").values("lead_id").distinct().count(),
        "deferred_by_limits": runs.filter(output_summary__has_key="deferred").values("lead_id").distinct().count(),
        "cancelled": mission.messages.filter(status=Message.Status.CANCELLED).count(),
    }


def decision_layers(runs) -> dict[str, int]:
    split = dict(runs.exclude(decision_layer=AgentRun.Layer.NONE).values_list("decision_layer").annotate(n=Count("id")))
    return {layer: split.get(layer, 0) for layer in (AgentRun.Layer.STATE_MACHINE, AgentRun.Layer.RULES, "llm")}


def compliance(organization: Organization) -> dict:
    """Opt-outs and whether REX honoured them (no send to the contact after it was suppressed), and what the
    windows, caps and rate limits held back."""
    suppressions = list(Suppression.objects.filter(organization=organization))
    violations = sum(
        Message.objects.filter(
            organization=organization, status=Message.Status.SENT, sent_at__gt=entry.created_at, to_address=entry.value
        ).exists()
        for entry in suppressions
        if entry.kind != Suppression.Kind.DOMAIN
    )
    outreach = AgentRun.objects.filter(mission__organization=organization, agent=AgentRun.Agent.OUTREACH)
    # Counted once per message (a deferred send is looked at again by every release sweep until it goes).
    delayed = outreach.filter(decision="delay").values_list("mission_id", "lead_id", "decision_reason").distinct()
    delays = Counter(reason for _, _, reason in delayed)
    deferred = outreach.filter(output_summary__has_key="deferred").values_list("mission_id", "lead_id").distinct()
    return {
        "opt_outs": dict(Counter(entry.reason for entry in suppressions)),
        "opt_outs_total": len(suppressions),
        "opt_outs_violated": violations,
        "stopped_by_suppression": outreach.filter(decision="stop").count(),
        "cancelled_messages": Message.objects.filter(
            organization=organization, status=Message.Status.CANCELLED
        ).count(),
        "deferred_by_rules": dict(delays),
        "deferred_by_limits": deferred.count(),
        "held_at_end": Message.objects.filter(organization=organization, status=Message.Status.QUEUED).count(),
    }


# --- Policy versions graded by the world --------------------------------------------------------------------


def policy_choices(version: ModelVersion, world: World, organization: Organization) -> list[tuple]:
    """(world lead, strategy) the version would choose for every lead, by REX's own scoring code (no exploration):
    framework × tone on email, as the personalizer asks it."""
    model = PolicyModel.load(version)
    leads = list(Lead.objects.filter(organization=organization).order_by("pk"))
    candidates = [{"framework": f, "tone": t, "channel": "email"} for f in FRAMEWORKS for t in TONES]
    now = timezone.now()
    contexts = [
        context for lead in leads for context in features.lead_contexts(lead=lead, strategies=candidates, now=now)
    ]
    scores = model.predict(contexts).reshape(len(leads), len(candidates)) if leads else np.empty((0, 0))
    chosen = []
    for lead, row in zip(leads, scores, strict=True):
        world_lead = world.lead_for(lead.email)
        if world_lead is not None:
            best = candidates[int(np.argmax(row))]
            chosen.append((world_lead, Strategy(best["framework"], best["tone"], "email")))
    return chosen


def version_graded(version: ModelVersion, world: World, organization: Organization) -> Efficacy | None:
    try:
        return efficacy(world.model, policy_choices(version, world, organization))
    except PolicyUnavailable:
        return None


def versions_table(world: World, organization: Organization, *, since) -> list[dict]:
    """Every policy version of the run: where it stands, what it sent and how REX recorded its results, and how
    good its choices truly are (the world's grade over all of the organization's leads)."""
    rows = []
    for version in ModelVersion.objects.filter(kind=ModelVersion.Kind.POLICY, created_at__gte=since).order_by("id"):
        outcomes = outcome_counts(OutcomeLabel.objects.filter(organization=organization, model_version=version))
        graded = version_graded(version, world, organization)
        rows.append(
            {
                "version": version.version,
                "id": version.pk,
                "status": version.status,
                "role": version.ab_role or "-",
                "traffic": version.traffic_percentage,
                "auc": (version.metrics or {}).get("auc"),
                "examples": (version.training_metadata or {}).get("examples"),
                "sends": outcomes["sends"],
                "reply_rate": outcomes["replied_rate"],
                "meeting_rate": outcomes["meeting_rate"],
                "true_reply_rate": graded.policy if graded else None,
                "of_oracle": graded.of_oracle if graded else None,
                "over_random": graded.over_random if graded else None,
            }
        )
    return rows


def promotion_audit(decisions: Iterable[PromotionDecision], graded: dict[int, float], baseline: float | None) -> list:
    """Each decision with the world's verdict: was the challenger truly better than what it was measured against?"""
    rows = []
    for decision in decisions:
        challenger = graded.get(decision.challenger_id)
        champion = graded.get(decision.champion_id) if decision.champion_id else baseline
        truly_worse = challenger is not None and champion is not None and challenger < champion
        rows.append(
            {
                "challenger": decision.challenger.version,
                "against": decision.champion.version if decision.champion_id else "baseline",
                "outcome": decision.outcome,
                "reason": decision.reason,
                "challenger_true": challenger,
                "against_true": champion,
                "truly_worse": truly_worse,
                "wrong_promotion": truly_worse and decision.outcome == PromotionDecision.Outcome.PROMOTED,
            }
        )
    return rows
