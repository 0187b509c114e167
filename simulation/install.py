"""Setting REX up for the world, the way an operator would: an organization and its operator, the sending
domains with their mailboxes and DNS records, and a clean flywheel. Leads come in later through the import API.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.test.utils import override_settings

from agents.domains import domain_health_check
from agents.domains.local_dns import ZoneResolver
from agents.models import Mailbox, Organization, SendingDomain
from agents.rate_limits import counters_forget
from agents.services import operator_create
from simulation.world import World, slug
from training import registry
from training.models import ModelVersion

# Compressed time: a real minute carries about a simulated day of sending, so the mailboxes are warmed up and
# sized for the run (REX's validators cap a mailbox at 500 a day); the org-wide limit matches the channel's.
MAILBOX_DAILY_CAP = 500
MAILBOX_HOURLY_CAP = 500
SENDS_PER_MINUTE = 600


@dataclass(frozen=True)
class Installed:
    organization: Organization
    token: str
    operator_email: str
    domains: tuple[SendingDomain, ...]
    retired_policies: int


def dns_zone(world: World) -> ZoneResolver:
    """SPF, DKIM and DMARC of the world's sending domains (there is no public DNS here to publish them in)."""
    zone = ZoneResolver()
    for domain in world.domains:
        zone.authenticate(domain.domain)
    return zone


def policies_retire() -> int:
    """Start the flywheel from scratch: policy versions an earlier run left deployed stop serving traffic."""
    deployed = ModelVersion.objects.filter(kind=ModelVersion.Kind.POLICY, status=ModelVersion.Status.DEPLOYED)
    count = 0
    for version in deployed.order_by("id"):
        registry.model_retire(version=version)
        count += 1
    return count


@transaction.atomic
def _organization(world: World, tag: str) -> tuple[Organization, str, str]:
    email = f"operator+{slug(tag)}@{slug(world.organization_name)}.example"
    membership, token = operator_create(organization_name=f"{world.organization_name} {tag}", email=email)
    organization = membership.organization
    organization.postal_address = world.postal_address
    organization.sends_per_minute = SENDS_PER_MINUTE
    organization.save(update_fields=["postal_address", "sends_per_minute"])
    return organization, token.key, email


def _domains(world: World, organization: Organization) -> tuple[SendingDomain, ...]:
    """The world's sending domains and mailboxes, their send counters at zero (``counters_forget``: a quick run
    rolled back before this one leaves its counters under the ids these rows get again)."""
    created, mailbox_ids = [], []
    for world_domain in world.domains:
        domain = SendingDomain.objects.create(
            organization=organization, domain=world_domain.domain, daily_cap=MAILBOX_DAILY_CAP * 3, warmup_stage=30
        )
        for local_part in world_domain.mailboxes:
            mailbox = Mailbox.objects.create(
                sending_domain=domain, local_part=local_part, display_name=local_part.capitalize(),
                daily_cap=MAILBOX_DAILY_CAP, target_daily_cap=MAILBOX_DAILY_CAP, hourly_cap=MAILBOX_HOURLY_CAP,
                min_gap_seconds=0,
            )  # fmt: skip
            mailbox_ids.append(mailbox.pk)
        created.append(domain)
    counters_forget(mailbox_ids=mailbox_ids, organization_ids=[organization.pk])
    return tuple(created)


def world_install(*, world: World, nameserver: str, now: dt.datetime) -> Installed:
    """A new organization for this run (so a second run never finds its leads contacted a minute ago)."""
    retired = policies_retire()
    organization, token, email = _organization(world, now.strftime("%Y-%m-%d %H:%M:%S"))
    domains = _domains(world, organization)
    with override_settings(DNS_NAMESERVERS=[nameserver], DNS_TIMEOUT=2.0):
        domains = tuple(domain_health_check(domain) for domain in domains)
    return Installed(organization, token, email, domains, retired)
