"""The simulated organization REX works for: its dead leads, its sending domains, and the CRM that records
meetings and deals. Everything is drawn from one seed, so a seed is a world.

What REX may see of a lead is ``WorldLead.lead_row()`` (the columns of a CRM export). The rest of a
``WorldLead`` (a dead address, a habit of reporting spam, an Apple Mail client that pre-fetches pixels, a
landline in the phone field) is the world's hidden state: only the responder reads it.
"""

import datetime as dt
import itertools
import math
import random
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass, field

import phonenumbers
from faker import Faker

from simulation.propensity import SENIORITY_GROUP_OF, HiddenModel

INDUSTRIES = {
    "software": ("SaaS", "Cybersecurity", "Developer Tools"),
    "finance": ("Fintech", "Insurance", "Banking"),
    "health": ("Healthcare", "Biotech", "Medical Devices"),
    "industrial": ("Manufacturing", "Logistics", "Construction"),
}
COMPANY_SUFFIXES = {
    "SaaS": ("Cloud", "Software", "Labs", "Systems"),
    "Cybersecurity": ("Security", "Defense", "Shield"),
    "Developer Tools": ("Dev", "Code", "Stack"),
    "Fintech": ("Pay", "Capital", "Ledger"),
    "Insurance": ("Insurance", "Mutual", "Assurance"),
    "Banking": ("Bank", "Trust", "Financial"),
    "Healthcare": ("Health", "Care", "Clinics"),
    "Biotech": ("Bio", "Therapeutics", "Genomics"),
    "Medical Devices": ("Medical", "Devices", "Diagnostics"),
    "Manufacturing": ("Industries", "Manufacturing", "Works"),
    "Logistics": ("Logistics", "Freight", "Transport"),
    "Construction": ("Construction", "Builders", "Engineering"),
}
# Titles per seniority level, each placed at that level by REX's own seniority_of (a test checks it).
TITLES = {
    "c_level": ("CEO", "Chief Revenue Officer", "CFO", "COO", "Co-founder", "Chief Marketing Officer", "CTO"),
    "vp": ("VP Sales", "VP Marketing", "Vice President of Operations", "SVP Finance", "VP Engineering"),
    "head": ("Head of Sales", "Head of Growth", "Head of Procurement", "Head of Operations"),
    "director": ("Director of IT", "Sales Director", "Director of Finance", "Marketing Director", "General Manager"),
    "manager": ("Sales Manager", "Operations Manager", "Procurement Manager", "Marketing Manager", "Team Lead, RevOps"),
    "individual": ("Account Executive", "Business Analyst", "Procurement Specialist", "Operations Analyst",
                   "Marketing Coordinator", "Solutions Engineer"),
}  # fmt: skip
SENIORITY_WEIGHTS = {"c_level": 0.12, "vp": 0.16, "head": 0.12, "director": 0.18, "manager": 0.22, "individual": 0.2}
LOST_REASONS = {"timing": 0.3, "budget": 0.25, "no decision": 0.2, "competitor": 0.15, "not interested": 0.1}
SIZE_BANDS = {"small": (0.3, 10, 49), "mid": (0.45, 50, 999), "enterprise": (0.25, 1000, 20000)}

# Fictional but valid numbers: North American 555-0100..0199 and Ofcom's drama ranges (UK fixed lines).
US_AREA_CODES = {
    "America/New_York": (212, 646, 617, 305, 404, 215, 202, 704, 716, 914),
    "America/Chicago": (312, 773, 512, 214, 713, 612, 314, 414, 615, 816),
    "America/Denver": (303, 720, 801, 505, 406),
    "America/Los_Angeles": (415, 213, 206, 503, 619, 408, 510, 702, 310, 818),
}
UK_PREFIXES = ("2079460", "1134960", "1614960", "1174960", "1214960")


@dataclass(frozen=True)
class Region:
    timezone: str
    country: str
    locale: str
    weight: float
    phone_share: float  # leads whose CRM record has a phone number


