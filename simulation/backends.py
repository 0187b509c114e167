"""Where REX runs during a simulation.

* ``ProcessBackend`` (the demo): REX's web server, a Celery worker and beat as separate processes; the world and
  the operator talk to it over loopback HTTP, exactly as in production.
* ``InlineBackend`` (``--quick``, the test suite): the same REX code in this process: the API views through
  Django's test client, each mission's agent chain run here step by step (the coordinator's canvas, without a
  broker), webhooks received by REX's views and processed by the task's service. No HTTP, no processes, no
  A/B split cache to wait for; REX's rate limits and send windows still apply in real time.
"""

import datetime as dt
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from agents.decisions.lifecycle import mission_transition
from agents.missions import mission_leads_materialize
from agents.models import Message, Mission
from agents.pipeline import coordinator
from agents.tasks import AGENT_TASKS
from simulation.client import FINISHED, RexApiError, RexClient
from simulation.processes import RexProcesses
from simulation.responder import HttpTransport, Responder
from training import split
from webhooks.models import WebhookEvent
from webhooks.services import webhook_event_process

RELEASE_HORIZON = 75.0  # sends a rate limit deferred for less than this are waited for
SPLIT_SETTLE_SECONDS = split.CACHE_SECONDS + 1.0  # training/split.py caches the A/B split per process this long


