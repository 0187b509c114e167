import statistics

import pytest

from simulation.oracle import best_strategy, choice_efficacy, efficacy, random_rate
from simulation.propensity import FRAMEWORKS, TONES, Strategy, hour_factor, inbox_rate
from simulation.world import World

SEEDS = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def worlds():
    return [World.build(seed=seed, leads=1200) for seed in SEEDS]


def test_the_oracle_is_never_worse_than_any_strategy_or_random(worlds):
    world = worlds[0]
    for lead in world.leads[:300]:
        best, rate = best_strategy(world.model, lead)
        assert all(world.model.reply_rate(lead, s) <= rate + 1e-12 for s in world.model.strategies(lead))
        assert rate >= random_rate(world.model, lead)
        assert best in world.model.strategies(lead)


def test_reply_rates_are_realistic_and_random_is_far_from_the_oracle(worlds):
    for world in worlds:
        graded = choice_efficacy(world.model, world.leads, lambda lead: Strategy("PAS", "professional"))
        assert 0.08 < graded.oracle < 0.25
        assert 0.03 < graded.random < 0.10
        assert graded.oracle / graded.random > 1.9


def segment_choice(model, lead) -> Strategy:
    return Strategy(model.preferred_framework[lead.industry_group], model.preferred_tone[lead.seniority_group])


def test_the_structure_is_learnable_by_lead_context(worlds):
    """A policy that knows each industry group's framework and each seniority group's tone (email only) clears
    the flywheel's bar; the best single strategy for everyone does not: the policy has to use the context."""
    for world in worlds:
        model = world.model
        contextual = choice_efficacy(model, world.leads, lambda lead, model=model: segment_choice(model, lead))
        assert contextual.of_oracle >= 0.95
        assert contextual.over_random >= 1.8
        one_size = max(
            (
                choice_efficacy(model, world.leads, lambda lead, f=f, t=t: Strategy(f, t))
                for f in FRAMEWORKS
                for t in TONES
            ),
            key=lambda graded: graded.policy,
        )
        assert one_size.of_oracle < 0.7


def test_efficacy_averages_the_choices_made():
    world = World.build(seed=6, leads=50)
    choices = [(lead, Strategy("BAB", "direct")) for lead in world.leads]

    graded = efficacy(world.model, choices)

    assert graded.leads == 50
    assert graded.policy == pytest.approx(statistics.mean(world.model.reply_rate(lead, s) for lead, s in choices))
    assert graded.random == pytest.approx(statistics.mean(random_rate(world.model, lead) for lead, _ in choices))
    assert graded.of_oracle == pytest.approx(graded.policy / graded.oracle)
    assert efficacy(world.model, []).leads == 0


def test_send_hour_and_domain_reputation_move_the_odds():
    world = World.build(seed=2, leads=1)
    lead = world.leads[0]
    strategy = Strategy("AIDA", "friendly")

    morning = world.model.reply_rate(lead, strategy, local_hour=9, weekday=1)
    night = world.model.reply_rate(lead, strategy, local_hour=23, weekday=1)
    weekend = world.model.reply_rate(lead, strategy, local_hour=9, weekday=6)
    burned = world.model.reply_rate(lead, strategy, local_hour=9, weekday=1, domain_reputation=0.5)

    assert morning > night and morning > weekend and morning > burned
    assert inbox_rate(1.0) == 1.0 and inbox_rate(0.5) < 0.6
    assert 0.95 < hour_factor(channel="email", local_hour=None, weekday=None) < 1.05


def test_the_fast_reply_rate_is_the_models_own_arithmetic():
    world = World.build(seed=4, leads=200)
    for lead in world.leads:
        for strategy in world.model.strategies(lead):
            for conditions in ({}, {"local_hour": 10, "weekday": 2, "domain_reputation": 0.6}):
                expected = world.model.propensities(lead, strategy, **conditions).reply_per_send
                assert world.model.reply_rate(lead, strategy, **conditions) == pytest.approx(expected)
