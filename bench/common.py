"""Shared pieces of the benchmarks: a result row, the table, percentiles, a worker process."""

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import requests
from django.conf import settings

from rex_project.worker import start_worker, stop_worker


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    target: str = ""
    reference: float | None = None
    met: bool | None = None  # None: no target

    @property
    def ratio(self) -> str:
        return f"{self.value / self.reference:.2f}" if self.reference else ""


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def format_table(rows: list[Row]) -> str:
    header = ("figure", "value", "target", "reference", "ratio", "met")
    lines = [
        (
            r.figure, f"{r.value:,.2f} {r.unit}", r.target,
            f"{r.reference:,.2f} {r.unit}" if r.reference is not None else "",
            r.ratio, {True: "yes", False: "NO", None: ""}[r.met],
        )
        for r in rows
    ]  # fmt: skip
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=False)]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    sep = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt.format(*header), sep, *(fmt.format(*line) for line in lines)])


@contextlib.contextmanager
def running_worker(*, concurrency: int = 2, name: str = "bench", env: dict | None = None):
    process = start_worker(
        logfile=settings.VAR_DIR / "log" / f"{name}-worker.log", concurrency=concurrency, loglevel="WARNING",
        hostname=f"{name}@%h", env=env,
    )  # fmt: skip
    try:
        yield process
    finally:
        stop_worker(process)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_server(port: int, *, workers: int, env: dict | None = None) -> subprocess.Popen:
    """REX under gunicorn with production settings (DEBUG off) on ``port``, once ``/health`` answers."""
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": "bench-" + "x" * 60, "SECURE_SSL_REDIRECT": "false",
           "LOG_LEVEL": "WARNING", **(env or {})}  # fmt: skip
    command = [sys.executable, "-m", "gunicorn", "rex_project.wsgi", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env)
    for _ in range(60):
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
            return process
        except requests.RequestException:  # still booting
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError("gunicorn did not start")
