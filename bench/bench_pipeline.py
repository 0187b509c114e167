"""Pipeline: leads per minute through lead_reactivation on sandbox providers, one worker of
concurrency 2, next to chains of six no-op tasks on the same broker in the same run.

Website fetching is off in this run (no internet here); every other source and check is on."""

import time

from celery import chain
from django.conf import settings

from agents.missions import mission_create
from agents.models import Lead, Mission, SendingDomain
from agents.services import organization_get_or_create
from bench.common import Row, running_worker
from rex_project.celery import app
from rex_project.tasks import noop

LEADS = 2000
NOOP_CHAINS = 300


def _noop_chains_per_minute() -> float:
    started = time.perf_counter()
    results = [
        chain(noop.si(i), *(noop.s() for _ in range(4)), noop.s().set(ignore_result=False)).apply_async()
        for i in range(NOOP_CHAINS)
    ]
    for result in results:
        result.get(timeout=600, interval=0.01)
    return NOOP_CHAINS / (time.perf_counter() - started) * 60


def _leads_per_minute() -> float:
    organization = organization_get_or_create(name=f"bench-pipeline-{time.time_ns()}")
    SendingDomain.objects.create(organization=organization, domain="bench.rexbench.io", daily_cap=100_000)
    Lead.objects.bulk_create(
        [
            Lead(organization=organization, email=f"lead{i}@company{i % 50}.rexbench.io", title="VP Sales",
                 industry="SaaS", company_size=120, timezone="UTC", lost_reason="timing")
            for i in range(LEADS)
        ]
    )  # fmt: skip
    lead_ids = list(organization.leads.values_list("pk", flat=True))
    started = time.perf_counter()
    mission, _ = mission_create(organization=organization, type=Mission.Type.LEAD_REACTIVATION, lead_ids=lead_ids)
    while True:
        mission.refresh_from_db()
        if mission.status not in (Mission.Status.QUEUED, Mission.Status.RUNNING):
            break
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    if mission.status != Mission.Status.COMPLETED:
        raise RuntimeError(f"bench mission ended {mission.status}: {mission.failure_reason}")
    return LEADS / elapsed * 60


def run() -> list[Row]:
    settings.SCRAPER_WEBSITE_ENABLED = False
    app.control.purge()
    with running_worker(concurrency=2, name="bench-pipeline", env={"SCRAPER_WEBSITE_ENABLED": "false"}):
        noop.delay("warm-up").get(timeout=120)
        reference = _noop_chains_per_minute()
        leads = _leads_per_minute()
    return [
        Row("chains of 6 no-op tasks", reference, "chains/min"),
        Row(
            "lead_reactivation throughput", leads, "leads/min", target="≥ 3,000/min and ≥ 0.5 × no-op chains",
            reference=reference, met=leads >= 3000 and leads >= 0.5 * reference,
        ),
    ]  # fmt: skip
