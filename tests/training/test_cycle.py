"""The training cycle: data check → train → register → deploy, and the weekly guard."""

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from outcomes.models import OutcomeLabel
from tests.factories import LeadFactory
from training.cycle import CycleTooSoon, run_training_cycle
from training.models import ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db

FRAMEWORKS = ("AIDA", "PAS", "BAB")
TONES = ("friendly", "direct")


def _plant_outcomes(n: int, seed: int = 7) -> None:
    """Sent messages whose positive rate depends on framework × seniority (a signal a model can learn)."""
    rng = random.Random(seed)
    lead = LeadFactory()
    rows = []
    for _ in range(n):
        framework, tone = rng.choice(FRAMEWORKS), rng.choice(TONES)
        seniority = rng.choice(("executive", "manager", "individual"))
        positive = rng.random() < (0.45 if (framework == "PAS") == (seniority == "executive") else 0.08)
        rows.append(
            OutcomeLabel(
                organization=lead.organization,
                lead=lead,
                channel="email",
                framework=framework,
                tone=tone,
                message_body="Hello",
                sent_at=timezone.now() - timedelta(days=rng.randint(8, 30)),
                delivered=True,
                replied=positive,
                interest_signal=positive or None,
                training_label="positive" if positive else "neutral",
                training_weight=3.0 if positive else 1.0,
                lead_industry=rng.choice(("saas", "fintech")),
                lead_role="VP Sales" if seniority == "executive" else "Analyst",
                company_size=rng.choice((20, 200, 2000)),
                lead_context={"industry": "saas", "seniority": seniority, "company_size": 200, "timezone": "UTC"},
            )
        )
    OutcomeLabel.objects.bulk_create(rows)


def test_a_cycle_trains_registers_and_deploys_the_challenger_at_the_ab_share():
    _plant_outcomes(600)

    run = run_training_cycle(kind="policy", ab_test_percentage=10.0)

    assert run.status == TrainingRun.Status.SUCCEEDED, run.error
    version = run.model_version
    assert (version.kind, version.backend, version.status) == ("policy", "local", "deployed")
    assert (version.ab_role, version.traffic_percentage) == ("challenger", 10.0)
    assert version.metrics["auc"] > 0.5
    assert run.started_at and run.finished_at


def test_at_most_one_cycle_per_kind_per_week_unless_forced():
    _plant_outcomes(600)
    first = run_training_cycle(kind="policy")

    with pytest.raises(CycleTooSoon) as refused:
        run_training_cycle(kind="policy")
    assert refused.value.run.pk == first.pk

    second = run_training_cycle(kind="policy", force=True)
    assert second.status == TrainingRun.Status.SUCCEEDED
    first.model_version.refresh_from_db()
    # The newer challenger replaces the one still under test.
    assert first.model_version.status == ModelVersion.Status.RETIRED
    assert second.model_version.version != first.model_version.version


def test_deploy_immediately_makes_the_new_version_the_champion():
    _plant_outcomes(600)

    run = run_training_cycle(kind="policy", deploy_immediately=True)

    assert (run.model_version.ab_role, run.model_version.traffic_percentage) == ("champion", 100.0)


def test_too_little_data_is_a_result_not_an_error_and_does_not_use_up_the_week():
    _plant_outcomes(10)

    run = run_training_cycle(kind="policy")

    assert run.status == TrainingRun.Status.NOT_ENOUGH_DATA
    assert run.model_version is None
    assert not ModelVersion.objects.exists()
    _plant_outcomes(600, seed=8)
    assert run_training_cycle(kind="policy").status == TrainingRun.Status.SUCCEEDED


def test_a_training_failure_is_recorded_on_the_run(monkeypatch):
    _plant_outcomes(600)

    def explode(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("training.policy.policy_train", explode)

    run = run_training_cycle(kind="policy")

    assert run.status == TrainingRun.Status.FAILED
    assert "disk full" in run.error
