"""Webhook ingest: signed SendGrid batches of 100 events posted by concurrent clients to gunicorn, with a real
worker processing them meanwhile. Figures: events accepted per second, receiver p95 per batch, and the time
until every event is processed. References from the same run: GET /health under the same load (the floor of
a request on this server) and the same events processed one after another in this process (no broker)."""

import base64
import json
import threading
import time
from collections.abc import Callable

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.db import connection

from agents.models import Lead, Organization
from agents.services import organization_get_or_create
from bench.common import Row, free_port, gunicorn_server, percentile, running_worker
from outcomes.models import OutcomeLabel
from rex_project.celery import app
from webhooks.models import WebhookEvent
from webhooks.services import FINAL_STATES, sendgrid_events_store, webhook_event_process

CLIENTS = 4
BATCHES = 200
BATCH_SIZE = 100
OUTCOMES = 200
SPARE_OUTCOMES = 20  # for the warm-up and the reference, so the check below counts the measured events only
SERIAL_SAMPLE = 500  # events processed in this process for the reference
HEALTH_REQUESTS = 240
PROCESS_TIMEOUT = 600
EVENT_TYPES = ("delivered", "open", "click", "processed")
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko)"


class Signer:
    """SendGrid's Signed Event Webhook: base64 DER ECDSA P-256 / SHA-256 over timestamp + body."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: str) -> dict:
        stamp = str(int(time.time()))
        signature = self.key.sign((stamp + body).encode(), ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        }


def _outcomes(organization: Organization, count: int, tag: str) -> list[int]:
    leads = Lead.objects.bulk_create(
        [Lead(organization=organization, email=f"{tag}{i}@rexbench.io") for i in range(count)]
    )
    rows = OutcomeLabel.objects.bulk_create(
        [OutcomeLabel(organization=organization, lead=lead, delivered=False) for lead in leads]
    )
    return [row.pk for row in rows]


def _event(run: str, n: int, outcome_id: int) -> dict:
    event_type = EVENT_TYPES[n % len(EVENT_TYPES)]
    return {
        "email": "lead@rexbench.io", "timestamp": 1_760_000_000 + n * 600, "event": event_type,
        "sg_event_id": f"bench-{run}-{n}", "sg_message_id": f"bench{run}.filter-{n}",
        "rex_outcome_id": str(outcome_id), "useragent": BROWSER, "ip": "203.0.113.9",
        **({"url": "https://rexbench.io/pricing"} if event_type == "click" else {}),
    }  # fmt: skip


def _bodies(run: str, outcome_ids: list[int], batches: int) -> list[str]:
    """Compact JSON with SendGrid's trailing CRLF; consecutive events go to different outcomes."""
    return [
        json.dumps(
            [_event(run, n, outcome_ids[n % len(outcome_ids)]) for n in range(b * BATCH_SIZE, (b + 1) * BATCH_SIZE)],
            separators=(",", ":"),
        )
        + "\r\n"
        for b in range(batches)
    ]


