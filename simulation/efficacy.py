"""Flywheel efficacy over several world seeds: the deployed policy against the oracle and random choice, and
whether A/B promotion ever promoted a challenger that was truly worse."""

import json
import statistics
from datetime import UTC, datetime
from pathlib import Path

from simulation.summary import OF_ORACLE_TARGET, OVER_RANDOM_TARGET


def efficacy_combine(summaries: list[dict]) -> dict:
    rows = [summary["efficacy"] for summary in summaries]
    graded = [row for row in rows if row.get("version")]
    wrong = sum(row["wrong_promotion"] for summary in summaries for row in summary["promotions"])
    of_oracle = statistics.mean(row["of_oracle"] for row in graded) if graded else 0.0
    over_random = statistics.mean(row["over_random"] for row in graded) if graded else 0.0
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seeds": rows,
        "of_oracle": of_oracle,
        "over_random": over_random,
        "wrong_promotions": wrong,
        "seeds_without_policy": len(rows) - len(graded),
        "met": bool(graded)
        and len(graded) == len(rows)
        and of_oracle >= OF_ORACLE_TARGET
        and over_random >= OVER_RANDOM_TARGET
        and wrong == 0,
    }


def efficacy_text(combined: dict) -> str:
    lines = ["Flywheel efficacy (deployed policy's expected reply rate, graded by the world over all leads):"]
    for row in combined["seeds"]:
        if not row.get("version"):
            lines.append(f"  seed {row['seed']:>3} ({row['how']}): no policy deployed at the end")
            continue
        lines.append(
            f"  seed {row['seed']:>3} ({row['how']}): {row['version']} ({row['role']}) {row['policy']:.2%} vs random "
            f"{row['random']:.2%} vs oracle {row['oracle']:.2%} → {row['of_oracle']:.0%} of oracle, "
            f"{row['over_random']:.2f}× random"
        )
    verdict = "met" if combined["met"] else "NOT met"
    lines.append(
        f"  average over {len(combined['seeds'])} seed(s): {combined['of_oracle']:.0%} of oracle (target ≥ "
        f"{OF_ORACLE_TARGET:.0%}), {combined['over_random']:.2f}× random (target ≥ {OVER_RANDOM_TARGET}×); "
        f"truly worse challengers promoted: {combined['wrong_promotions']} (target 0) → {verdict}"
    )
    return "\n".join(lines)


def efficacy_save(combined: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(combined, indent=1, default=str), encoding="utf-8")


def efficacy_load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
