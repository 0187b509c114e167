"""The training cycle: data check → train → register → deploy, and the weekly guard."""

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from outcomes.models import OutcomeLabel
from tests.factories import LeadFactory, ModelVersionFactory, TrainingRunFactory
from tests.training.test_promotion import BASE, _plant
from training.cycle import (
    CycleTooSoon,
    cycle_blocker,
    cycle_finish,
    run_training_cycle,
    training_run_create,
    week_start,
)
from training.models import ModelVersion, PromotionDecision, TrainingRun

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
    # The newer challenger replaces the one still under test, with a logged decision.
    assert first.model_version.status == ModelVersion.Status.RETIRED
    assert second.model_version.version != first.model_version.version
    decision = PromotionDecision.objects.get(challenger=first.model_version)
    assert decision.outcome == PromotionDecision.Outcome.RETIRED
    assert decision.reason.startswith(f"Replaced by the new challenger of training run {second.pk}")


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


# --- A challenger replaced by the next cycle gets its decision first --------------------------------------------


def _writer(version: str, **fields) -> ModelVersion:
    return ModelVersionFactory(
        kind=ModelVersion.Kind.MESSAGE_WRITER, version=version, provider_model_id=f"ft:gpt-4o:org:{version}:x", **fields
    )


def _ab_test(*, days: float) -> tuple[ModelVersion, ModelVersion]:
    deployed = timezone.now() - timedelta(days=days)
    on_test = {"status": "deployed", "deployed_at": deployed}
    champion = _writer("v1.0.0", ab_role="champion", traffic_percentage=90.0, **on_test)
    challenger = _writer("v1.1.0", ab_role="challenger", traffic_percentage=10.0, **on_test)
    return champion, challenger


def _replacing_run() -> TrainingRun:
    """The run of the new week: its version trained and ready to deploy as the challenger."""
    new = _writer("v1.2.0", status="ready")
    return TrainingRunFactory(status=TrainingRun.Status.SUCCEEDED, model_version=new, params={"ab_test_percentage": 10})


def test_a_challenger_that_already_won_is_promoted_when_the_next_cycle_replaces_it():
    """Beat: the weekly cycle (Monday 02:00) replaces last Monday's challenger minutes before it has 7 full days;
    the daily promotion check would only look at 03:30. It is decided on what it has, and it clearly won."""
    champion, challenger = _ab_test(days=6.99)
    rng, lead, sent = random.Random(3), LeadFactory(), timezone.now() - timedelta(days=5)
    _plant(lead, champion, 600, BASE, rng, sent_at=sent)
    _plant(lead, challenger, 600, {"reply": 0.30, "meeting": 0.10, "deal": 0.05}, rng, sent_at=sent)
    run = _replacing_run()

    new = cycle_finish(run=run)

    challenger.refresh_from_db()
    champion.refresh_from_db()
    assert (challenger.status, challenger.ab_role, challenger.traffic_percentage) == ("deployed", "champion", 90.0)
    assert champion.status == ModelVersion.Status.RETIRED
    assert (new.status, new.ab_role, new.traffic_percentage) == ("deployed", "challenger", 10.0)
    decision = PromotionDecision.objects.get(challenger=challenger)
    assert decision.outcome == PromotionDecision.Outcome.PROMOTED
    assert decision.reason.startswith(f"Replaced by the new challenger of training run {run.pk}: decided on")
    assert decision.figures["replaced_by_run"] == run.pk
    assert decision.figures["challenger"]["messages"] == 600 and decision.figures["p_value"] < 0.05


def test_a_challenger_replaced_before_its_test_had_exposure_is_retired_with_a_logged_decision():
    champion, challenger = _ab_test(days=2)
    run = _replacing_run()

    cycle_finish(run=run)

    challenger.refresh_from_db()
    assert challenger.status == ModelVersion.Status.RETIRED
    (decision,) = PromotionDecision.objects.filter(challenger=challenger)
    assert decision.outcome == PromotionDecision.Outcome.RETIRED
    assert decision.reason.startswith(
        f"Replaced by the new challenger of training run {run.pk} before its test had enough exposure: retired."
    )
    assert decision.figures["champion"]["messages"] == 0 and decision.champion == champion
    champion.refresh_from_db()
    assert (champion.ab_role, champion.traffic_percentage) == ("champion", 90.0)