def _load(calls: list[Callable[[requests.Session], requests.Response]]) -> tuple[list[float], float]:
    """Latencies (ms) of every call and the wall time, CLIENTS threads taking calls from one list in turn."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    pending = iter(calls)

    def client():
        session = requests.Session()
        while (call := next(pending, None)) is not None:  # next() on a list iterator is atomic under the GIL
            started = time.perf_counter()
            response = call(session)
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text[:300]}")

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors or len(latencies) != len(calls):
        raise RuntimeError(f"{len(errors)} failed, {len(calls) - len(latencies)} not answered: {errors[:3]}")
    return latencies, time.perf_counter() - started


def _posts(url: str, bodies: list[str], signer: Signer) -> list[Callable[[requests.Session], requests.Response]]:
    """Signed when sent (the timestamp must be fresh), as SendGrid does."""
    return [lambda s, body=body: s.post(url, data=body.encode(), headers=signer.headers(body)) for body in bodies]


def _wait_processed(run: str, expected: int) -> None:
    events = WebhookEvent.objects.filter(provider_event_id__startswith=f"bench-{run}-")
    deadline = time.monotonic() + PROCESS_TIMEOUT
    while events.filter(state__in=FINAL_STATES).count() < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"events still unprocessed after {PROCESS_TIMEOUT}s")
        time.sleep(0.1)


def _serial_rate(run: str, outcome_ids: list[int]) -> float:
    """Events/s of processing a stored sample in this process, one after another (no HTTP, no broker)."""
    events = [json.loads(body) for body in _bodies(f"{run}s", outcome_ids, SERIAL_SAMPLE // BATCH_SIZE)]
    ids = []
    for batch in events:
        ids += sendgrid_events_store(events=batch, headers={}, signature=WebhookEvent.Signature.VALID)
    started = time.perf_counter()
    for event_id in ids:
        webhook_event_process(event_id=event_id)
    return len(ids) / (time.perf_counter() - started)


def _check(run: str, outcome_ids: list[int], events: int) -> None:
    """Nothing lost or counted twice: one human open/click per posted open/click event."""
    per_type = events // len(EVENT_TYPES)
    totals = OutcomeLabel.objects.filter(pk__in=outcome_ids).values_list("open_count", "click_count")
    opens, clicks = map(sum, zip(*totals, strict=True))
    stored = WebhookEvent.objects.filter(provider_event_id__startswith=f"bench-{run}-").count()
    if (stored, opens, clicks) != (events, per_type, per_type):
        raise RuntimeError(f"stored {stored}/{events}, opens {opens}/{per_type}, clicks {clicks}/{per_type}")


def _measure(run: str, outcome_ids: list[int], spare_ids: list[int]) -> dict:
    signer = Signer()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    bodies = _bodies(run, outcome_ids, BATCHES)
    warm_up = _bodies(f"{run}w", spare_ids, CLIENTS * 2)
    server = gunicorn_server(port, workers=CLIENTS, env={"SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key})
    try:
        with running_worker(concurrency=2, name="bench-webhooks"):
            _load(_posts(f"{base}/webhooks/sendgrid", warm_up, signer))  # every gunicorn worker connected
            health, _ = _load([lambda s: s.get(f"{base}/health")] * HEALTH_REQUESTS)
            started = time.perf_counter()
            latencies, posting = _load(_posts(f"{base}/webhooks/sendgrid", bodies, signer))
            _wait_processed(run, len(bodies) * BATCH_SIZE)
            processed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()
    _check(run, outcome_ids, len(bodies) * BATCH_SIZE)
    return {"latencies": latencies, "posting": posting, "processed": processed, "health_p95": percentile(health, 95)}


def run() -> list[Row]:
    run_id = str(time.time_ns())
    app.control.purge()
    organization = organization_get_or_create(name=f"bench-webhooks-{run_id}")
    outcome_ids = _outcomes(organization, OUTCOMES, "lead")
    spare_ids = _outcomes(organization, SPARE_OUTCOMES, "spare")
    try:
        figures = _measure(run_id, outcome_ids, spare_ids)
        serial = _serial_rate(run_id, spare_ids)
    finally:
        WebhookEvent.objects.filter(provider_event_id__startswith=f"bench-{run_id}").delete()
        organization.delete()
    events = BATCHES * BATCH_SIZE
    accepted = events / figures["posting"]
    p95 = percentile(figures["latencies"], 95)
    # The targets are set for PostgreSQL; SQLite (the embedded default) takes one writer at a time, and the web
    # workers and the Celery worker queue for its lock.
    vendor = connection.vendor
    postgres = vendor == "postgresql"
    return [
        Row(f"SendGrid ingest ({vendor}), batches of {BATCH_SIZE}, {CLIENTS} clients: accepted", accepted,
            "events/s", target="≥ 2,000/s on PostgreSQL", met=accepted >= 2000 if postgres else None),
        Row(f"SendGrid receiver p50 per batch of {BATCH_SIZE}", percentile(figures["latencies"], 50), "ms"),
        Row(f"SendGrid receiver p95 per batch of {BATCH_SIZE}", p95, "ms", target="≤ 100 ms on PostgreSQL",
            reference=figures["health_p95"], met=p95 <= 100 if postgres else None),
        Row(f"{events:,} events posted → all processed (worker -c 2)", figures["processed"], "s"),
        Row("  i.e. processed by the worker", events / figures["processed"], "events/s", reference=serial),
    ]  # fmt: skip
