"""Reads for leads and campaigns."""

import math

from django.db.models import Avg, Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from agents.models import AgentRun, Lead, Mission, Organization


def lead_list(*, organization: Organization, filters: dict | None = None) -> QuerySet[Lead]:
    filters = filters or {}
    queryset = Lead.objects.filter(organization=organization)
    for name in ("state", "industry", "company"):
        if filters.get(name):
            queryset = queryset.filter(**{name: filters[name]})
    if filters.get("search"):
        queryset = queryset.filter(email__icontains=filters["search"].lower())
    return queryset.order_by("-created_at", "-id")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def mission_agent_counts(*, mission: Mission) -> dict:
    rows = (
        AgentRun.objects.filter(mission=mission)
        .values("agent")
        .annotate(runs=Count("id"), failed=Count("id", filter=Q(success=False)))
    )
    return {row["agent"]: {"runs": row["runs"], "failed": row["failed"]} for row in rows}


def mission_lead_counts(*, mission: Mission) -> dict:
    rows = mission.mission_leads.values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def decision_stats(*, organization: Organization, sample: int = 10_000) -> dict:
    """Split of decisions per layer, decision latency, LLM cache hit rate and tokens."""
    runs = AgentRun.objects.filter(mission__organization=organization).exclude(decision_layer=AgentRun.Layer.NONE)
    per_layer = dict(runs.values_list("decision_layer").annotate(n=Count("id")).order_by())
    total = sum(per_layer.values())
    layers = {
        layer: {
            "count": per_layer.get(layer, 0),
            "percent": round(100 * per_layer.get(layer, 0) / total, 1) if total else 0.0,
        }
        for layer in (AgentRun.Layer.STATE_MACHINE, AgentRun.Layer.RULES, AgentRun.Layer.LLM)
    }
    latencies = list(runs.exclude(decision_ms=None).order_by("-id").values_list("decision_ms", flat=True)[:sample])
    llm = runs.filter(decision_layer=AgentRun.Layer.LLM).aggregate(
        calls=Count("id"),
        cache_hits=Count("id", filter=Q(llm_cache_hit=True)),
        fallbacks=Count("id", filter=Q(llm_fallback=True)),
        tokens=Coalesce(Sum("llm_tokens"), 0),
    )
    answered = llm["calls"] - llm["fallbacks"]
    return {
        "decisions": total,
        "layers": layers,
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "sample": len(latencies)},
        "llm": {**llm, "cache_hit_rate": round(llm["cache_hits"] / answered, 4) if answered else None},
    }


def agent_status(*, organization: Organization) -> list[dict]:
    runs = AgentRun.objects.filter(mission__organization=organization)
    rows = {
        row["agent"]: row
        for row in runs.values("agent").annotate(
            runs=Count("id"), failures=Count("id", filter=Q(success=False)), avg_ms=Avg("duration_ms")
        )
    }
    status = []
    for agent, label in AgentRun.Agent.choices:
        row = rows.get(agent, {"runs": 0, "failures": 0, "avg_ms": None})
        last_error = runs.filter(agent=agent, success=False).order_by("-id").values("error", "created_at").first()
        status.append({
            "agent": agent, "label": label, "runs": row["runs"],
            "success_rate": round(1 - row["failures"] / row["runs"], 4) if row["runs"] else None,
            "error_rate": round(row["failures"] / row["runs"], 4) if row["runs"] else None,
            "average_duration_ms": round(row["avg_ms"], 2) if row["avg_ms"] is not None else None,
            "last_error": last_error,
        })  # fmt: skip
    return status
