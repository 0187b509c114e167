"""manage.py simulate: drive REX through a simulated world for some weeks and measure whether it learns."""

import json
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor

from simulation.backends import InlineBackend, ProcessBackend, Waits
from simulation.chart import charts_write
from simulation.efficacy import efficacy_combine, efficacy_load, efficacy_save, efficacy_text
from simulation.run import RunOptions, Simulation
from simulation.summary import render_text, run_summary


def _seeds(value: str) -> list[int]:
    try:
        seeds = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise CommandError(f"--seeds takes comma-separated integers, not {value!r}") from None
    if not seeds:
        raise CommandError("--seeds needs at least one seed")
    return seeds


def _require_migrated() -> None:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        raise CommandError(
            f"The database has {len(pending)} unapplied migration(s): run `manage.py migrate` first (`make demo` does)."
        )


class Command(BaseCommand):
    help = (
        "Build a seeded synthetic organization whose leads answer like real inboxes, run REX against it for some "
        "simulated weeks (missions → sends → signed webhooks → outcome labels → weekly training → A/B promotion), "
        "and report whether it learned. Without --quick REX runs as its own web server, worker and beat processes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--weeks", type=int, default=5, help="Simulated weeks (one mission each).")
        parser.add_argument("--leads", type=int, default=1800, help="Dead leads in the world (split over the weeks).")
        parser.add_argument("--seed", type=int, default=1, help="World seed: a seed is a world.")
        parser.add_argument("--seeds", type=_seeds, help="Several world seeds, one run each (e.g. 1,2,3,4,5).")
        parser.add_argument(
            "--quick", action="store_true",
            help="Run REX in this process (no web server, worker or beat; nothing is kept in the database).",
        )  # fmt: skip
        parser.add_argument("--ab-share", type=float, default=50.0, help="Challenger's share of traffic, %%.")
        parser.add_argument("--min-per-arm", type=int, default=60, help="Messages per arm before an A/B verdict.")

    def handle(self, *args, weeks, leads, seed, seeds, quick, ab_share, min_per_arm, **options):
        if weeks < 1 or leads < weeks:
            raise CommandError("--weeks must be at least 1 and --leads at least --weeks.")
        _require_migrated()
        started = time.monotonic()
        summaries = []
        for world_seed in seeds or [seed]:
            run_options = RunOptions(
                seed=world_seed, weeks=weeks, leads=leads, ab_test_percentage=ab_share, min_messages_per_arm=min_per_arm
            )
            summaries.append(self.run_one(run_options, quick=quick))
        combined = efficacy_combine(summaries)
        self.stdout.write(efficacy_text(combined))
        efficacy_path = settings.VAR_DIR / "simulation" / "efficacy.json"
        if len(summaries) > 1:
            efficacy_save(combined, efficacy_path)
            self.stdout.write(f"Saved to {efficacy_path}.")
        else:
            self.earlier_efficacy(efficacy_path)
        self.stdout.write(f"Simulation finished in {time.monotonic() - started:.0f}s.")

    def say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def run_one(self, run_options: RunOptions, *, quick: bool) -> dict:
        waits = Waits(say=self.say)
        backend = InlineBackend(waits=waits) if quick else ProcessBackend(waits=waits)
        simulation = Simulation(run_options, backend=backend, say=self.say, keep=not quick)
        summary = simulation.execute(then=run_summary)
        self.stdout.write(render_text(summary))
        directory = settings.VAR_DIR / "simulation"
        png, html = charts_write(summary, directory)
        (directory / f"summary-seed-{run_options.seed}.json").write_text(json.dumps(summary, indent=1, default=str))
        self.stdout.write(f"Learning curve: {png} and {html}")
        return summary

    def earlier_efficacy(self, path) -> None:
        earlier = efficacy_load(path)
        if earlier is None:
            self.stdout.write(
                "The 5-seed figure (`make bench`): "
                "`manage.py simulate --quick --seeds 1,2,3,4,5 --weeks 7 --leads 7000`."
            )
            return
        self.stdout.write(f"Last multi-seed measurement ({earlier['measured_at']}, {path}):")
        self.stdout.write(efficacy_text(earlier))
