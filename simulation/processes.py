"""REX's own processes for a simulation run: the web server (gunicorn on loopback), a Celery worker and beat.

Each is a separate OS process with its own session, started with the world's verification keys in its
environment and stopped (process group and all) in ``stop``, whatever happened in between.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from django.conf import settings

from rex_project.worker import start_worker, stop_worker

STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _spawn(command: list[str], *, logfile: Path, env: dict) -> subprocess.Popen:
    logfile.parent.mkdir(parents=True, exist_ok=True)
    handle = logfile.open("ab")
    return subprocess.Popen(
        command, cwd=settings.BASE_DIR, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(process: subprocess.Popen) -> int | None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


@dataclass
class RexProcesses:
    """The web server, worker and beat of one run; ``base_url`` is where the web server listens."""

    env: dict
    log_dir: Path
    port: int = field(default_factory=free_port)
    web: subprocess.Popen | None = None
    worker: subprocess.Popen | None = None
    beat: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, web_workers: int = 2, concurrency: int = 2) -> None:
        python = sys.executable
        self.web = _spawn(
            [python, "-m", "gunicorn", "rex_project.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(web_workers), "--log-level", "warning", "--timeout", "120"],
            logfile=self.log_dir / "sim-web.log", env=self.env,
        )  # fmt: skip
        self.worker = start_worker(
            logfile=self.log_dir / "sim-worker.log", env=self.env, hostname=f"sim-{os.getpid()}@%h",
            concurrency=concurrency, loglevel="WARNING",
        )  # fmt: skip
        self.beat = _spawn(
            [python, "-m", "celery", "-A", "rex_project", "beat",
             "-S", "django_celery_beat.schedulers:DatabaseScheduler", "--loglevel", "WARNING"],
            logfile=self.log_dir / "sim-beat.log", env=self.env,
        )  # fmt: skip

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        """Until the web server answers /health; raises if a process died or time ran out."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                if requests.get(f"{self.base_url}/health", timeout=5).status_code < 500:
                    return
            except requests.RequestException:  # still booting
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web server did not answer within {timeout:.0f}s; see {self.log_dir}")
            time.sleep(0.3)

    def check_alive(self) -> None:
        for name in ("web", "worker", "beat"):
            process = getattr(self, name)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the {name} process exited with code {process.returncode}; see {self.log_dir}")

    def stop(self) -> dict[str, int | None]:
        """Beat first (no new work), then the web server, then a warm worker shutdown."""
        codes = {}
        if self.beat is not None:
            codes["beat"] = _stop(self.beat)
        if self.web is not None:
            codes["web"] = _stop(self.web)
        if self.worker is not None:
            codes["worker"] = stop_worker(self.worker, timeout=STOP_TIMEOUT)
        return codes
