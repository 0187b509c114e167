"""Decision engine: p95 per decision (state machine + rules, rules loaded once and cached)."""

import time

from django.db import transaction

from agents.decisions.engine import decide
from agents.models import Lead
from agents.services import organization_get_or_create
from bench.common import Row, percentile

DECISIONS = 20_000


def run() -> list[Row]:
    with transaction.atomic():
        organization = organization_get_or_create(name="bench-decisions")
        lead, _ = Lead.objects.get_or_create(
            organization=organization, email="bench.decisions@example.org",
            defaults={"state": "scored", "icp_score": 0.3, "title": "VP Sales"},
        )  # fmt: skip
        facts = [{"icp_score": (i % 100) / 100, "icp_threshold": 0.4, "industry": "SaaS"} for i in range(100)]
        decide(lead=lead, stage="qualify", event="qualify", facts=facts[0])  # load and cache the rules
        latencies, layers = [], {}
        for i in range(DECISIONS):
            started = time.perf_counter()
            decision = decide(lead=lead, stage="qualify", event="qualify", facts=facts[i % 100])
            latencies.append((time.perf_counter() - started) * 1000)
            layers[decision.layer] = layers.get(decision.layer, 0) + 1
        transaction.set_rollback(True)
    p95 = percentile(latencies, 95)
    return [
        Row("decision p50 (state machine + rules)", percentile(latencies, 50), "ms"),
        Row("decision p95 (state machine + rules)", p95, "ms", target="≤ 1 ms", met=p95 <= 1.0),
    ]
