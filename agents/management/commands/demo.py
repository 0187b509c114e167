"""manage.py demo: the main job end to end on whatever backing services are configured."""

import csv
import os
import time
import uuid

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from agents.services import leads_import, operator_create
from rex_project.tasks import ping
from rex_project.worker import start_worker, stop_worker

SAMPLE_LEADS = settings.BASE_DIR / "agents" / "data" / "sample_leads.csv"
DEMO_ORG = "REX Demo"
DEMO_EMAIL = "operator@rexdemo.io"


class Command(BaseCommand):
    help = "Set up a demo organization and operator, load sample leads and run work through a real worker."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=90, help="Seconds to wait for the worker.")

    def handle(self, *args, timeout, **options):
        call_command("setup_periodic_tasks", verbosity=0)
        membership = self._operator()
        self._leads(membership.organization)
        worker_log = settings.VAR_DIR / "log" / "demo-worker.log"
        self.stdout.write(f"Starting a Celery worker process (log: {worker_log}) on {self._broker()} …")
        worker = start_worker(logfile=worker_log, hostname="demo@%h")
        try:
            self._round_trip(worker, timeout)
        finally:
            code = stop_worker(worker)
            self.stdout.write(f"Worker stopped (exit code {code}).")

    def _operator(self):
        password = os.environ.get("REX_DEMO_PASSWORD") or uuid.uuid4().hex[:12]
        membership, token = operator_create(organization_name=DEMO_ORG, email=DEMO_EMAIL, staff=True, password=password)
        self.stdout.write(self.style.MIGRATE_HEADING("Demo operator"))
        self.stdout.write(f"  admin:    {settings.PUBLIC_BASE_URL}/admin/  (start the server with `make run`)")
        self.stdout.write(f"  login:    {DEMO_EMAIL} / {password}")
        self.stdout.write(f"  API:      Authorization: Token {token.key}")
        self.stdout.write(f"  API docs: {settings.PUBLIC_BASE_URL}/api/docs/")
        return membership

    def _leads(self, organization):
        with SAMPLE_LEADS.open(newline="") as handle:
            result = leads_import(organization=organization, rows=list(csv.DictReader(handle)))
        existing = organization.leads.count()
        self.stdout.write(
            f"Sample leads: {len(result.created)} loaded, {len(result.rejected)} skipped "
            f"(already there or invalid); {existing} leads in '{organization.name}'."
        )

    def _broker(self) -> str:
        url = settings.CELERY_BROKER_URL
        return f"filesystem broker in {settings.BROKER_DIR}" if url.startswith("filesystem") else url.split("@")[-1]

    def _round_trip(self, worker, timeout):
        token = uuid.uuid4().hex[:8]
        started = time.monotonic()
        result = ping.delay(token)
        deadline = started + timeout
        while not result.ready():
            if worker.poll() is not None:
                raise CommandError(f"The worker exited with code {worker.returncode}; see var/log/demo-worker.log.")
            if time.monotonic() > deadline:
                raise CommandError(f"No answer from the worker within {timeout:.0f}s; see var/log/demo-worker.log.")
            time.sleep(0.2)
        answer = result.get(timeout=5)
        elapsed = time.monotonic() - started
        if answer["pong"] != token or answer["worker_pid"] == os.getpid():
            raise CommandError(f"Unexpected answer from the worker: {answer}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Broker round trip: task {result.id} answered '{answer['pong']}' from worker pid "
                f"{answer['worker_pid']} (this process is pid {os.getpid()}) in {elapsed:.2f}s, "
                f"database reachable from the worker: {answer['database']}."
            )
        )
