"""manage.py demo: the main job end to end on whatever backing services are configured."""

import os
import time
import uuid

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from agents.domains.health import domain_health_check
from agents.domains.local_dns import ZoneResolver, serving
from agents.missions import mission_create
from agents.models import Message, Mission, SendingDomain
from agents.selectors import decision_stats
from agents.services import leads_import, leads_parse_csv, operator_create
from rex_project.tasks import ping
from rex_project.worker import start_worker, stop_worker

SAMPLE_LEADS = settings.BASE_DIR / "agents" / "data" / "sample_leads.csv"
DEMO_ORG = "REX Demo"
DEMO_EMAIL = "operator@rexdemo.io"
# (domain, DKIM published): the third one forgot its DKIM key, so its health check pauses it.
DEMO_DOMAINS = (("mail.rexdemo.io", True), ("outreach.rexdemo.io", True), ("hello.rexdemo.io", False))


class Command(BaseCommand):
    help = "Set up a demo organization and operator, load sample leads and run work through a real worker."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=90, help="Seconds to wait for the worker.")

    def handle(self, *args, timeout, **options):
        call_command("setup_periodic_tasks", verbosity=0)
        membership = self._operator()
        self._leads(membership.organization)
        self._domain_health(membership.organization)
        worker_log = settings.VAR_DIR / "log" / "demo-worker.log"
        self.stdout.write(f"Starting a Celery worker process (log: {worker_log}) on {self._broker()} …")
        worker = start_worker(logfile=worker_log, hostname="demo@%h")
        try:
            self._round_trip(worker, timeout)
            self._mission(membership, worker, timeout)
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
        for domain, _ in DEMO_DOMAINS:
            SendingDomain.objects.get_or_create(organization=organization, domain=domain, defaults={"daily_cap": 100})
        result = leads_import(organization=organization, rows=leads_parse_csv(text=SAMPLE_LEADS.read_text()))
        existing = organization.leads.count()
        self.stdout.write(
            f"Sample leads: {len(result.created)} loaded, {len(result.rejected)} skipped "
            f"(already there or invalid); {existing} leads in '{organization.name}'."
        )

    def _domain_health(self, organization):
        """The demo's domains have no public DNS here: serve their records locally, then check them."""
        zone = ZoneResolver()
        for domain, dkim in DEMO_DOMAINS:
            zone.authenticate(domain)
            if not dkim:
                del zone.txt[f"s1._domainkey.{domain}"]
        self.stdout.write(self.style.MIGRATE_HEADING("Sending domains (DNS served locally for the demo)"))
        with serving(zone) as nameserver, override_settings(DNS_NAMESERVERS=[nameserver], DNS_TIMEOUT=2.0):
            for domain in organization.sending_domains.order_by("domain"):
                domain = domain_health_check(domain)
                checks = ", ".join(f"{name} {'ok' if r.get('ok') else 'FAIL'}" for name, r in domain.dns_checks.items())
                state = f"paused: {domain.pause_reason}" if domain.is_paused else "active"
                self.stdout.write(f"  {domain.domain:<22} reputation {domain.reputation_score:.2f}  {checks}  {state}")
        alerts = organization.alerts.filter(resolved_at__isnull=True).count()
        self.stdout.write(f"  open alerts: {alerts}  (GET /domain/health, admin → Alerts)")

    def _mission(self, membership, worker, timeout):
        organization = membership.organization
        lead_ids = list(organization.leads.values_list("pk", flat=True))
        mission, _ = mission_create(
            organization=organization, type=Mission.Type.LEAD_REACTIVATION, lead_ids=lead_ids,
            requested_by=membership.user, priority=70,
        )  # fmt: skip
        self.stdout.write(
            self.style.MIGRATE_HEADING(f"Mission #{mission.pk}: lead_reactivation on {len(lead_ids)} leads")
        )
        deadline = time.monotonic() + timeout
        last = None
        while mission.status in (Mission.Status.QUEUED, Mission.Status.RUNNING):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise CommandError(f"Mission #{mission.pk} did not finish; see var/log/demo-worker.log.")
            time.sleep(0.3)
            mission.refresh_from_db()
            if (mission.status, mission.processed) != last:
                last = (mission.status, mission.processed)
                self.stdout.write(f"  {mission.status:<10} {mission.processed}/{mission.total} leads processed")
        if mission.status != Mission.Status.COMPLETED:
            raise CommandError(f"Mission #{mission.pk} ended {mission.status}: {mission.failure_reason}")
        self._print_report(mission)

    def _print_report(self, mission):
        funnel = mission.report.get("funnel", {})
        self.stdout.write("  funnel:   " + ", ".join(f"{k} {v}" for k, v in funnel.items()))
        held = mission.messages.filter(status=Message.Status.QUEUED, scheduled_for__isnull=False).count()
        if held:
            self.stdout.write(f"  held:     {held} message(s) wait in the database (window, recency, rate limit)")
        sent = Message.objects.filter(organization=mission.organization, status=Message.Status.SENT, channel="email")
        sent = sent.order_by("-sent_at").first()
        if sent is not None:
            self.stdout.write(
                f"  latest email sent (GET /api/messages/{sent.pk}): {sent.from_address} → {sent.to_address}"
            )
            for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "Message-ID"):
                self.stdout.write(f"    {name}: {sent.headers.get(name, '—')}")
            self.stdout.write(f"    footer: {sent.body.rstrip().splitlines()[-1]}")
        stats = decision_stats(organization=mission.organization)
        split = ", ".join(f"{layer} {v['count']} ({v['percent']}%)" for layer, v in stats["layers"].items())
        self.stdout.write(f"  decisions: {stats['decisions']}: {split}")
        latency = stats["latency_ms"]
        if latency["p50"] is not None:
            self.stdout.write(f"  decision latency: p50 {latency['p50']:.2f} ms, p95 {latency['p95']:.2f} ms")
        for line in mission.report.get("recommendations", [])[:3]:
            self.stdout.write(f"  - {line}")

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
