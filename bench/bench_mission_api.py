"""Mission creation: p50/p95 of POST /rex/command with 100 leads from 4 concurrent clients,
served by gunicorn, next to a trivial authenticated endpoint (GET /api/me: token auth, one
indexed read) of the same server under the same load."""

import os
import socket
import subprocess
import sys
import threading
import time

import requests
from django.conf import settings

from agents.models import Lead, Mission
from agents.services import operator_create
from bench.common import Row, percentile
from rex_project.celery import app

CLIENTS = 4
REQUESTS_PER_CLIENT = 150
LEADS = 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server(port: int) -> subprocess.Popen:
    env = {**os.environ, "API_THROTTLE_RATE": "100000000/minute", "DEBUG": "false",
           "SECRET_KEY": "bench-" + "x" * 60, "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING"}  # fmt: skip
    command = [sys.executable, "-m", "gunicorn", "rex_project.wsgi", "--bind", f"127.0.0.1:{port}",
               "--workers", str(CLIENTS), "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env)
    for _ in range(60):
        try:
            requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
            return process
        except requests.RequestException:  # still booting
            time.sleep(0.5)
    process.terminate()
    raise RuntimeError("gunicorn did not start")


def _load(call) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def client():
        session = requests.Session()
        mine = []
        for _ in range(REQUESTS_PER_CLIENT):
            started = time.perf_counter()
            response = call(session)
            mine.append((time.perf_counter() - started) * 1000)
            assert response.status_code < 300, response.text
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def run() -> list[Row]:
    membership, token = operator_create(organization_name="bench-missions", email="bench@rexbench.io")
    organization = membership.organization
    Lead.objects.bulk_create(
        [Lead(organization=organization, email=f"lead{i}@rexbench.io") for i in range(LEADS)], ignore_conflicts=True
    )
    lead_ids = list(organization.leads.values_list("pk", flat=True)[:LEADS])
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Token {token.key}"}
    server = _server(port)
    try:
        _load(lambda s: s.get(f"{base}/api/me", headers=headers))  # warm up both gunicorn workers
        reference = _load(lambda s: s.get(f"{base}/api/me", headers=headers))
        body = {"type": "lead_reactivation", "priority": 50, "lead_ids": lead_ids}
        missions = _load(lambda s: s.post(f"{base}/rex/command", json=body, headers=headers))
    finally:
        server.terminate()
        server.wait()
        Mission.objects.filter(organization=organization).delete()
        app.control.purge()  # no worker ran: drop the launches we queued
    p95, ref95 = percentile(missions, 95), percentile(reference, 95)
    return [
        Row("POST /rex/command (100 leads) p50", percentile(missions, 50), "ms", reference=percentile(reference, 50)),
        Row(
            "POST /rex/command (100 leads) p95", p95, "ms", target="≤ 2× ref and ≤ 10 ms", reference=ref95,
            met=p95 <= 2 * ref95 and p95 <= 10,
        ),
    ]  # fmt: skip
