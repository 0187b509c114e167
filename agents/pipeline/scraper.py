"""Scraper agent: enrichment from several sources behind one interface, with provenance on every field.

Each source answers ``fetch(lead) -> {field: value}`` or raises SourceUnavailable; the agent caches
each answer per source and domain, stores every field as ``{"value", "source", "fetched_at"}`` in
``lead.enrichment`` and fills the lead's own empty fields from the sources it trusts for them.
"""

import csv
import hashlib
import ipaddress
import json
import re
import socket
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils import timezone

from agents.decisions.lifecycle import lead_can, lead_transition
from agents.models import AgentRun, Lead
from agents.pipeline.base import Agent, StepResult

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0  # per socket read, so a server trickling bytes is also cut off by TOTAL_TIMEOUT
TOTAL_TIMEOUT = 10.0
MAX_BYTES = 512 * 1024
CHUNK_SIZE = 16 * 1024
MAX_REDIRECTS = 5
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
USER_AGENT = "REX-enrichment/1.0"
DEFAULT_CACHE_TTL = 7 * 24 * 3600
DEFAULT_FIRMOGRAPHICS_FILE = Path(__file__).resolve().parent.parent / "data" / "firmographics.csv"
FIRMOGRAPHICS_FIELDS = ("industry", "company_size", "country", "founded", "funding_stage", "website")
FIRMOGRAPHICS_INTEGERS = frozenset({"company_size", "founded"})
# A free-mail domain says nothing about the company, so it is never taken for its website.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "hotmail.co.uk",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.co.uk",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "mail.com",
        "yandex.ru",
        "zoho.com",
        "qq.com",
        "163.com",
    }
)


class SourceUnavailable(Exception):
    """An expected failure (timeout, HTTP error, no data file): the lead is enriched from the other sources."""


def _bare_host(url_or_domain: str) -> str:
    host = urlsplit(url_or_domain if "//" in url_or_domain else f"//{url_or_domain}").hostname or ""
    return host.removeprefix("www.")


class EnrichmentSource:
    name: ClassVar[str]
    # Lead field → result field this source may fill when the lead's own field is empty.
    fills: ClassVar[dict[str, str]] = {}

    def fetch(self, lead: Lead) -> dict:
        raise NotImplementedError

    def cache_key(self, lead: Lead) -> str | None:
        """Where the answer for this lead is cached; None: never cached."""
        domain = _bare_host(lead.website) or lead.email_domain
        return _key(self.name, domain) if domain else None


def _key(source_name: str, domain: str) -> str:
    # Hashed so any host name makes a valid key on every cache backend.
    return f"scraper:{source_name}:{hashlib.sha256(domain.encode()).hexdigest()[:32]}"


class EmailDomainSource(EnrichmentSource):
    name = "email_domain"

    def cache_key(self, lead: Lead) -> str | None:
        return _key(self.name, lead.email_domain) if "@" in lead.email else None

    def fetch(self, lead: Lead) -> dict:
        if "@" not in lead.email:
            raise SourceUnavailable("no email address")
        domain = lead.email_domain
        fields = {"email_domain": domain, "free_mail": domain in FREE_MAIL_DOMAINS}
        if not fields["free_mail"]:
            fields["website_guess"] = f"https://{domain}"
        return fields


# Signal → phrases that reveal it in the page's visible text or link targets.
SIGNAL_PHRASES = {
    "hiring": ("we're hiring", "we are hiring", "careers", "join our team", "open positions", "open roles", "jobs"),
    "pricing": ("pricing",),
    "series_a": ("series a",),
    "series_b": ("series b",),
    "hubspot": ("hubspot",),
    "salesforce": ("salesforce",),
    "book_a_demo": ("book a demo", "request a demo", "schedule a demo", "get a demo"),
}
_SIGNAL_PATTERNS = {
    signal: re.compile(r"\b(?:" + "|".join(map(re.escape, phrases)) + r")\b")
    for signal, phrases in SIGNAL_PHRASES.items()
}
_INVISIBLE_TAGS = frozenset({"script", "style", "noscript", "template", "svg"})
_META_KEYS = frozenset({"description", "og:description"})


