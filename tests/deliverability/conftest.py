"""A real DNS server on 127.0.0.1 (dnslib) that the checks resolve against, and bulk outcome builders."""

import datetime as dt

import pytest
from django.utils import timezone
from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.dns import DNSError
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from agents.models import Message
from outcomes.models import OutcomeLabel
from tests.factories import LeadFactory, MissionFactory


class ZoneResolver(BaseResolver):
    """TXT records by name; an unknown name is NXDOMAIN, a name in ``silent`` never answers (a timeout)."""

    def __init__(self):
        self.txt: dict[str, list[str]] = {}
        self.silent: set[str] = set()

    def resolve(self, request, handler):
        name = str(request.q.qname).rstrip(".").lower()
        if name in self.silent:
            raise DNSError("dropped on purpose")  # dnslib logs it and sends nothing
        reply = request.reply()
        if name not in self.txt:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for text in self.txt[name]:
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(text), ttl=60))
        return reply

    def authenticate(self, domain: str, *, selector: str = "s1", policy: str = "reject") -> None:
        """SPF, DKIM and DMARC all in place for ``domain``."""
        self.txt[domain] = ["google-site-verification=abc", "v=spf1 include:sendgrid.net -all"]
        self.txt[f"{selector}._domainkey.{domain}"] = ["v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC"]
        self.txt[f"_dmarc.{domain}"] = [f"v=DMARC1; p={policy}; rua=mailto:dmarc@{domain}"]


@pytest.fixture(scope="session")
def dns_server():
    resolver = ZoneResolver()
    server = DNSServer(resolver, address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda *_: None))
    server.start_thread()
    yield resolver, server.server.server_address[1]
    server.stop()
    server.server.server_close()


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
