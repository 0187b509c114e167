"""The A/B traffic split and the holdout: deterministic by lead, proportions that hold, fast when repeated."""

import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.factories import ModelVersionFactory
from training import split
from training.models import ModelVersion
from training.registry import model_deploy, model_retire
from training.split import arm_for, bucket, is_holdout, split_cache_clear

pytestmark = pytest.mark.django_db

LEADS = range(1, 100_001)
POLICY = ModelVersion.Kind.POLICY


@pytest.fixture(autouse=True)
def _fresh_split():
    split_cache_clear()
    yield
    split_cache_clear()


def _deployed(role: str, traffic: float | None = None, kind: str = POLICY) -> ModelVersion:
    version = ModelVersionFactory(kind=kind, backend="local", artifact_path="/var/models/p.joblib")
    return model_deploy(version=version, role=role, traffic_percentage=traffic)


def test_nothing_deployed_means_no_arm():
    assert arm_for(lead_id=1, kind=POLICY) is None


def test_a_ten_percent_challenger_gets_ten_percent_of_100000_leads(
    django_assert_max_num_queries, monkeypatch, report_figure
):
    monkeypatch.setattr(split, "CACHE_SECONDS", 60.0)  # the cache window, not a busy machine's speed, is tested
    champion = _deployed(ModelVersion.Role.CHAMPION)
    challenger = _deployed(ModelVersion.Role.CHALLENGER, 10)
    split_cache_clear()

    started = time.perf_counter()
    with django_assert_max_num_queries(1):  # the experiment is loaded once, then served from the process cache
        arms = [arm_for(lead_id=lead_id, kind=POLICY) for lead_id in LEADS]
    elapsed = time.perf_counter() - started

    share = sum(arm == challenger for arm in arms) / len(arms)
    report_figure(f"challenger share {share:.4%} over {len(arms)} leads in {elapsed:.2f}s")
    assert 0.095 <= share <= 0.105
    assert sum(arm == champion for arm in arms) == len(arms) - sum(arm == challenger for arm in arms)


def test_a_lead_keeps_its_arm_across_calls_and_processes():
    champion = _deployed(ModelVersion.Role.CHAMPION)
    _deployed(ModelVersion.Role.CHALLENGER, 30)
    first = [arm_for(lead_id=lead_id, kind=POLICY).pk for lead_id in range(1, 2001)]

    again = [arm_for(lead_id=lead_id, kind=POLICY).pk for lead_id in range(1, 2001)]
    split_cache_clear()  # what another process, or this one after the cache expires, computes
    elsewhere = [arm_for(lead_id=lead_id, kind=POLICY).pk for lead_id in range(1, 2001)]

    assert first == again == elsewhere
    assert 0.25 < first.count(champion.pk) / 2000 < 0.75 and 0.2 < 1 - first.count(champion.pk) / 2000 < 0.4


def test_the_bucket_is_a_stable_hash_of_experiment_and_lead():
    # Pinned: another hash (or Python's per-process salted hash()) would move every lead to another arm.
    assert (bucket("policy:1,2:1"), bucket("holdout:42")) == (4362, 5747)
    assert all(0 <= bucket(f"x:{i}") < 10_000 for i in range(1000))


def test_challenger_slices_are_disjoint_and_the_champion_takes_the_rest():
    champion = _deployed(ModelVersion.Role.CHAMPION)
    first = _deployed(ModelVersion.Role.CHALLENGER, 20)
    second = _deployed(ModelVersion.Role.CHALLENGER, 5)

    arms = [arm_for(lead_id=lead_id, kind=POLICY) for lead_id in range(1, 20_001)]

    assert abs(arms.count(first) / 20_000 - 0.20) < 0.01
    assert abs(arms.count(second) / 20_000 - 0.05) < 0.01
    assert arms.count(champion) + arms.count(first) + arms.count(second) == 20_000


def test_without_a_champion_the_rest_is_served_by_no_model():
    challenger = _deployed(ModelVersion.Role.CHALLENGER, 10)

    arms = [arm_for(lead_id=lead_id, kind=POLICY) for lead_id in range(1, 10_001)]

    assert set(arms) == {challenger, None}
    assert abs(arms.count(challenger) / 10_000 - 0.10) < 0.01


def test_a_deploy_in_this_process_is_seen_at_once_and_kinds_are_separate():
    assert arm_for(lead_id=7, kind=POLICY) is None  # cached: nothing deployed
    champion = _deployed(ModelVersion.Role.CHAMPION)

    assert arm_for(lead_id=7, kind=POLICY) == champion
    assert arm_for(lead_id=7, kind=ModelVersion.Kind.MESSAGE_WRITER) is None

    model_retire(version=champion)
    assert arm_for(lead_id=7, kind=POLICY) is None


def test_a_deploy_made_by_another_process_is_seen_within_seconds(monkeypatch, django_assert_max_num_queries):
    clock = [1000.0]
    monkeypatch.setattr(split.time, "monotonic", lambda: clock[0])
    champion = _deployed(ModelVersion.Role.CHAMPION)
    assert arm_for(lead_id=7, kind=POLICY) == champion
    # Another process retires it: this process's registry generation does not move, only the database does.
    ModelVersion.objects.filter(pk=champion.pk).update(status=ModelVersion.Status.RETIRED, traffic_percentage=0)

    clock[0] += split.CACHE_SECONDS / 2
    with django_assert_max_num_queries(0):
        assert arm_for(lead_id=7, kind=POLICY) == champion  # still the cached split, no query per lead
    clock[0] += split.CACHE_SECONDS / 2 + 0.01
    assert arm_for(lead_id=7, kind=POLICY) is None
    assert split.CACHE_SECONDS <= 3.0  # a deploy made by beat reaches the worker before its next mission


def test_a_new_experiment_reshuffles_leads():
    _deployed(ModelVersion.Role.CHAMPION)
    challenger = _deployed(ModelVersion.Role.CHALLENGER, 50)
    before = {lead_id for lead_id in range(1, 2001) if arm_for(lead_id=lead_id, kind=POLICY) == challenger}

    _deployed(ModelVersion.Role.CHALLENGER, 10)
    after = {lead_id for lead_id in range(1, 2001) if arm_for(lead_id=lead_id, kind=POLICY) == challenger}

    # The experiment key changed, so assignments are drawn afresh (not just carved out of the champion).
    assert before != after and abs(len(after) / 2000 - 0.5) < 0.05


def test_no_holdout_by_default():
    assert not any(is_holdout(lead_id=lead_id) for lead_id in range(1, 10_001))


def test_the_holdout_share_holds_and_only_grows(settings):
    settings.TRAINING_HOLDOUT_PERCENTAGE = 5
    five = {lead_id for lead_id in LEADS if is_holdout(lead_id=lead_id)}
    settings.TRAINING_HOLDOUT_PERCENTAGE = 10
    ten = {lead_id for lead_id in LEADS if is_holdout(lead_id=lead_id)}

    assert 0.045 <= len(five) / len(LEADS) <= 0.055
    assert 0.095 <= len(ten) / len(LEADS) <= 0.105
    assert five < ten  # raising the percentage never releases a held-out lead


def test_a_holdout_outside_0_to_100_fails_fast(settings):
    settings.TRAINING_HOLDOUT_PERCENTAGE = 150
    with pytest.raises(ImproperlyConfigured):
        is_holdout(lead_id=1)