REGIONS = (
    Region("America/New_York", "US", "en_US", 0.2, 0.45),
    Region("America/Chicago", "US", "en_US", 0.12, 0.45),
    Region("America/Denver", "US", "en_US", 0.05, 0.45),
    Region("America/Los_Angeles", "US", "en_US", 0.15, 0.45),
    Region("Europe/London", "GB", "en_GB", 0.14, 0.35),
    Region("Europe/Berlin", "DE", "de_DE", 0.08, 0.0),
    Region("Europe/Paris", "FR", "fr_FR", 0.06, 0.0),
    Region("Europe/Amsterdam", "NL", "nl_NL", 0.05, 0.0),
    Region("Asia/Kolkata", "IN", "en_IN", 0.05, 0.0),
    Region("Asia/Singapore", "SG", "en_US", 0.04, 0.0),
    Region("Australia/Sydney", "AU", "en_AU", 0.06, 0.0),
    # Smaller markets around the clock, so that at any working-day hour some leads are in their working day.
    Region("Pacific/Honolulu", "US", "en_US", 0.01, 0.0),
    Region("America/Anchorage", "US", "en_US", 0.01, 0.0),
    Region("America/Mexico_City", "MX", "es_MX", 0.03, 0.0),
    Region("America/Halifax", "CA", "en_US", 0.01, 0.0),
    Region("America/Sao_Paulo", "BR", "pt_BR", 0.03, 0.0),
    Region("Atlantic/Azores", "PT", "pt_PT", 0.01, 0.0),
    Region("Europe/Madrid", "ES", "es_ES", 0.03, 0.0),
    Region("Europe/Helsinki", "FI", "fi_FI", 0.02, 0.0),
    Region("Africa/Johannesburg", "ZA", "en_US", 0.02, 0.0),
    Region("Europe/Istanbul", "TR", "tr_TR", 0.02, 0.0),
    Region("Asia/Dubai", "AE", "en_US", 0.02, 0.0),
    Region("Asia/Karachi", "PK", "en_IN", 0.01, 0.0),
    Region("Asia/Dhaka", "BD", "en_IN", 0.01, 0.0),
    Region("Asia/Jakarta", "ID", "id_ID", 0.02, 0.0),
    Region("Asia/Manila", "PH", "en_PH", 0.02, 0.0),
    Region("Asia/Tokyo", "JP", "en_US", 0.02, 0.0),
    Region("Pacific/Auckland", "NZ", "en_NZ", 0.02, 0.0),
    Region("Pacific/Kiritimati", "KI", "en_US", 0.005, 0.0),
)
REGION_BY_ZONE = {region.timezone: region for region in REGIONS}
WORKDAY_START, WORKDAY_END = dt.time(8, 0), dt.time(18, 0)

# (domain, the mailbox providers' hidden view of it): the last one has a poor history REX does not know about.
DOMAINS = (
    ("mail.{slug}.example", 0.97),
    ("go.{slug}.example", 0.96),
    ("team.{slug}.example", 0.95),
    ("hello.{slug}.example", 0.94),
    ("reach.{slug}.example", 0.93),
    ("news.{slug}.example", 0.62),
)
MAILBOXES = ("alex", "sam", "jordan")
# A sender grows its domains with its volume: one set of DOMAINS per this many leads. With a fixed set, a bigger
# run puts more mail through each domain, and one complaint more than chance pauses it under the 0.1% rule.
LEADS_PER_DOMAIN_SET = 2500


def domain_set(slug_: str, leads: int) -> tuple["WorldDomain", ...]:
    """The sending domains of an organization with ``leads`` leads: DOMAINS, repeated with a number (mail2., …)
    for every further LEADS_PER_DOMAIN_SET leads."""
    sets = max(1, math.ceil(leads / LEADS_PER_DOMAIN_SET))
    return tuple(
        WorldDomain(_numbered(pattern, copy).format(slug=slug_), reputation)
        for copy in range(1, sets + 1)
        for pattern, reputation in DOMAINS
    )


def _numbered(pattern: str, copy: int) -> str:
    label, rest = pattern.split(".", 1)
    return pattern if copy == 1 else f"{label}{copy}.{rest}"


