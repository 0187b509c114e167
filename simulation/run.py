"""One simulation run: REX's web server, worker and beat as separate processes, driven through its real API for a
number of simulated weeks while the world answers every message over HTTP.

Each week: a mission over the week's slice of dead leads (``POST /rex/command``) → REX's agents score, write and
send through the sandbox providers → the world answers (signed SendGrid, Twilio, inbox and CRM webhooks) →
REX's worker turns them into outcome labels → the A/B promotion check on last week's challenger → the weekly
training cycle (local trainer) deploys a new challenger. Progress is printed as it goes; every process started
here is stopped at the end, whatever happened.
"""

import datetime as dt
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.test.utils import override_settings
from django.utils import timezone

from agents.domains import domain_health_check
from agents.domains.local_dns import serving
from agents.models import AgentRun, Lead, Message, Mission
from outcomes.models import OutcomeLabel
from simulation import report
from simulation.client import FINISHED, RexClient
from simulation.install import Installed, dns_zone, world_install
from simulation.oracle import Efficacy
from simulation.processes import RexProcesses
from simulation.responder import HttpTransport, Responder
from simulation.signing import Credentials
from simulation.world import World, open_timezones
from training import split
from training.cycle import run_training_cycle
from training.models import ModelVersion, PromotionDecision, TrainingRun
from training.promotion import promote_ab_test_winner
from webhooks.models import WebhookEvent

WEEK = 7 * 86400.0
# training/split.py caches the A/B split per process for this long; a deploy made here reaches the worker after.
SPLIT_SETTLE_SECONDS = split.CACHE_SECONDS + 1.0
RELEASE_HORIZON = 75.0  # sends deferred by a rate limit for less than this are waited for (beat releases them)

Say = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    seed: int = 1
    weeks: int = 6
    leads: int = 2400
    ab_test_percentage: float = 50.0
    min_messages_per_arm: int = 60
    mission_timeout: float = 300.0
    settle_timeout: float = 180.0
    expected_minutes: float = 15.0  # how long the run may take: lead time zones must stay in working hours


@dataclass
class WeekResult:
    week: int
    mission_id: int
    cohort: int
    sent_ids: list[int]
    holds: dict
    layers: dict
    arms: Counter
    graded: Efficacy
    requests: int
    promotion: list[PromotionDecision] = field(default_factory=list)
    training: TrainingRun | None = None
    seconds: float = 0.0


@dataclass
class RunResult:
    options: RunOptions
    world: World
    installed: Installed
    started_at: dt.datetime
    timezones: tuple[str, ...]
    weeks: list[WeekResult]
    responder: Responder
    seconds: float = 0.0
    exit_codes: dict = field(default_factory=dict)


def child_env(*, credentials: Credentials, base_url: str, nameserver: str) -> dict[str, str]:
    """REX's processes: the world's verification keys, the loopback address the world posts to, no real provider
    (sandbox sends, no LLM calls) and no website fetching (no internet here; the world's companies have no sites)."""
    return {
        **os.environ,
        **credentials.rex_settings(),
        "PUBLIC_BASE_URL": base_url,
        "SENDGRID_API_KEY": "",
        "TWILIO_ACCOUNT_SID": "",
        "OPENAI_API_KEY": "",
        "SCRAPER_WEBSITE_ENABLED": "false",
        "DNS_NAMESERVERS": nameserver,
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }


