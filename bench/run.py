"""Run every benchmark under bench/ and print one table: figure, value, target, reference, ratio.

Each ``bench/bench_*.py`` has ``run() -> list[Row]``. Benchmarks use the configured services
(DATABASE_URL, CELERY_BROKER_URL, REDIS_URL) and start the processes they need.
Run one: ``.venv/bin/python bench/run.py broker``.
"""

import importlib
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rex_project.settings")

import django  # noqa: E402

django.setup()

from bench.common import Row, format_table  # noqa: E402


def main(selected: list[str]) -> int:
    rows: list[Row] = []
    names = sorted(p.stem.removeprefix("bench_") for p in (ROOT / "bench").glob("bench_*.py"))
    for name in names:
        if selected and name not in selected:
            continue
        print(f"running bench/{'bench_' + name}.py …", flush=True)
        rows.extend(importlib.import_module(f"bench.bench_{name}").run())
    print()
    print(f"machine: {platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()}")
    print(format_table(rows))
    return 0 if all(row.met is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
