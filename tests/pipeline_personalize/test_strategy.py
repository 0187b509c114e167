import random
from collections import Counter

import pytest

from agents.pipeline.personalizer import FRAMEWORKS, TONES, choose_strategy

pytestmark = pytest.mark.django_db

WINNER = ("PAS", "friendly")
ALL_ARMS = [(framework, tone) for framework in FRAMEWORKS for tone in TONES]


def _draws(arms_stats, *, seed=7, n=1000):
    rng = random.Random(seed)
    return [choose_strategy(arms_stats=arms_stats, rng=rng)[:2] for _ in range(n)]


def test_a_proven_winner_gets_most_of_the_traffic():
    stats = {arm: (200, 10) for arm in ALL_ARMS}  # 5% everywhere ...
    stats[WINNER] = (200, 40)  # ... but 20% here

    counts = Counter(_draws(stats))

    assert counts[WINNER] > 700
    assert counts[WINNER] == max(counts.values())


def test_untried_arms_are_still_explored():
    counts = Counter(_draws({WINNER: (200, 40)}))

    untried = sum(n for arm, n in counts.items() if arm != WINNER)
    assert untried > 0
    assert len(counts) > 6  # many different untried arms, not one lucky one


def test_an_arm_that_keeps_failing_is_rarely_chosen():
    stats = {arm: (100, 15) for arm in ALL_ARMS}
    stats[("FAB", "direct")] = (400, 0)

    counts = Counter(_draws(stats))

    assert counts[("FAB", "direct")] < 10


def test_the_same_seed_makes_the_same_choices():
    stats = {WINNER: (50, 6), ("AIDA", "direct"): (40, 5)}

    assert _draws(stats, seed=42, n=50) == _draws(stats, seed=42, n=50)
    assert _draws(stats, seed=42, n=50) != _draws(stats, seed=43, n=50)


def test_the_explanation_names_the_sampled_value_and_the_arm_stats():
    stats = {arm: (100, 1) for arm in ALL_ARMS}
    stats[WINNER] = (100, 60)

    framework, tone, explanation = choose_strategy(arms_stats=stats, rng=random.Random("1:2"))

    assert (framework, tone) == WINNER
    assert explanation["method"] == "thompson_beta"
    assert 0 < explanation["sampled"] < 1
    assert explanation["arm_sent"] == 100 and explanation["arm_replies"] == 60
    assert explanation["arm_reply_rate"] == 0.6
    assert explanation["arms_tried"] == len(ALL_ARMS)


def test_unknown_arms_and_impossible_counts_are_ignored():
    stats = {("SPIN", "casual"): (1000, 900), WINNER: (10, 50)}  # more replies than sends: clamp, do not crash

    framework, tone, explanation = choose_strategy(arms_stats=stats, rng=random.Random(1))

    assert framework in FRAMEWORKS and tone in TONES
    assert explanation["arms_tried"] == 1
