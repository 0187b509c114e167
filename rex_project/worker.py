"""Start and stop a real Celery worker process (the demo and the integration tests use it)."""

import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings


def worker_command(*, concurrency: int = 2, hostname: str = "rex@%h", loglevel: str = "INFO") -> list[str]:
    return [
        sys.executable, "-m", "celery", "-A", "rex_project", "worker",
        "-c", str(concurrency), "-n", hostname,
        "--loglevel", loglevel, "--without-mingle", "--without-gossip",
    ]  # fmt: skip


def start_worker(*, logfile: Path, env: dict | None = None, **options) -> subprocess.Popen:
    """A separate worker process writing to ``logfile``; never eager mode."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    handle = logfile.open("ab")
    return subprocess.Popen(
        worker_command(**options),
        cwd=settings.BASE_DIR,
        env={**os.environ, **(env or {})},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its pool children stop with it
    )


def stop_worker(process: subprocess.Popen, *, timeout: float = 20) -> int:
    """Warm shutdown (finish current tasks), then kill the whole process group if it lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode
