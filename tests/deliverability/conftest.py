"""A real DNS server on 127.0.0.1 (dnslib) that the checks resolve against, and bulk outcome builders."""

import datetime as dt

import pytest
from django.utils import timezone

from agents.domains.local_dns import ZoneResolver, serving
from agents.models import Message
from outcomes.models import OutcomeLabel
from tests.factories import LeadFactory, MissionFactory


@pytest.fixture(scope="session")
def dns_server():
    resolver = ZoneResolver()
    with serving(resolver) as address:
        yield resolver, int(address.rsplit(":", 1)[1])


@pytest.fixture
def zone(dns_server, settings) -> ZoneResolver:
    resolver, port = dns_server
    resolver.txt.clear()
    resolver.silent.clear()
    settings.DNS_NAMESERVERS = [f"127.0.0.1:{port}"]
    settings.DNS_TIMEOUT = 1.0
    return resolver


def make_sends(
    domain,
    total: int,
    *,
    mailbox=None,
    hard: int = 0,
    soft: int = 0,
    complaints: int = 0,
    replies: int = 0,
    days_ago: float = 1,
) -> list[OutcomeLabel]:
    """``total`` sent emails from ``domain`` (or ``mailbox``), the first ``hard`` hard-bounced, and so on."""
    organization = domain.organization
    mission = MissionFactory(organization=organization)
    lead = LeadFactory(organization=organization)
    sent_at = timezone.now() - dt.timedelta(days=days_ago)
    messages = Message.objects.bulk_create(
        Message(
            organization=organization, mission=mission, lead=lead, step=i + 1, body="hi", to_address=lead.email,
            sending_domain=domain, mailbox=mailbox, status=Message.Status.SENT, sent_at=sent_at,
        )
        for i in range(total)
    )  # fmt: skip
    return OutcomeLabel.objects.bulk_create(
        OutcomeLabel(
            organization=organization, mission=mission, lead=lead, message=message, channel="email", sent_at=sent_at,
            delivered=i >= hard + soft,
            bounced=i < hard + soft,
            bounce_type="hard" if i < hard else ("soft" if i < hard + soft else ""),
            spam_reported=hard + soft <= i < hard + soft + complaints,
            replied=total - i <= replies,
        )
        for i, message in enumerate(messages)
    )  # fmt: skip
