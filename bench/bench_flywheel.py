"""Flywheel efficacy (issue 7): the deployed policy's expected reply rate against the oracle and random choice,
averaged over 5 world seeds, and A/B promotions of truly worse challengers (must be 0).

Each seed runs ``manage.py simulate --quick`` (REX's own views, agents, receivers and trainer in this process;
rolled back afterwards); the world grades the final deployed policy's choice for every lead.
"""

import io
import time

from django.conf import settings
from django.core.management import call_command

from bench.common import Row
from simulation.efficacy import efficacy_load
from simulation.summary import OF_ORACLE_TARGET, OVER_RANDOM_TARGET

SEEDS = "1,2,3,4,5"
# More than the 5-minute demo default (5 weeks, 1,800 leads): an A/B arm needs several hundred messages a week to
# show a real lift as significant, the learner a few thousand labels, and each extra week is another chance for a
# better challenger to win. 1,000 leads a week for 7 weeks: about 10 minutes a seed on 2 cores.
WEEKS = "7"
LEADS = "7000"


def run() -> list[Row]:
    started = time.perf_counter()
    call_command("simulate", "--quick", "--seeds", SEEDS, "--weeks", WEEKS, "--leads", LEADS, stdout=io.StringIO())
    seconds = time.perf_counter() - started
    result = efficacy_load(settings.VAR_DIR / "simulation" / "efficacy.json")
    oracle = sum(row.get("oracle", 0) for row in result["seeds"]) / len(result["seeds"])
    random_rate = sum(row.get("random", 0) for row in result["seeds"]) / len(result["seeds"])
    policy = sum(row.get("policy", 0) for row in result["seeds"]) / len(result["seeds"])
    return [
        Row(f"deployed policy, % of oracle (mean of seeds {SEEDS})", 100 * result["of_oracle"], "%",
            target=f"≥ {OF_ORACLE_TARGET:.0%}", met=result["of_oracle"] >= OF_ORACLE_TARGET),
        Row("deployed policy, × uniform random", result["over_random"], "×", target=f"≥ {OVER_RANDOM_TARGET}×",
            met=result["over_random"] >= OVER_RANDOM_TARGET),
        Row("expected reply rate: deployed policy (reference: oracle)", 100 * policy, "%", reference=100 * oracle),
        Row("expected reply rate: uniform random (reference: oracle)", 100 * random_rate, "%", reference=100 * oracle),
        Row("truly worse challengers promoted", result["wrong_promotions"], "", target="0",
            met=result["wrong_promotions"] == 0),
        Row("5 quick simulations", seconds, "s"),
    ]  # fmt: skip
