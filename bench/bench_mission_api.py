"""Mission creation: p50/p95 of POST /rex/command with 100 leads from 4 concurrent clients,
served by gunicorn, next to a trivial authenticated endpoint (GET /api/me: token auth, one
indexed read) of the same server under the same load."""

import threading
import time

import requests

from agents.models import Lead, Mission
from agents.services import operator_create
from bench.common import Row, free_port, gunicorn_server, percentile
from rex_project.celery import app

CLIENTS = 4
REQUESTS_PER_CLIENT = 150
LEADS = 100


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
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Token {token.key}"}
    server = gunicorn_server(port, workers=CLIENTS, env={"API_THROTTLE_RATE": "100000000/minute"})
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
