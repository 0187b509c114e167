"""One simulation run: REX driven through its real API for a number of simulated weeks while the world answers
every message it sends.

Each week: a mission over the week's slice of dead leads (``POST /rex/command``) → REX's agents score, write and
send through the sandbox providers → the world answers (signed SendGrid, Twilio, inbox and CRM webhooks) →
REX turns them into outcome labels → the A/B promotion check on last week's challenger → the weekly training
cycle (local trainer) deploys a new challenger. Where REX runs is the backend's business (``backends``).
"""

import datetime as dt
import os
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from agents.decisions.rules import forget_loaded_rules
from agents.domains import domain_health_check
from agents.domains.local_dns import serving
from agents.models import AgentRun, Lead, Message, Mission
from outcomes.models import OutcomeLabel
from simulation import report
from simulation.install import Installed, dns_zone, world_install
from simulation.oracle import Efficacy
from simulation.responder import Responder
from simulation.signing import Credentials
from simulation.world import World, open_timezones
from training import split
from training.cycle import run_training_cycle
from training.models import ModelVersion, PromotionDecision, TrainingRun
from training.policy import PolicyModel
from training.promotion import promote_ab_test_winner

WEEK = 7 * 86400.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    seed: int = 1
    weeks: int = 6
    leads: int = 2400
    ab_test_percentage: float = 50.0
    min_messages_per_arm: int = 60
    expected_minutes: float = 15.0  # how long the run may take: lead time zones must stay in working hours
    timezones: tuple[str, ...] | None = None  # where the leads live; default: where it is working time now


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
    how: str
    world: World
    started_at: dt.datetime
    timezones: tuple[str, ...]
    installed: Installed | None = None
    responder: Responder | None = None
    weeks: list[WeekResult] = field(default_factory=list)
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
        # A simulated week is minutes long and every answer is in before the weekly cycle: all of it is settled.
        "TRAINING_SETTLE_HOURS": "0",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }


def forget_process_caches() -> None:
    """Loaded policy models, the A/B split and compiled rules are cached per process by id; a rolled-back quick run
    leaves ids that the next run reuses, so each run starts without them."""
    PolicyModel.forget()
    split.split_cache_clear()
    forget_loaded_rules()


