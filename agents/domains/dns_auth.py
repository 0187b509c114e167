"""SPF, DKIM and DMARC checks for a sending domain, over a configurable resolver.

Settings: ``DNS_NAMESERVERS`` (a list of "ip" or "ip:port"; empty = the system resolver) and
``DNS_TIMEOUT`` (seconds for the whole lookup, default 3.0). Every check is ``{"ok": bool, ...}`` with
the ``record`` found or the ``error`` that says why it failed; a lookup that times out is a failure too.
"""

import re

import dns.exception
import dns.nameserver
import dns.resolver
from django.conf import settings

from agents.models import SendingDomain

DMARC_POLICIES = ("none", "quarantine", "reject")
_DKIM_KEY = re.compile(r"(?:^|;)\s*p=([^;]*)", re.IGNORECASE)


def _nameserver(spec: str) -> dns.nameserver.Do53Nameserver:
    spec = spec.strip()
    if spec.startswith("["):  # "[::1]:5353"
        host, _, port = spec[1:].partition("]:")
        return dns.nameserver.Do53Nameserver(host, int(port or 53))
    if spec.count(":") == 1:  # "127.0.0.1:5353"; a bare IPv6 address has several colons
        host, port = spec.split(":")
        return dns.nameserver.Do53Nameserver(host, int(port))
    return dns.nameserver.Do53Nameserver(spec, 53)


def resolver() -> dns.resolver.Resolver:
    nameservers = list(getattr(settings, "DNS_NAMESERVERS", []) or [])
    timeout = float(getattr(settings, "DNS_TIMEOUT", 3.0))
    result = dns.resolver.Resolver(configure=not nameservers)
    if nameservers:
        result.nameservers = [_nameserver(spec) for spec in nameservers]
    result.timeout = timeout
    result.lifetime = timeout
    return result


def _txt_records(res: dns.resolver.Resolver, name: str) -> tuple[list[str], str | None]:
    """The TXT strings at ``name`` (each record's chunks joined), or the reason there are none."""
    try:
        answer = res.resolve(name, "TXT")
    except dns.resolver.NXDOMAIN:
        return [], f"NXDOMAIN: {name} does not exist"
    except dns.resolver.NoAnswer:
        return [], f"no TXT record at {name}"
    except dns.exception.Timeout:
        return [], f"timeout looking up {name}"
    except dns.resolver.NoNameservers:
        return [], f"no nameserver answered for {name}"
    except dns.exception.DNSException as exc:
        return [], f"{type(exc).__name__} looking up {name}: {exc}"
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer], None


def check_spf(res: dns.resolver.Resolver, domain: str) -> dict:
    records, error = _txt_records(res, domain)
    if error:
        return {"ok": False, "error": error}
    spf = [r for r in records if r.lower().startswith("v=spf1")]
    if not spf:
        return {"ok": False, "error": f"no TXT record at {domain} starts with v=spf1"}
    if len(spf) > 1:  # RFC 7208 §4.5: more than one SPF record is a permanent error
        return {"ok": False, "error": f"{len(spf)} SPF records at {domain}; receivers treat that as a permerror"}
    return {"ok": True, "record": spf[0]}


def check_dkim(res: dns.resolver.Resolver, domain: str, selector: str) -> dict:
    name = f"{selector}._domainkey.{domain}"
    records, error = _txt_records(res, name)
    if error:
        return {"ok": False, "selector": selector, "error": error}
    for record in records:
        key = _DKIM_KEY.search(record)
        if key and key.group(1).strip():
            return {"ok": True, "selector": selector, "record": record}
        if key:
            return {"ok": False, "selector": selector, "error": f"the key at {name} is revoked (empty p=)"}
    return {"ok": False, "selector": selector, "error": f"no DKIM key (p=) at {name}"}


def _dmarc_tags(record: str) -> dict[str, str]:
    tags = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip()
    return tags


def check_dmarc(res: dns.resolver.Resolver, domain: str) -> dict:
    name = f"_dmarc.{domain}"
    records, error = _txt_records(res, name)
    if error:
        return {"ok": False, "error": error}
    dmarc = [r for r in records if r.replace(" ", "").lower().startswith("v=dmarc1")]
    if not dmarc:
        return {"ok": False, "error": f"no TXT record at {name} starts with v=DMARC1"}
    policy = _dmarc_tags(dmarc[0]).get("p", "").lower()
    if policy not in DMARC_POLICIES:
        return {"ok": False, "record": dmarc[0], "error": f"DMARC policy p={policy!r} is not one of {DMARC_POLICIES}"}
    return {"ok": True, "record": dmarc[0], "policy": policy}


def dns_check(domain: SendingDomain) -> dict:
    """``{"spf": {...}, "dkim": {...}, "dmarc": {...}}``, each ``{"ok": bool, "record"|"error": str}``."""
    res = resolver()
    return {
        "spf": check_spf(res, domain.domain),
        "dkim": check_dkim(res, domain.domain, domain.dkim_selector),
        "dmarc": check_dmarc(res, domain.domain),
    }


def dns_failures(checks: dict) -> list[str]:
    """The names of the failed checks, e.g. ``["dkim"]``."""
    return [name for name, result in checks.items() if isinstance(result, dict) and not result.get("ok")]