@dataclass(frozen=True)
class WorldLead:
    key: int
    first_name: str
    last_name: str
    email: str
    phone: str
    title: str
    seniority: str
    company: str
    industry: str
    industry_group: str
    company_size: int
    size_band: str
    timezone: str
    country: str
    lost_reason: str
    months_since_engaged: float
    # Hidden: only the world knows these.
    receptiveness: float = 1.0
    dead_email: bool = False
    phone_kind: str = ""  # "" | "mobile" | "landline" | "dead"
    complainer: bool = False
    apple_mail: bool = False  # Apple Mail Privacy Protection pre-fetches every pixel (a machine open)
    security_gateway: bool = False  # a gateway that follows every link before delivery (a scanner click)
    one_click_unsubscribe: bool = True  # their mail app shows the RFC 8058 button

    @property
    def seniority_group(self) -> str:
        return SENIORITY_GROUP_OF[self.seniority]

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def lead_row(self, *, now: dt.datetime) -> dict:
        """The CRM export row REX imports (``agents.services.LEAD_FIELDS``): nothing hidden."""
        engaged = now - dt.timedelta(days=self.months_since_engaged * 30.44)
        row = {
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "title": self.title,
            "company": self.company,
            "industry": self.industry,
            "company_size": self.company_size,
            "timezone": self.timezone,
            "lost_reason": self.lost_reason,
            "last_engaged_at": engaged.replace(microsecond=0).isoformat(),
        }
        if self.phone:
            row["phone"] = self.phone
        return row


@dataclass(frozen=True)
class WorldDomain:
    domain: str
    reputation: float  # the providers' starting view; the responder moves it with bounces and complaints
    mailboxes: tuple[str, ...] = MAILBOXES


@dataclass
class World:
    seed: int
    organization_name: str
    postal_address: str
    sender_name: str
    leads: tuple[WorldLead, ...]
    domains: tuple[WorldDomain, ...]
    model: HiddenModel
    by_email: dict[str, WorldLead] = field(default_factory=dict, repr=False)
    by_phone: dict[str, WorldLead] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.by_email = {lead.email: lead for lead in self.leads}
        self.by_phone = {lead.phone: lead for lead in self.leads if lead.phone}

    @classmethod
    def build(cls, *, seed: int, leads: int, timezones: tuple[str, ...] | None = None) -> "World":
        """``leads`` dead leads drawn from ``seed``; ``timezones`` limits the regions they live in."""
        return _Builder(seed=seed, timezones=timezones).world(leads)

    def lead_for(self, address: str) -> WorldLead | None:
        """The lead an email address or E.164 number belongs to (what a mailbox provider or carrier knows)."""
        address = (address or "").strip()
        return self.by_email.get(address.lower()) or self.by_phone.get(address)

    def cohorts(self, weeks: int) -> list[tuple[WorldLead, ...]]:
        """The leads split into ``weeks`` disjoint slices, one per simulated week (REX waits 14 days before
        contacting a lead again, so each week works a fresh part of the backlog)."""
        size = math.ceil(len(self.leads) / weeks)
        return [self.leads[i * size : (i + 1) * size] for i in range(weeks)]

    def domain_reputation(self, domain: str) -> float:
        return next((d.reputation for d in self.domains if d.domain == domain), 1.0)


def open_timezones(*, now: dt.datetime, minutes: float) -> tuple[str, ...]:
    """The world's time zones where it is a working day between 08:00 and 18:00 from ``now`` for ``minutes``
    (REX holds email outside the lead's working hours; a run placed there sends without waiting)."""
    found = []
    for region in REGIONS:
        zone = zoneinfo.ZoneInfo(region.timezone)
        start, end = now.astimezone(zone), (now + dt.timedelta(minutes=minutes)).astimezone(zone)
        working_day = start.date() == end.date() and start.weekday() < 5
        if working_day and WORKDAY_START <= start.time() < end.time() < WORKDAY_END:
            found.append(region.timezone)
    return tuple(found)


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", _ascii(text).lower()).strip("-")


def _pick(rng: random.Random, weights: dict):
    return rng.choices(list(weights), weights=list(weights.values()))[0]