class Simulation:
    def __init__(self, options: RunOptions, *, say: Say):
        self.options = options
        self.say = say
        self.started_at = timezone.now()
        self.clock = time.monotonic()
        self.deployed_at: float | None = None

    # --- the run ------------------------------------------------------------------------------------------------

    def world(self) -> tuple[World, tuple[str, ...]]:
        zones = open_timezones(now=self.started_at, minutes=self.options.expected_minutes)
        if not zones:
            self.say(
                "  ! No time zone is in its working day for the next "
                f"{self.options.expected_minutes:.0f} minutes (a weekend): REX will hold email until Monday, "
                "and the held sends are reported."
            )
        world = World.build(seed=self.options.seed, leads=self.options.leads, timezones=zones or None)
        return world, tuple(sorted({lead.timezone for lead in world.leads}))

    def execute(self) -> RunResult:
        world, zones = self.world()
        credentials = Credentials.generate()
        with serving(dns_zone(world)) as nameserver:
            installed = world_install(world=world, nameserver=nameserver, now=self.started_at)
            self.say(
                f"World seed {world.seed}: {len(world.leads)} leads of '{world.organization_name}' in "
                f"{len(zones)} time zones where it is working time now; {len(world.domains)} sending domains."
            )
            if installed.retired_policies:
                self.say(f"  flywheel reset: {installed.retired_policies} policy version(s) of earlier runs retired")
            processes = RexProcesses(env={}, log_dir=settings.VAR_DIR / "log")
            processes.env = child_env(credentials=credentials, base_url=processes.base_url, nameserver=nameserver)
            result = RunResult(self.options, world, installed, self.started_at, zones, [], None)  # type: ignore[arg-type]
            try:
                processes.start()
                self.say(f"REX web server {processes.base_url}, worker and beat started (logs in {processes.log_dir}).")
                processes.wait_ready()
                self._run(world, installed, credentials, processes, nameserver, result)
            finally:
                result.exit_codes = processes.stop()
                result.seconds = time.monotonic() - self.clock
                self.say(f"Stopped REX's processes (exit codes {result.exit_codes}).")
        return result

    def _run(self, world, installed, credentials, processes, nameserver, result: RunResult) -> None:
        client = RexClient(processes.base_url, installed.token)
        lead_ids = self.import_leads(client, world, installed)
        transport = HttpTransport(processes.base_url)
        result.responder = responder = Responder(
            world=world, credentials=credentials, transport=transport,
            organization_id=installed.organization.pk, public_base_url=processes.base_url,
        )  # fmt: skip
        cohorts = world.cohorts(self.options.weeks)
        for week, cohort in enumerate(cohorts, start=1):
            ids = [lead_ids[lead.email] for lead in cohort if lead.email in lead_ids]
            result.weeks.append(self.week(week, ids, client, processes, responder, installed, nameserver))
        self.say("After the last week: the world's late answers (deals that close weeks later) …")
        responder.drain()
        self.settle(processes, responder)

    def import_leads(self, client: RexClient, world: World, installed: Installed) -> dict[str, int]:
        rows = [lead.lead_row(now=self.started_at) for lead in world.leads]
        answer = client.leads_import(rows)
        self.say(f"Imported leads through POST /api/leads/import: {answer['created']} created, "
                 f"{len(answer['rejected'])} rejected.")  # fmt: skip
        return dict(Lead.objects.filter(organization=installed.organization).values_list("email", "pk"))

    # --- one week -----------------------------------------------------------------------------------------------

    def week(self, week, lead_ids, client, processes, responder, installed, nameserver) -> WeekResult:
        started = time.monotonic()
        self.wait_for_split(processes)
        launched = client.mission_launch(lead_ids=lead_ids, key=f"sim-{installed.organization.pk}-week-{week}")
        mission_id = launched["id"]
        self.say(f"Week {week}/{self.options.weeks}: mission #{mission_id} on {len(lead_ids)} leads")
        self.wait_mission(client, mission_id, processes)
        self.wait_released(mission_id, processes)
        mission = Mission.objects.get(pk=mission_id)
        sent = list(mission.messages.filter(status=Message.Status.SENT).order_by("pk"))
        responder.collect(label=week)
        requests = responder.advance(WEEK)
        self.settle(processes, responder)
        self.domain_health(installed, nameserver)
        result = WeekResult(
            week=week, mission_id=mission_id, cohort=len(lead_ids), sent_ids=[m.pk for m in sent],
            holds=report.mission_holds(mission),
            layers=report.decision_layers(AgentRun.objects.filter(mission=mission)),
            arms=Counter(report.arm_of(m) for m in sent), graded=report.choices_graded(responder.world, sent),
            requests=requests,
        )  # fmt: skip
        self.flywheel(result, installed)
        result.seconds = time.monotonic() - started
        self.say(self.week_line(result))
        return result

    def wait_for_split(self, processes: RexProcesses) -> None:
        if self.deployed_at is None:
            return
        remaining = SPLIT_SETTLE_SECONDS - (time.monotonic() - self.deployed_at)
        if remaining > 0:
            self.say(f"  waiting {remaining:.0f}s for REX's worker to pick up the new A/B split "
                     f"(training/split.py caches it {split.CACHE_SECONDS:.0f}s per process)")  # fmt: skip
            end = time.monotonic() + remaining
            while time.monotonic() < end:
                processes.check_alive()
                time.sleep(min(1.0, max(0.0, end - time.monotonic())))

    def wait_mission(self, client: RexClient, mission_id: int, processes: RexProcesses) -> dict:
        deadline = time.monotonic() + self.options.mission_timeout
        last_print, last = 0.0, None
        while True:
            processes.check_alive()
            body = client.mission(mission_id)
            progress = (body["status"], body["progress"]["processed"])
            if progress != last and time.monotonic() - last_print > 3:
                self.say(f"  {body['status']:<10} {body['progress']['processed']}/{body['progress']['total']} leads")
                last_print, last = time.monotonic(), progress
            if body["status"] in FINISHED:
                if body["status"] != "completed":
                    raise RuntimeError(f"mission #{mission_id} ended {body['status']}: {body['failure_reason']}")
                return body
            if time.monotonic() > deadline:
                raise RuntimeError(f"mission #{mission_id} did not finish within {self.options.mission_timeout:.0f}s")
            time.sleep(1.0)

    def wait_released(self, mission_id: int, processes: RexProcesses) -> None:
        """Sends a rate limit deferred for a few seconds go out when beat releases them (every minute)."""
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
                self.say(f"  {due} send(s) deferred by rate limits: waiting for beat's release sweep")
                announced = True
            processes.check_alive()
            time.sleep(2.0)

    def settle(self, processes: RexProcesses, responder: Responder) -> None:
        """Until REX's worker has processed every webhook it received (and the world re-posted what REX refused
        with a 5xx), or the timeout."""
        deadline = time.monotonic() + self.options.settle_timeout
        while time.monotonic() < deadline:
            if responder.retry:
                responder.advance(0)
            waiting = WebhookEvent.objects.filter(
                received_at__gte=self.started_at, state=WebhookEvent.State.RECEIVED
            ).count()
            if not waiting and not responder.retry:
                return
            processes.check_alive()
            time.sleep(0.5)
        self.say("  ! webhooks still unprocessed after the settle timeout; continuing")

    def domain_health(self, installed: Installed, nameserver: str) -> None:
        """The hourly domain health check, once per simulated week (beat runs it on real hours)."""
        with override_settings(DNS_NAMESERVERS=[nameserver], DNS_TIMEOUT=2.0):
            for domain in installed.organization.sending_domains.all():
                domain_health_check(domain)

    def flywheel(self, result: WeekResult, installed: Installed) -> None:
        options = self.options
        result.promotion = promote_ab_test_winner(
            kind=ModelVersion.Kind.POLICY, min_days=0, min_messages_per_arm=options.min_messages_per_arm
        )
        result.training = run_training_cycle(
            kind=ModelVersion.Kind.POLICY, force=True, ab_test_percentage=options.ab_test_percentage,
            organization_id=installed.organization.pk,
        )  # fmt: skip
        if result.promotion or (result.training and result.training.model_version_id):
            self.deployed_at = time.monotonic()

    # --- printing -----------------------------------------------------------------------------------------------

    def week_line(self, week: WeekResult) -> str:
        outcomes = report.outcome_counts(OutcomeLabel.objects.filter(message_id__in=week.sent_ids))
        holds, graded = week.holds, week.graded
        arms = ", ".join(f"{arm} {count}" for arm, count in sorted(week.arms.items()))
        lines = [
            f"  sent {len(week.sent_ids)} of {week.cohort} leads; held by rules {holds['held_by_rules']}, "
            f"deferred by limits {holds['deferred_by_limits']}; world posted {week.requests} webhook requests",
            f"  REX recorded: delivered {outcomes['delivered_rate']:.1%}, opened {outcomes['opened_rate']:.1%}, "
            f"replied {outcomes['replied_rate']:.1%}, meetings {outcomes['meeting_rate']:.1%} (so far)",
            f"  choices graded by the world: expected reply {graded.policy:.2%} vs random {graded.random:.2%} "
            f"and oracle {graded.oracle:.2%} ({graded.of_oracle:.0%} of oracle); arms: {arms}",
        ]
        for decision in week.promotion:
            lines.append(f"  A/B check {decision.challenger.version}: {decision.outcome} ({decision.reason})")
        run = week.training
        if run is not None:
            version = run.model_version
            trained = f"{version.version} (AUC {(version.metrics or {}).get('auc')})" if version else run.status
            lines.append(f"  training: {trained}; {run.error or 'deployed as challenger'}")
        lines.append(f"  week took {week.seconds:.1f}s")
        return "\n".join(lines)