class _PageParser(HTMLParser):
    """Collects the first <title>, the description metas, visible text and link targets."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title: list[str] = []
        self.meta: dict[str, str] = {}
        self.text: list[str] = []
        self.links: list[str] = []
        self._in_title = False
        self._title_done = False
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        attributes = {key: value or "" for key, value in attrs}
        if tag in _INVISIBLE_TAGS:
            self._hidden += 1
        elif tag == "title" and not self._title_done and not self._hidden:
            self._in_title = True
        elif tag == "meta":
            key = (attributes.get("name") or attributes.get("property") or "").lower()
            if key in _META_KEYS and attributes.get("content"):
                self.meta.setdefault(key, attributes["content"].strip())
        elif tag == "a" and attributes.get("href"):
            self.links.append(attributes["href"])

    def handle_endtag(self, tag):
        if tag in _INVISIBLE_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "title" and self._in_title:
            self._in_title, self._title_done = False, True

    def handle_data(self, data):
        if self._hidden:
            return
        (self.title if self._in_title else self.text).append(data)


def page_summary(html: str) -> dict:
    """The page's title, description (meta, else og:description) and sorted signal names."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    haystack = " ".join([*parser.text, *parser.links]).lower().replace("\u2019", "'")
    haystack = " ".join(haystack.replace("-", " ").replace("/", " ").split())
    return {
        "website_title": " ".join("".join(parser.title).split())[:300],
        "website_description": (parser.meta.get("description") or parser.meta.get("og:description") or "")[:1000],
        "website_signals": sorted(signal for signal, pattern in _SIGNAL_PATTERNS.items() if pattern.search(haystack)),
    }


def website_url(lead: Lead) -> str | None:
    """The lead's website, else a guess from a company (not free-mail) email domain."""
    if lead.website:
        return lead.website
    domain = lead.email_domain if "@" in lead.email else ""
    return f"https://{domain}" if domain and domain not in FREE_MAIL_DOMAINS else None


def _read_capped(response: requests.Response) -> bytes:
    body = bytearray()
    deadline = time.monotonic() + TOTAL_TIMEOUT
    for chunk in response.iter_content(CHUNK_SIZE):
        body += chunk
        if len(body) >= MAX_BYTES:
            # Stop reading: anything past the cap stays on the wire.
            return bytes(body[:MAX_BYTES])
        if time.monotonic() > deadline:
            raise SourceUnavailable(f"slower than {TOTAL_TIMEOUT:g}s")
    return bytes(body)


def refuse_internal_host(url: str) -> None:
    """A lead's website comes from CRM data: never let it point us at our own network."""
    if getattr(settings, "SCRAPER_ALLOW_PRIVATE_HOSTS", False):
        return
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError) as exc:
        raise SourceUnavailable(f"cannot resolve {host}") from exc
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global:
            raise SourceUnavailable(f"{host} resolves to a non-public address ({ip})")


