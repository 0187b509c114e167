"""A small authoritative DNS server (dnslib) for domains REX knows: tests and the demo's world.

Production resolves through the real DNS (``DNS_NAMESERVERS`` or the system's); a machine without
internet serves its sending domains' SPF/DKIM/DMARC from here instead.
"""

import contextlib

from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.dns import DNSError
from dnslib.server import BaseResolver, DNSLogger, DNSServer


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


@contextlib.contextmanager
def serving(resolver: ZoneResolver):
    """Run ``resolver`` on 127.0.0.1 (a free UDP port); yields the "ip:port" for DNS_NAMESERVERS."""
    server = DNSServer(resolver, address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda *_: None))
    server.start_thread()
    try:
        yield f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()
        server.server.server_close()