def test_finishing_a_run_twice_deploys_and_decides_once():
    _ab_test(days=2)
    run = _replacing_run()

    cycle_finish(run=run)
    assert cycle_finish(run=run) is None

    assert PromotionDecision.objects.count() == 1
    assert ModelVersion.objects.filter(ab_role="challenger", status="deployed").count() == 1


# --- The weekly guard: the ISO calendar week -------------------------------------------------------------------

MONDAY = datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC)  # a Monday, at the beat's hour


def _run_created_at(moment: datetime, **fields) -> TrainingRun:
    fields = {"kind": "policy", "backend": "local", "status": TrainingRun.Status.SUCCEEDED, **fields}
    run = TrainingRunFactory(**fields)
    TrainingRun.objects.filter(pk=run.pk).update(created_at=moment)
    return run


def test_the_week_starts_on_monday_at_midnight_utc():
    assert week_start(MONDAY) == datetime(2026, 11, 23, tzinfo=UTC)
    assert week_start(datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)) == datetime(2026, 11, 23, tzinfo=UTC)
    assert week_start(datetime(2026, 11, 30, 0, 0, 0, tzinfo=UTC)) == datetime(2026, 11, 30, tzinfo=UTC)


def test_last_mondays_run_does_not_block_this_monday_even_a_few_seconds_short_of_seven_days(monkeypatch):
    _run_created_at(MONDAY - timedelta(days=7) + timedelta(seconds=5))  # last Monday 02:00:05
    monkeypatch.setattr(timezone, "now", lambda: MONDAY)

    run = training_run_create(kind="policy")

    assert run.created_at == MONDAY
    with pytest.raises(CycleTooSoon) as refused:  # this week's run blocks the rest of the week
        training_run_create(kind="policy")
    assert refused.value.run == run


def test_a_run_earlier_this_week_blocks_until_the_week_ends():
    earlier = _run_created_at(MONDAY + timedelta(hours=1))  # Monday 03:00

    assert cycle_blocker("policy", now=MONDAY + timedelta(days=6, hours=21, minutes=59)) == earlier  # Sunday 23:59
    assert cycle_blocker("policy", now=MONDAY + timedelta(days=7) - timedelta(hours=2)) is None  # next Monday 00:00
    assert cycle_blocker("message_writer", now=MONDAY + timedelta(days=1)) is None  # each kind has its own week


@pytest.mark.parametrize("status", ["failed", "cancelled", "not_enough_data"])
def test_a_run_that_produced_nothing_does_not_use_up_the_week(status):
    _run_created_at(MONDAY + timedelta(hours=1), status=status)
    assert cycle_blocker("policy", now=MONDAY + timedelta(days=1)) is None


# --- Concurrent starts ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_starts_of_a_kind_without_any_version_yet_create_one_run():
    """Beat and an operator at once, before the kind has any ModelVersion row to lock: the second start waits for
    the first one's transaction and is then refused (PostgreSQL: advisory lock per kind; SQLite: IMMEDIATE)."""
    outcome, waiting = {}, threading.Event()

    def second_start():
        waiting.set()
        try:
            outcome["created"] = training_run_create(kind="policy").pk
        except CycleTooSoon as exc:
            outcome["refused"] = exc.run.pk
        finally:
            connection.close()

    with transaction.atomic():
        first = training_run_create(kind="policy")
        other = threading.Thread(target=second_start)
        other.start()
        waiting.wait(5)
        other.join(timeout=1.0)
        assert other.is_alive(), f"the second start did not wait for the first: {outcome}"
    other.join(timeout=30)

    assert outcome == {"refused": first.pk}
    assert TrainingRun.objects.count() == 1
