"""Training data: export 100,000 outcome labels as fine-tuning JSONL (seconds, peak RSS), train the local policy.

The export runs in a fresh child process so its peak RSS is its own (not this process's, which holds the seed
data). Reference: reading the same rows' fields with a plain ``.values()`` iterator, no redaction or writing.
Targets (issue 6): export ≤ 30 s and ≤ 200 MB RSS on PostgreSQL.
"""

import json
import random
import subprocess
import sys
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from agents.models import Lead, Organization
from agents.services import organization_get_or_create
from bench.common import Row
from outcomes.models import OutcomeLabel
from training.models import ModelVersion, TrainingRun

OUTCOMES = 100_000
LEADS = 2_000
BATCH = 5_000
FRAMEWORKS = ("AIDA", "PAS", "BAB", "FAB")
TONES = ("friendly", "direct", "formal")
INDUSTRIES = ("SaaS", "Fintech", "Logistics", "Healthcare", "Manufacturing")
ROLES = ("VP Sales", "Head of Growth", "Sales Manager", "Account Executive", "CEO")
BODY = (
    "Hi {first},\n\nWhen we spoke last spring {company} was weighing a new outbound stack. Teams like yours "
    "in {industry} have since cut ramp time by a third with a tighter first-touch sequence. Worth 15 minutes "
    "next week to see whether that fits where {company} is now?\n\nBest,\nAlex"
)

CHILD = """
import json, os, sys, time
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rex_project.settings")
sys.path.insert(0, {root!r})
import django
django.setup()
from training.dataset import dataset_export
from training.models import TrainingRun
run = TrainingRun.objects.get(pk={run_id})
def high_water_mb():  # VmHWM: this process's peak RSS (ru_maxrss would include the parent's, kept across exec)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024
baseline_mb = high_water_mb()
started = time.perf_counter()
result = dataset_export(run=run, organization_id={organization_id})
seconds = time.perf_counter() - started
peak_mb = high_water_mb()
print(json.dumps({{"seconds": seconds, "peak_mb": peak_mb, "baseline_mb": baseline_mb, "examples": result.train_examples
                  + result.validation_examples, "status": result.status}}))
"""


def _seed(organization: Organization) -> None:
    rng = random.Random(6)
    leads = Lead.objects.bulk_create(
        Lead(
            organization=organization, first_name=f"Pat{i}", last_name="Lee", email=f"pat{i}@lead{i}.example",
            phone=f"+1415555{i:04d}", company=f"Company {i}", industry=rng.choice(INDUSTRIES),
            title=rng.choice(ROLES), company_size=rng.choice((15, 120, 900, 5000)), timezone="America/New_York",
        )
        for i in range(LEADS)
    )  # fmt: skip
    sent = timezone.now() - timedelta(days=10)
    for start in range(0, OUTCOMES, BATCH):
        rows = []
        for i in range(start, min(start + BATCH, OUTCOMES)):
            lead = leads[i % LEADS]
            replied = rng.random() < 0.5
            rows.append(
                OutcomeLabel(
                    organization=organization, lead=lead, channel="email", framework=rng.choice(FRAMEWORKS),
                    tone=rng.choice(TONES), subject_line=f"{lead.company} and outbound",
                    message_body=BODY.format(first=lead.first_name, company=lead.company, industry=lead.industry),
                    sent_at=sent, delivered=True, replied=replied, interest_signal=replied or None,
                    training_label="positive" if replied else "neutral", training_weight=3.0 if replied else 1.0,
                    lead_industry=lead.industry, lead_role=lead.title, company_size=lead.company_size,
                    lead_context={"industry": lead.industry, "role": lead.title, "seniority": "executive",
                                  "company_size": lead.company_size, "timezone": lead.timezone},
                )
            )  # fmt: skip
        OutcomeLabel.objects.bulk_create(rows, batch_size=1000)


def _reference_read(organization: Organization) -> float:
    started = time.perf_counter()
    fields = ("id", "lead__first_name", "lead__email", "message_body", "subject_line", "lead_context")
    for _ in OutcomeLabel.objects.filter(organization=organization).values(*fields).iterator(chunk_size=2000):
        pass
    return time.perf_counter() - started


def _export(organization: Organization) -> dict:
    run = TrainingRun.objects.create(kind=ModelVersion.Kind.MESSAGE_WRITER, backend=ModelVersion.Backend.OPENAI)
    code = CHILD.format(root=str(settings.BASE_DIR), run_id=run.pk, organization_id=organization.pk)
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _train(organization: Organization) -> tuple[float, dict]:
    from training.policy import policy_train

    run = TrainingRun.objects.create(kind=ModelVersion.Kind.POLICY, backend=ModelVersion.Backend.LOCAL)
    started = time.perf_counter()
    version = policy_train(run=run, organization_id=organization.pk)
    return time.perf_counter() - started, (version.metrics if version else {})


def run() -> list[Row]:
    database = connection.vendor
    organization = organization_get_or_create(name="bench-training")
    try:
        _seed(organization)
        reference = _reference_read(organization)
        export = _export(organization)
        train_seconds, metrics = _train(organization)
    finally:
        ModelVersion.objects.filter(training_metadata__organization_id=organization.pk).delete()
        organization.delete()
    if export["status"] != "ok":
        raise RuntimeError(f"export did not produce a dataset: {export}")
    return [
        Row(
            f"training export of {OUTCOMES:,} labels ({export['examples']:,} examples, {database})",
            export["seconds"], "s", target="≤ 30 s", reference=reference, met=export["seconds"] <= 30,
        ),
        Row(
            "training export peak RSS (process incl. Django)", export["peak_mb"], "MB", target="≤ 200 MB",
            reference=export["baseline_mb"], met=export["peak_mb"] <= 200,
        ),
        Row(f"local policy training on {OUTCOMES:,} labels (AUC {metrics.get('auc', 0):.2f})", train_seconds, "s"),
    ]  # fmt: skip
