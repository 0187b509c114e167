"""The A/B traffic split: which deployed model version serves a lead, and which leads are held out entirely.

Deterministic: a lead's bucket is a hash of the experiment and the lead id, so the lead keeps its arm for as
long as the experiment (the set of active versions of the kind) is unchanged, in every process. Bucket slices
are in hundredths of a percent: a challenger at 10% owns 1000 of the 10,000 buckets, the champion the rest.
Both kinds are split: the personalizer's policy (strategy) and its message writer (text), each by its own
experiment. ``holdout_lift`` measures what the holdout is for.
"""

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Q

from agents.models import AgentRun, Lead
from outcomes.models import OutcomeLabel
from training.models import ModelVersion
from training.registry import active_versions, registry_generation

BUCKETS = 10_000
# How long a process trusts its copy of the deployed versions. A deploy made in this process is seen at once
# (the registry bumps its generation); one made elsewhere (the weekly cycle in beat, a promotion in the admin)
# reaches this process within this many seconds. Re-reading is one small indexed query (the kind's deployed
# versions, a handful of rows), so every two seconds costs a worker nothing, while a deploy takes effect for
# the very next mission instead of leaving it half on the old split; within a batch of leads it is still one
# query for thousands of leads.
CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Experiment:
    key: str
    slices: tuple[tuple[int, ModelVersion | None], ...]  # (exclusive upper bucket, version), ascending


_experiments: dict[str, tuple[float, int, Experiment]] = {}


def split_cache_clear() -> None:
    """Forget the cached experiments (tests, and anything that changed deployments behind the registry)."""
    _experiments.clear()


def bucket(key: str) -> int:
    """A stable bucket in [0, BUCKETS) for a string (the same in every process, unlike ``hash``)."""
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def _share(percentage: float) -> int:
    return max(0, min(BUCKETS, round(percentage * BUCKETS / 100)))


def experiment_build(kind: str, versions: list[ModelVersion]) -> Experiment:
    """Challengers take their slices first (by id), the champion the rest; no champion leaves the rest unserved."""
    challengers = sorted((v for v in versions if v.ab_role == ModelVersion.Role.CHALLENGER), key=lambda v: v.pk)
    champion = next((v for v in versions if v.ab_role == ModelVersion.Role.CHAMPION), None)
    slices, upper = [], 0
    for version in challengers:
        upper = min(BUCKETS, upper + _share(version.traffic_percentage))
        slices.append((upper, version))
    slices.append((BUCKETS, champion))
    key = f"{kind}:" + ",".join(str(v.pk) for v in sorted(versions, key=lambda v: v.pk))
    return Experiment(key=key, slices=tuple(slices))


def experiment_for(kind: str) -> Experiment | None:
    """The kind's current experiment (cached per process), or None when nothing of the kind is deployed."""
    now, generation = time.monotonic(), registry_generation()
    cached = _experiments.get(kind)
    if cached is None or cached[0] <= now or cached[1] != generation:
        versions = active_versions(kind)
        cached = (now + CACHE_SECONDS, generation, experiment_build(kind, versions) if versions else None)
        _experiments[kind] = cached
    return cached[2]


def arm_for(*, lead_id: int, kind: str) -> ModelVersion | None:
    """The deployed version that serves this lead, or None (nothing deployed, or the champion-less rest)."""
    experiment = experiment_for(kind)
    if experiment is None:
        return None
    position = bucket(f"{experiment.key}:{lead_id}")
    for upper, version in experiment.slices:
        if position < upper:
            return version
    return None


def holdout_percentage() -> float:
    percentage = float(settings.TRAINING_HOLDOUT_PERCENTAGE)
    if not 0.0 <= percentage <= 100.0:
        raise ImproperlyConfigured(f"TRAINING_HOLDOUT_PERCENTAGE must be within 0 and 100, not {percentage}.")
    return percentage


def is_holdout(*, lead_id: int) -> bool:
    """Whether the lead is in the holdout, which is never contacted, so lift over doing nothing can be measured.

    Keyed by the lead alone (not by any experiment), so a held-out lead stays held out across deployments;
    raising the percentage only adds leads to the holdout.
    """
    share = _share(holdout_percentage())
    return share > 0 and bucket(f"holdout:{lead_id}") < share


# A lead's state after one of these is a positive outcome, whichever channel brought it (our message, or the lead
# coming back by itself: what a held-out lead can only do).
POSITIVE_STATES = (Lead.State.REPLIED, Lead.State.MEETING, Lead.State.WON)


def _positive_rate(leads) -> dict:
    counts = leads.aggregate(leads=Count("id"), positive=Count("id", filter=Q(state__in=POSITIVE_STATES)))
    counts["positive_rate"] = round(counts["positive"] / counts["leads"], 4) if counts["leads"] else None
    return counts


def holdout_lift(*, organization_id: int) -> dict:
    """The organization's held-out leads against its treated ones: how many, and how many reached a positive
    state (``POSITIVE_STATES``, the lead's current state).

    Held out: leads the personalizer skipped because they are in the holdout (its AgentRun, reason "holdout").
    Treated: leads that were sent a message (an outcome label), held-out ones excepted. ``lift`` is the treated
    positive rate minus the held-out one (absolute; None until both groups have leads). A held-out lead is never
    written to, so its positive state can only come from elsewhere (it wrote or called by itself); the lift is
    what our messages add to that. Lead state is the lead's latest, so a won deal counts once, however reached.
    """
    held_ids = AgentRun.objects.filter(
        mission__organization_id=organization_id,
        agent=AgentRun.Agent.PERSONALIZER,
        decision="skip",
        output_summary__skipped="holdout",
        lead__isnull=False,  # a NULL in the subquery would empty the NOT IN below
    ).values("lead_id")
    treated_ids = OutcomeLabel.objects.filter(organization_id=organization_id).values("lead_id")
    leads = Lead.objects.filter(organization_id=organization_id)
    held = _positive_rate(leads.filter(pk__in=held_ids))
    treated = _positive_rate(leads.filter(pk__in=treated_ids).exclude(pk__in=held_ids))
    measurable = held["positive_rate"] is not None and treated["positive_rate"] is not None
    return {
        "holdout_percentage": holdout_percentage(),
        "positive_states": [state.value for state in POSITIVE_STATES],
        "holdout": held,
        "treated": treated,
        "lift": round(treated["positive_rate"] - held["positive_rate"], 4) if measurable else None,
    }