class _Builder:
    """Draws a world in a fixed order from one RNG (and Faker seeded from it), so a seed is reproducible."""

    def __init__(self, *, seed: int, timezones: tuple[str, ...] | None):
        self.seed = seed
        self.rng = random.Random(f"rex-world:{seed}")
        regions = [REGION_BY_ZONE[zone] for zone in timezones] if timezones else list(REGIONS)
        self.regions = regions
        self.fakers = {}
        self.phones = _PhoneBook(self.rng)
        self.emails: set[str] = set()
        self.companies: list[tuple[str, str, str, int, str, Region]] = []

    def faker(self, locale: str) -> Faker:
        if locale not in self.fakers:
            faker = Faker(locale)
            faker.seed_instance(self.rng.randrange(2**32))
            self.fakers[locale] = faker
        return self.fakers[locale]

    def world(self, count: int) -> World:
        org_faker = self.faker("en_US")
        organization = f"{org_faker.last_name()} Revenue Co"
        address = f"{org_faker.street_address()}, {org_faker.city()}, {org_faker.state_abbr()} {org_faker.zipcode()}"
        model = HiddenModel(seed=self.seed)
        leads = tuple(self.lead(key) for key in range(count))
        domains = domain_set(slug(organization), count)
        return World(
            seed=self.seed,
            organization_name=f"{organization} (sim {self.seed})",
            postal_address=address,
            sender_name=org_faker.first_name(),
            leads=leads,
            domains=domains,
            model=model,
        )

    def company(self) -> tuple[str, str, str, int, str, Region]:
        """A new company (60%) or one already drawn: several contacts often share a company."""
        if self.companies and self.rng.random() < 0.4:
            return self.rng.choice(self.companies)
        rng = self.rng
        region = rng.choices(self.regions, weights=[r.weight for r in self.regions])[0]
        group = rng.choice(list(INDUSTRIES))
        industry = rng.choice(INDUSTRIES[group])
        band = _pick(rng, {name: weight for name, (weight, _, _) in SIZE_BANDS.items()})
        _, low, high = SIZE_BANDS[band]
        size = int(math.exp(rng.uniform(math.log(low), math.log(high))))
        name = f"{self.faker(region.locale).last_name()} {rng.choice(COMPANY_SUFFIXES[industry])}"
        company = (name, industry, group, size, band, region)
        self.companies.append(company)
        return company

    def email(self, first: str, last: str, company: str) -> str:
        domain = f"{slug(company)}.example"
        first, last = slug(first).replace("-", ""), slug(last).replace("-", "")
        pattern = self.rng.choice(("{f}.{l}", "{f}", "{f0}{l}", "{f}_{l}"))
        local = pattern.format(f=first or "contact", l=last or "x", f0=(first or "c")[0])
        for n in itertools.count(1):
            address = f"{local}{n if n > 1 else ''}@{domain}"
            if address not in self.emails:
                self.emails.add(address)
                return address
        raise AssertionError("unreachable")

    def lead(self, key: int) -> WorldLead:
        rng = self.rng
        company, industry, group, size, band, region = self.company()
        faker = self.faker(region.locale)
        first, last = faker.first_name(), faker.last_name()
        seniority = _pick(rng, SENIORITY_WEIGHTS)
        phone, phone_kind = "", ""
        if rng.random() < region.phone_share:
            phone, phone_kind = self.phones.number(region)
        return WorldLead(
            key=key,
            first_name=first,
            last_name=last,
            email=self.email(first, last, company),
            phone=phone,
            title=rng.choice(TITLES[seniority]),
            seniority=seniority,
            company=company,
            industry=industry,
            industry_group=group,
            company_size=size,
            size_band=band,
            timezone=region.timezone,
            country=region.country,
            lost_reason=_pick(rng, LOST_REASONS),
            months_since_engaged=round(rng.uniform(3, 30), 1),
            receptiveness=min(2.5, max(0.3, rng.lognormvariate(-0.06, 0.35))),
            dead_email=rng.random() < 0.006,
            phone_kind=phone_kind,
            complainer=rng.random() < 0.01,
            apple_mail=rng.random() < 0.25,
            security_gateway=rng.random() < (0.3 if group in ("finance", "health") or band == "enterprise" else 0.08),
            one_click_unsubscribe=rng.random() < 0.7,
        )


class _PhoneBook:
    """Unique fictional numbers: US ones are mostly mobiles, UK ones are office landlines (no SMS)."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def number(self, region: Region) -> tuple[str, str]:
        for _ in range(1000):
            if region.country == "US":
                area = self.rng.choice(US_AREA_CODES[region.timezone])
                number = f"+1{area}55501{self.rng.randrange(100):02d}"
                kind = "mobile" if self.rng.random() < 0.9 else "dead"
            else:
                number = f"+44{self.rng.choice(UK_PREFIXES)}{self.rng.randrange(1000):03d}"
                kind = "landline"
            if number not in self.used and phonenumbers.is_valid_number(phonenumbers.parse(number)):
                self.used.add(number)
                return number, kind
        return "", ""  # the fictional ranges are used up: this lead has no phone