class ClientTransport:
    """Posts to REX's views in this process through the Django test client (routing, middleware, views)."""

    def __init__(self, client: Client | None = None):
        self.client = client or Client()
        self.statuses: list[tuple[str, int]] = []

    def send(self, *, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
        headers = dict(headers)
        content_type = headers.pop("Content-Type", "application/octet-stream")
        response = self.client.generic(method, path, data=body, content_type=content_type, headers=headers)
        self.statuses.append((path, response.status_code))
        return response.status_code


class InlineApi:
    """RexClient's calls through REX's API views in this process (token auth, throttling and all)."""

    def __init__(self, token: str):
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    def _answer(self, response) -> dict:
        if response.status_code >= 400:
            raise RexApiError(f"HTTP {response.status_code}: {response.content[:500]!r}")
        return response.json()

    def leads_import(self, rows: list[dict]) -> dict:
        return self._answer(self.client.post("/api/leads/import", {"leads": rows}, format="json"))

    def mission_launch(self, *, lead_ids: list[int], key: str, priority: int = 70) -> dict:
        body = {"type": "lead_reactivation", "priority": priority, "lead_ids": lead_ids}
        return self._answer(self.client.post("/rex/command", body, format="json", headers={"Idempotency-Key": key}))

    def mission(self, mission_id: int) -> dict:
        return self._answer(self.client.get(f"/rex/command/{mission_id}"))


def mission_run_inline(*, mission_id: int) -> None:
    """The coordinator's canvas for a lead_reactivation mission, one task after the other in this process:
    per batch the agent chain (each step REX's own task function), then the chord's finish."""
    mission = Mission.objects.get(pk=mission_id)
    if mission.status != Mission.Status.QUEUED:
        return
    lead_ids = mission_leads_materialize(mission=mission)
    mission_transition(mission, "start")
    steps = coordinator.CHAINS[mission.type]
    for batch in coordinator.batches(lead_ids, settings.MISSION_BATCH_SIZE):
        payload = {"mission_id": mission_id, "lead_ids": batch}
        for index, name in enumerate(steps):
            payload = AGENT_TASKS[name](payload, final=index == len(steps) - 1)
    coordinator.finish(mission_id=mission_id)


@dataclass
class Waits:
    mission_timeout: float = 300.0
    settle_timeout: float = 180.0
    say: object = print


@dataclass
class InlineBackend:
    name: str = "in-process (--quick)"
    waits: Waits = field(default_factory=Waits)
    api: InlineApi | None = None
    public_base_url: str = "http://testserver"

    def settings_overrides(self, *, credentials, nameserver: str) -> dict:
        return {
            **credentials.rex_settings(),
            "PUBLIC_BASE_URL": self.public_base_url,
            "SENDGRID_API_KEY": "",
            "TWILIO_ACCOUNT_SID": "",
            "OPENAI_API_KEY": "",
            "SCRAPER_WEBSITE_ENABLED": False,
            "DNS_NAMESERVERS": [nameserver],
        }

    def start(self, *, token: str, credentials, nameserver: str) -> None:
        self.api = InlineApi(token)

    def stop(self) -> dict:
        return {}

    def transport(self):
        return ClientTransport()

    def run_mission(self, mission_id: int) -> None:
        mission_run_inline(mission_id=mission_id)

    def release_deferred(self, mission_id: int) -> None:
        """What beat's release sweep does, here: wait for the due time of sends a rate limit deferred, release."""
        deadline = time.monotonic() + RELEASE_HORIZON + 30
        while time.monotonic() < deadline:
            soon = timezone.now() + dt.timedelta(seconds=RELEASE_HORIZON)
            due = Message.objects.filter(mission_id=mission_id, status=Message.Status.QUEUED, scheduled_for__lte=soon)
            first = due.order_by("scheduled_for").values_list("scheduled_for", flat=True).first()
            if first is None:
                return
            time.sleep(max(0.0, min(5.0, (first - timezone.now()).total_seconds())))
            coordinator.release_due(now=timezone.now(), limit=500)

    def settle(self, responder: Responder, *, since: dt.datetime) -> None:
        """What the webhook task does, here: every stored event processed, oldest first (a second pass for one
        that arrived before its outcome, the sweep's job)."""
        for _ in range(2):
            if responder.retry:
                responder.advance(0)
            pending = WebhookEvent.objects.filter(
                received_at__gte=since, state__in=[WebhookEvent.State.RECEIVED, WebhookEvent.State.UNMATCHED]
            )
            for event_id in pending.order_by("id").values_list("id", flat=True):
                webhook_event_process(event_id=event_id)

    def after_deploy(self) -> None:
        return None  # a deploy made in this process is seen by this process at once

    def before_launch(self) -> None:
        return None


@dataclass
class ProcessBackend:
    """REX as separate processes on loopback HTTP (see ``simulation.processes``)."""

    name: str = "full HTTP run"
    waits: Waits = field(default_factory=Waits)
    processes: RexProcesses | None = None
    api: RexClient | None = None
    deployed_at: float | None = None

    @property
    def public_base_url(self) -> str:
        return self.processes.base_url

    def settings_overrides(self, *, credentials, nameserver: str) -> dict:
        return {}

    def start(self, *, token: str, credentials, nameserver: str) -> None:
        from simulation.run import child_env  # run imports this module

        self.processes = RexProcesses(env={}, log_dir=settings.VAR_DIR / "log")
        self.processes.env = child_env(credentials=credentials, base_url=self.processes.base_url, nameserver=nameserver)
        self.processes.start()
        self.waits.say(f"REX web server {self.processes.base_url}, worker and beat started "
                       f"(logs in {self.processes.log_dir}).")  # fmt: skip
        self.processes.wait_ready()
        self.api = RexClient(self.processes.base_url, token)

    def stop(self) -> dict:
        return self.processes.stop() if self.processes else {}

    def transport(self):
        return HttpTransport(self.processes.base_url)

    def run_mission(self, mission_id: int) -> None:
        deadline = time.monotonic() + self.waits.mission_timeout
        last_print, last = 0.0, None
        while True:
            self.processes.check_alive()
            body = self.api.mission(mission_id)
            progress = (body["status"], body["progress"]["processed"])
            if progress != last and time.monotonic() - last_print > 3:
                self.waits.say(
                    f"  {body['status']:<10} {body['progress']['processed']}/{body['progress']['total']} leads"
                )
                last_print, last = time.monotonic(), progress
            if body["status"] in FINISHED:
                if body["status"] != "completed":
                    raise RuntimeError(f"mission #{mission_id} ended {body['status']}: {body['failure_reason']}")
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"mission #{mission_id} did not finish within {self.waits.mission_timeout:.0f}s")
            time.sleep(1.0)

    def release_deferred(self, mission_id: int) -> None:
        """Sends a rate limit deferred for a few seconds go out when beat's sweep releases them (every minute)."""
        deadline = time.monotonic() + RELEASE_HORIZON + 30
        announced = False
        while time.monotonic() < deadline:
            soon = timezone.now() + dt.timedelta(seconds=RELEASE_HORIZON)
            due = Message.objects.filter(
                mission_id=mission_id, status=Message.Status.QUEUED, scheduled_for__lte=soon
            ).count()
            if not due:
                return
            if not announced:
                self.waits.say(f"  {due} send(s) deferred by rate limits: waiting for beat's release sweep")
                announced = True
            self.processes.check_alive()
            time.sleep(2.0)

    def settle(self, responder: Responder, *, since: dt.datetime) -> None:
        """Until REX's worker has processed every webhook it received (and the world re-posted what REX answered
        with a 5xx), or the timeout."""
        deadline = time.monotonic() + self.waits.settle_timeout
        while time.monotonic() < deadline:
            if responder.retry:
                responder.advance(0)
            waiting = WebhookEvent.objects.filter(received_at__gte=since, state=WebhookEvent.State.RECEIVED).count()
            if not waiting and not responder.retry:
                return
            self.processes.check_alive()
            time.sleep(0.5)
        self.waits.say("  ! webhooks still unprocessed after the settle timeout; continuing")

    def after_deploy(self) -> None:
        self.deployed_at = time.monotonic()

    def before_launch(self) -> None:
        """A deploy made in the orchestrator reaches the worker's split cache only after CACHE_SECONDS."""
        if self.deployed_at is None:
            return
        remaining = SPLIT_SETTLE_SECONDS - (time.monotonic() - self.deployed_at)
        if remaining <= 0:
            return
        self.waits.say(f"  waiting {remaining:.0f}s for REX's worker to pick up the new A/B split "
                       f"(training/split.py caches it {split.CACHE_SECONDS:.0f}s per process)")  # fmt: skip
        end = time.monotonic() + remaining
        while time.monotonic() < end:
            self.processes.check_alive()
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
