"""The oracle: the world knows every lead's best strategy, so it can grade REX's choices.

Three expected reply rates (P(a person replies | sent), averaged over the same leads) are compared:

* **policy**: the strategies REX actually chose (or a choice function, e.g. a deployed model's);
* **random**: a uniformly random choice among the strategies REX could have made for each lead;
* **oracle**: the best strategy for each lead.

They are *expected* rates from the hidden model, not counts of replies, so they measure the quality of the
choices without the noise of a few hundred coin flips. Every figure is taken under the same reference
conditions: a clean sending domain (reputation 1.0) and the send hour averaged over the channel's window.
REX's policy does not pick the hour or the domain, and both factors multiply every strategy alike, so they
would scale all three figures and change none of the ratios.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from simulation.propensity import HiddenModel, LeadTraits, Strategy


@lru_cache(maxsize=100_000)
def _reference(model: HiddenModel, lead: LeadTraits) -> tuple[float, float]:
    """(random, oracle) expected reply rates of one lead, computed once per model and lead."""
    return random_rate(model, lead), best_strategy(model, lead)[1]


def best_strategy(model: HiddenModel, lead: LeadTraits) -> tuple[Strategy, float]:
    """The strategy with the highest expected reply rate for the lead, and that rate."""
    rates = [(model.reply_rate(lead, strategy), strategy) for strategy in model.strategies(lead)]
    rate, strategy = max(rates, key=lambda pair: pair[0])
    return strategy, rate


def random_rate(model: HiddenModel, lead: LeadTraits) -> float:
    """The exact expectation of a uniformly random choice among the lead's strategies."""
    strategies = model.strategies(lead)
    return sum(model.reply_rate(lead, strategy) for strategy in strategies) / len(strategies)


@dataclass(frozen=True)
class Efficacy:
    leads: int
    policy: float
    random: float
    oracle: float

    @property
    def of_oracle(self) -> float:
        return self.policy / self.oracle if self.oracle else 0.0

    @property
    def over_random(self) -> float:
        return self.policy / self.random if self.random else 0.0

    def as_dict(self) -> dict:
        return {
            "leads": self.leads,
            "policy": round(self.policy, 5),
            "random": round(self.random, 5),
            "oracle": round(self.oracle, 5),
            "policy_of_oracle": round(self.of_oracle, 4),
            "policy_over_random": round(self.over_random, 4),
        }


def efficacy(model: HiddenModel, choices: Iterable[tuple[LeadTraits, Strategy]]) -> Efficacy:
    """Grade (lead, chosen strategy) pairs against random choice and the oracle on the same leads."""
    n = policy = random = oracle = 0.0
    for lead, strategy in choices:
        n += 1
        policy += model.reply_rate(lead, strategy)
        lead_random, lead_oracle = _reference(model, lead)
        random += lead_random
        oracle += lead_oracle
    if not n:
        return Efficacy(0, 0.0, 0.0, 0.0)
    return Efficacy(int(n), policy / n, random / n, oracle / n)


def choice_efficacy(
    model: HiddenModel, leads: Iterable[LeadTraits], choose: Callable[[LeadTraits], Strategy]
) -> Efficacy:
    """Grade a choice function (lead → strategy) over ``leads``."""
    return efficacy(model, ((lead, choose(lead)) for lead in leads))
