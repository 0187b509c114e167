"""A small world installed in REX, messages sent through REX's own sandbox providers, and transports that
carry the world's requests to REX's views (``ClientTransport``, the Django test client) or just record them."""

__all__ = ["ClientTransport"]

import dataclasses
import random
from types import SimpleNamespace

import pytest
from django.utils import timezone

from agents.models import Lead, Mailbox, Message, Mission, Organization, SendingDomain
from agents.sending import message_send
from agents.services import leads_import
from simulation.backends import ClientTransport
from simulation.propensity import FRAMEWORKS, TONES, HiddenModel
from simulation.responder import Responder
from simulation.signing import Credentials
from simulation.world import World
from webhooks.models import WebhookEvent
from webhooks.services import webhook_event_process

PUBLIC_BASE_URL = "https://rex.example.com"
QUIET = {"block": 0.0, "open": 0.0, "reply": 0.0, "complaint": 0.0, "unsubscribe": 0.0, "stop": 0.0,
         "out_of_office": 0.0}  # fmt: skip


class ScriptedModel(HiddenModel):
    """The hidden model with some leads' probabilities pinned (by lead key), to make rare fates certain."""

    def __init__(self, *, seed: int, script: dict[int, dict]):
        super().__init__(seed=seed)
        self.script = script

    def propensities(self, lead, strategy, **conditions):
        found = super().propensities(lead, strategy, **conditions)
        return dataclasses.replace(found, **self.script.get(lead.key, {}))


class RecordingTransport:
    """Answers 200 and keeps every request (method, path, body, headers)."""

    def __init__(self):
        self.requests: list[SimpleNamespace] = []

    def send(self, *, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
        self.requests.append(SimpleNamespace(method=method, path=path, body=body, headers=dict(headers)))
        return 200


@pytest.fixture
def credentials(settings):
    """REX configured the way the demo configures it: verification on, real providers off (sandbox sends)."""
    credentials = Credentials.generate()
    for name, value in credentials.rex_settings().items():
        setattr(settings, name, value)
    settings.DEBUG = False  # an unset secret would be refused, so every check really verifies
    settings.PUBLIC_BASE_URL = PUBLIC_BASE_URL
    settings.SENDGRID_API_KEY = ""
    settings.TWILIO_ACCOUNT_SID = ""
    return credentials


def install(world: World) -> SimpleNamespace:
    """The world's organization, leads (through REX's import service), a domain with a mailbox, a mission."""
    organization = Organization.objects.create(name=world.organization_name, postal_address=world.postal_address)
    rows = [lead.lead_row(now=timezone.now()) for lead in world.leads]
    result = leads_import(organization=organization, rows=rows)
    assert not result.rejected, result.rejected
    domain = SendingDomain.objects.create(organization=organization, domain=world.domains[0].domain, daily_cap=10_000)
    mailbox = Mailbox.objects.create(
        sending_domain=domain, local_part="alex", daily_cap=10_000, target_daily_cap=500, hourly_cap=10_000,
        min_gap_seconds=0,
    )  # fmt: skip
    mission = Mission.objects.create(organization=organization, type=Mission.Type.LEAD_REACTIVATION)
    return SimpleNamespace(organization=organization, domain=domain, mailbox=mailbox, mission=mission)


def send(setup: SimpleNamespace, world: World, *, channel_of=None, rng: random.Random | None = None) -> list[Message]:
    """One step-1 message per lead through REX's real send path (sandbox providers), random framework and tone."""
    rng = rng or random.Random(5)
    sent = []
    for world_lead in world.leads:
        lead = Lead.objects.get(organization=setup.organization, email=world_lead.email)
        channel = channel_of(world_lead) if channel_of else "email"
        sms = channel == Message.Channel.SMS
        message = Message.objects.create(
            organization=setup.organization, mission=setup.mission, lead=lead, step=1, channel=channel,
            subject="" if sms else "Still losing deals after the first call?",
            body=f"Hello {lead.first_name},\n\nWe spoke last year about deals going quiet.\n\nBest,\nAlex",
            framework=rng.choice(FRAMEWORKS), tone=rng.choice(TONES),
            sending_domain=None if sms else setup.domain, mailbox=None if sms else setup.mailbox,
            from_address="+15005550006" if sms else setup.mailbox.address,
            to_address=lead.phone if sms else lead.email,
        )  # fmt: skip
        sent.append(message_send(message_id=message.pk))
    return sent


def responder_for(world: World, setup: SimpleNamespace, credentials: Credentials, transport) -> Responder:
    return Responder(
        world=world, credentials=credentials, transport=transport, organization_id=setup.organization.pk,
        public_base_url=PUBLIC_BASE_URL,
    )  # fmt: skip


def process_stored_events() -> None:
    """What the webhook task does for each stored event, oldest first; unmatched ones get a second pass (the
    sweep's job in production)."""
    for _ in range(2):
        pending = WebhookEvent.objects.filter(state__in=[WebhookEvent.State.RECEIVED, WebhookEvent.State.UNMATCHED])
        for event_id in pending.order_by("id").values_list("id", flat=True):
            webhook_event_process(event_id=event_id)


def scripted_world() -> World:
    """Twelve leads, each with one certain fate."""
    base = World.build(seed=44, leads=400)
    emails = [lead for lead in base.leads if not lead.phone][:9]
    mobiles = [lead for lead in base.leads if lead.phone_kind == "mobile"][:2]
    landline = next(lead for lead in base.leads if lead.phone_kind == "landline")
    plain = {"apple_mail": False, "security_gateway": False, "dead_email": False}
    leads = [dataclasses.replace(lead, key=key, **plain) for key, lead in enumerate([*emails, *mobiles, landline])]
    leads[0] = dataclasses.replace(leads[0], dead_email=True)
    leads[2] = dataclasses.replace(leads[2], apple_mail=True)
    leads[3] = dataclasses.replace(leads[3], security_gateway=True)
    leads[6] = dataclasses.replace(leads[6], one_click_unsubscribe=True)
    leads[7] = dataclasses.replace(leads[7], one_click_unsubscribe=False)
    deal = {"reply": 1.0, "positive": 1.0, "meeting": 1.0, "show": 1.0, "opportunity": 1.0, "win": 1.0}
    script = {
        0: QUIET,
        1: {**QUIET, "block": 1.0},
        2: QUIET,
        3: QUIET,
        4: {**QUIET, **deal},
        5: {**QUIET, "complaint": 1.0},
        6: {**QUIET, "unsubscribe": 1.0},
        7: {**QUIET, "unsubscribe": 1.0},
        8: {**QUIET, "out_of_office": 1.0},
        9: {**QUIET, **deal},
        10: {**QUIET, "stop": 1.0},
        11: QUIET,
    }
    return dataclasses.replace(base, leads=tuple(leads), model=ScriptedModel(seed=44, script=script))


def scripted_channel(lead) -> str:
    return "sms" if lead.key >= 9 else "email"


@pytest.fixture
def small_world() -> World:
    return World.build(seed=21, leads=60)