class Simulation:
    """``execute(then=...)`` runs the weeks and calls ``then(result)`` before anything is torn down (an inline
    run's transaction is rolled back afterwards, so the report must be read inside)."""

    def __init__(self, options: RunOptions, *, backend, say: Say, keep: bool = True):
        self.options = options
        self.backend = backend
        self.say = say
        self.keep = keep
        self.started_at = timezone.now()
        self.clock = time.monotonic()

    def world(self) -> tuple[World, tuple[str, ...]]:
        zones = self.options.timezones or open_timezones(now=self.started_at, minutes=self.options.expected_minutes)
        if not zones:
            self.say(
                "  ! No time zone is in its working day for the next "
                f"{self.options.expected_minutes:.0f} minutes (a weekend): REX will hold email until Monday, "
                "and the held sends are reported."
            )
        world = World.build(seed=self.options.seed, leads=self.options.leads, timezones=zones or None)
        return world, tuple(sorted({lead.timezone for lead in world.leads}))

    def execute(self, then: Callable[[RunResult], object] = lambda result: None):
        forget_process_caches()
        world, zones = self.world()
        result = RunResult(self.options, self.backend.name, world, self.started_at, zones)
        credentials = Credentials.generate()
        with serving(dns_zone(world)) as nameserver:
            overrides = self.backend.settings_overrides(credentials=credentials, nameserver=nameserver)
            # This process runs the weekly cycle: a simulated week is minutes long, all of it is settled.
            overrides["TRAINING_SETTLE_HOURS"] = 0
            # A run that is not kept happens in one transaction, rolled back at the end: nothing stays behind.
            with override_settings(**overrides), nullcontext() if self.keep else transaction.atomic():
                try:
                    self._run(result, credentials, nameserver)
                finally:
                    result.exit_codes = self.backend.stop()
                    result.seconds = time.monotonic() - self.clock
                    if result.exit_codes:
                        self.say(f"Stopped REX's processes (exit codes {result.exit_codes}).")
                answer = then(result)
                if not self.keep:
                    transaction.set_rollback(True)
        return answer

    def _run(self, result: RunResult, credentials: Credentials, nameserver: str) -> None:
        world = result.world
        result.installed = installed = world_install(world=world, nameserver=nameserver, now=self.started_at)
        self.say(
            f"World seed {world.seed} ({self.backend.name}): {len(world.leads)} leads of "
            f"'{world.organization_name}' in {len(result.timezones)} time zones where it is working time now; "
            f"{len(world.domains)} sending domains."
        )
        if installed.retired_policies:
            self.say(f"  flywheel reset: {installed.retired_policies} policy version(s) of earlier runs retired")
        self.backend.start(token=installed.token, credentials=credentials, nameserver=nameserver)
        lead_ids = self.import_leads(world, installed)
        result.responder = responder = Responder(
            world=world, credentials=credentials, transport=self.backend.transport(),
            organization_id=installed.organization.pk, public_base_url=self.backend.public_base_url,
        )  # fmt: skip
        for week, cohort in enumerate(world.cohorts(self.options.weeks), start=1):
            ids = [lead_ids[lead.email] for lead in cohort if lead.email in lead_ids]
            result.weeks.append(self.week(week, ids, responder, installed, nameserver))
        self.say("After the last week: the world's late answers (deals that close weeks later) …")
        responder.drain()
        self.backend.settle(responder, since=self.started_at)

    def import_leads(self, world: World, installed: Installed) -> dict[str, int]:
        rows = [lead.lead_row(now=self.started_at) for lead in world.leads]
        answer = self.backend.api.leads_import(rows)
        self.say(f"Imported leads through POST /api/leads/import: {answer['created']} created, "
                 f"{len(answer['rejected'])} rejected.")  # fmt: skip
        return dict(Lead.objects.filter(organization=installed.organization).values_list("email", "pk"))

    # --- one week -----------------------------------------------------------------------------------------------

    def week(self, week: int, lead_ids: list[int], responder: Responder, installed, nameserver) -> WeekResult:
        started = time.monotonic()
        self.backend.before_launch()
        key = f"sim-{installed.organization.pk}-week-{week}"
        mission_id = self.backend.api.mission_launch(lead_ids=lead_ids, key=key)["id"]
        self.say(f"Week {week}/{self.options.weeks}: mission #{mission_id} on {len(lead_ids)} leads")
        self.backend.run_mission(mission_id)
        self.backend.release_deferred(mission_id)
        mission = Mission.objects.get(pk=mission_id)
        sent = list(mission.messages.filter(status=Message.Status.SENT).order_by("pk"))
        responder.collect(label=week)
        requests = responder.advance(WEEK)
        self.backend.settle(responder, since=self.started_at)
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

    def domain_health(self, installed: Installed, nameserver: str) -> None:
        """The hourly domain health check, once per simulated week (beat runs it on real hours)."""
        with override_settings(DNS_NAMESERVERS=[nameserver], DNS_TIMEOUT=2.0):
            for domain in installed.organization.sending_domains.all():
                domain_health_check(domain)

    def flywheel(self, result: WeekResult, installed: Installed) -> None:
        """Last week's challenger is judged first (a newer challenger would replace it), then this week's cycle."""
        options = self.options
        result.promotion = promote_ab_test_winner(
            kind=ModelVersion.Kind.POLICY, min_days=0, min_messages_per_arm=options.min_messages_per_arm
        )
        result.training = run_training_cycle(
            kind=ModelVersion.Kind.POLICY, force=True, ab_test_percentage=options.ab_test_percentage,
            organization_id=installed.organization.pk,
        )  # fmt: skip
        if result.promotion or (result.training and result.training.model_version_id):
            self.backend.after_deploy()

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