class WebsiteSource(EnrichmentSource):
    name = "website"
    fills = {"website": "website_url"}

    def cache_key(self, lead: Lead) -> str | None:
        url = website_url(lead)
        return _key(self.name, _bare_host(url)) if url else None

    def fetch(self, lead: Lead) -> dict:
        url = website_url(lead)
        if not url or urlsplit(url).scheme not in ("http", "https"):
            raise SourceUnavailable("no company website")
        try:
            with requests.Session() as session:
                # Redirects are followed by hand so every hop passes the address check.
                for _ in range(MAX_REDIRECTS + 1):
                    refuse_internal_host(url)
                    with session.get(
                        url,
                        timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                        stream=True,
                        allow_redirects=False,
                        headers={"User-Agent": USER_AGENT, "Accept": "text/html"},
                    ) as response:
                        if not response.is_redirect:
                            return self._page(response)
                        url = urljoin(url, response.headers["Location"])
                raise SourceUnavailable("too many redirects")
        except requests.RequestException as exc:
            raise SourceUnavailable(type(exc).__name__) from exc

    def _page(self, response: requests.Response) -> dict:
        if response.status_code >= 400:
            raise SourceUnavailable(f"HTTP {response.status_code}")
        content_type = response.headers.get("Content-Type", "")
        if content_type.split(";", 1)[0].strip().lower() not in HTML_TYPES:
            raise SourceUnavailable(f"not HTML: {content_type or 'no content type'}")
        # requests assumes ISO-8859-1 for text/* without a charset; most of the web is UTF-8.
        encoding = response.encoding if "charset" in content_type.lower() else "utf-8"
        raw = _read_capped(response)
        try:
            html = raw.decode(encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            html = raw.decode("utf-8", errors="replace")
        fields = {"website_url": response.url, **page_summary(html)}
        return {name: value for name, value in fields.items() if value}


_tables: dict[str, tuple[tuple[int, int], dict[str, dict]]] = {}
_tables_lock = threading.Lock()


def _firmographics_path() -> Path:
    return Path(getattr(settings, "SCRAPER_FIRMOGRAPHICS_FILE", DEFAULT_FIRMOGRAPHICS_FILE))


def _file_version(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError as exc:
        raise SourceUnavailable(f"no firmographics file {path.name}") from exc
    return stat.st_mtime_ns, stat.st_size


def _clean_row(row: dict) -> tuple[str, dict]:
    fields = {}
    for name in FIRMOGRAPHICS_FIELDS:
        value = row.get(name)
        if value in (None, ""):
            continue
        try:
            fields[name] = int(value) if name in FIRMOGRAPHICS_INTEGERS else str(value).strip()
        except (TypeError, ValueError):
            continue  # one bad cell loses that cell, not the row
    return _bare_host(str(row.get("domain") or "").strip().lower()), fields


def _parse_firmographics(path: Path) -> dict[str, dict]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            if path.suffix.lower() == ".json":
                data = json.load(handle)
                # Either {"acme.com": {...}} or [{"domain": "acme.com", ...}].
                if isinstance(data, dict):
                    data = [{"domain": domain, **row} for domain, row in data.items() if isinstance(row, dict)]
                rows = data if isinstance(data, list) else []
            else:
                rows = list(csv.DictReader(handle))
    except (OSError, ValueError, csv.Error) as exc:
        raise SourceUnavailable(f"unreadable {path.name}: {type(exc).__name__}") from exc
    table = dict(_clean_row(row) for row in rows if isinstance(row, dict))
    table.pop("", None)
    return table


def firmographics_table(path: Path) -> dict[str, dict]:
    """The file's rows by domain: parsed once per process, again only when the file changes."""
    version = _file_version(path)
    with _tables_lock:
        cached = _tables.get(str(path))
        if cached is None or cached[0] != version:
            cached = _tables[str(path)] = (version, _parse_firmographics(path))
    return cached[1]


class FirmographicsFileSource(EnrichmentSource):
    name = "firmographics"
    fills = {"industry": "industry", "company_size": "company_size", "website": "website"}

    def _domains(self, lead: Lead) -> list[str]:
        domains = [_bare_host(lead.website), lead.email_domain if "@" in lead.email else ""]
        return list(dict.fromkeys(domain for domain in domains if domain))

    def cache_key(self, lead: Lead) -> str | None:
        # The file version is part of the key, so an edited file is not hidden behind a week-old answer.
        path = _firmographics_path()
        mtime_ns, size = _file_version(path)
        version = f"{mtime_ns}-{size}"
        domains = ",".join(self._domains(lead))
        return _key(self.name, f"{path}|{version}|{domains}") if domains else None

    def fetch(self, lead: Lead) -> dict:
        table = firmographics_table(_firmographics_path())
        for domain in self._domains(lead):
            if domain in table:
                return {"website": f"https://{domain}", **table[domain]}
        return {}


def _fetch_cached(source: EnrichmentSource, lead: Lead) -> tuple[dict, str]:
    """The source's fields and when they were fetched; failures are not cached, so the next run retries."""
    key = source.cache_key(lead)
    cached = cache.get(key) if key else None
    if cached is not None:
        return cached["fields"], cached["fetched_at"]
    fields, fetched_at = source.fetch(lead), timezone.now().isoformat()
    if key:
        ttl = getattr(settings, "SCRAPER_CACHE_TTL", DEFAULT_CACHE_TTL)
        cache.set(key, {"fields": fields, "fetched_at": fetched_at}, ttl)
    return fields, fetched_at


def _valid_for(lead_field: str, value) -> bool:
    if lead_field == "company_size":
        return isinstance(value, int) and value > 0
    if lead_field == "website":
        try:
            URLValidator(schemes=["http", "https"])(value)
        except ValidationError:
            return False
        return True
    return isinstance(value, str) and 0 < len(value) <= Lead._meta.get_field(lead_field).max_length


def _fill_empty(lead: Lead, source: EnrichmentSource, fields: dict) -> list[str]:
    filled = []
    for lead_field, result_field in source.fills.items():
        value = fields.get(result_field)
        if not getattr(lead, lead_field) and value is not None and _valid_for(lead_field, value):
            setattr(lead, lead_field, value)
            filled.append(lead_field)
    return filled


class ScraperAgent(Agent):
    """Enriches each lead from every available source; a failing source is reported, never fatal."""

    name = AgentRun.Agent.SCRAPER

    def sources(self) -> list[EnrichmentSource]:
        # Firmographics run before the website, so a website found in the file is the one fetched.
        sources: list[EnrichmentSource] = [EmailDomainSource(), FirmographicsFileSource()]
        if getattr(settings, "SCRAPER_WEBSITE_ENABLED", True):
            sources.append(WebsiteSource())
        return sources

    def process(self, lead: Lead) -> StepResult:
        statuses, found, filled = {}, {}, []
        for source in self.sources():
            try:
                fields, fetched_at = _fetch_cached(source, lead)
            except SourceUnavailable as exc:
                statuses[source.name] = f"unavailable: {exc}"
                continue
            statuses[source.name] = "ok"
            found.update(
                {
                    name: {"value": value, "source": source.name, "fetched_at": fetched_at}
                    for name, value in fields.items()
                }
            )
            filled += _fill_empty(lead, source, fields)
        lead.enrichment = {**(lead.enrichment or {}), **found}
        # An enrichment-only mission may run on leads the ICP agent never qualified: their state stays.
        if lead_can(lead, "enrich"):
            lead_transition(lead, "enrich", save=False)
        lead.save(update_fields=["enrichment", "state", *filled, "updated_at"])
        return StepResult(output={"fields": sorted(found), "filled": filled, "sources": statuses})
