"""The world answering REX: it reads what REX sent through the sandbox providers (the exact request each
provider would have received, kept on ``Message.provider_request``), decides each message's fate from the
hidden propensities, and posts the providers' webhooks to REX's real HTTP endpoints, signed.

Time is compressed: the responder keeps a simulated clock. ``collect()`` schedules every happening of every
new message at its simulated delay from now; ``advance(seconds)`` moves the clock and posts what fell due,
oldest first, batched the way the providers batch (SendGrid up to 500 events a request, the inbox connector
and the CRM up to 50 items, Twilio one request per callback). Event timestamps are the real send time plus the
simulated delay, so REX sees realistic gaps (a person opens minutes or hours after delivery, never within the
5 s REX counts as a machine) even though the whole week is posted in seconds; deals that close weeks later
are posted in a later simulated week, as late labels.

A request REX answers 5xx (or that cannot connect) is retried on the next ``advance``, as providers retry;
any other non-2xx is counted and kept in ``errors`` (a signature or format mismatch is a bug to see).
"""

import heapq
import itertools
import json
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlencode

import requests

from simulation import events
from simulation.events import Request
from simulation.fate import Fate, Happening, Sent, sample
from simulation.signing import Credentials, rex_headers, sendgrid_headers, twilio_headers
from simulation.world import World

logger = logging.getLogger("rex.simulation")

HOUR = 3600.0
BATCH_LIMITS = {"sendgrid": 500, "inbox": 50, "crm_meetings": 50, "crm_deals": 50}
ENDPOINT_ORDER = ("sendgrid", "twilio", "inbox", "unsubscribe", "crm_meetings", "crm_deals")
SANDBOX_PROVIDERS = ("sandbox-email", "sandbox-sms")
MIN_SENDS_FOR_VIEW = 30


class Transport(Protocol):
    def send(self, *, method: str, path: str, body: bytes, headers: dict[str, str]) -> int: ...


class HttpTransport:
    """Posts over HTTP to REX's server (loopback in the demo)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def send(self, *, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            response = self.session.request(
                method, self.base_url + path, data=body or None, headers=headers, timeout=self.timeout
            )
        except requests.RequestException as exc:
            logger.warning("world → REX %s %s failed: %s", method, path, exc)
            return 599  # like a provider that got no answer: retried later
        return response.status_code


@dataclass
class Scheduled:
    due: float  # on the responder's simulated clock
    sent: Sent
    happening: Happening
    index: int  # position in the message's fate (stable event ids)


@dataclass
class DomainView:
    """The mailbox providers' running view of one sending domain: bad bounces and complaints cost reputation."""

    base: float
    sends: int = 0
    bounces: int = 0
    complaints: int = 0

    @property
    def reputation(self) -> float:
        if self.sends < MIN_SENDS_FOR_VIEW:
            return self.base
        penalty = 3.0 * self.bounces / self.sends + 30.0 * self.complaints / self.sends
        return min(1.0, max(0.2, self.base - penalty))


@dataclass
class Responder:
    world: World
    credentials: Credentials
    transport: Transport
    organization_id: int
    public_base_url: str  # where the world's Twilio number sends inbound SMS: PUBLIC_BASE_URL/webhooks/twilio
    clock: float = 0.0
    fates: dict[int, Fate | None] = field(default_factory=dict)  # None: a recipient this world does not have
    labels: dict[int, object] = field(default_factory=dict)  # message id → the week (or any tag) it was sent in
    stats: Counter = field(default_factory=Counter)
    errors: list[dict] = field(default_factory=list)
    queue: list = field(default_factory=list)
    retry: list[tuple[Request, list]] = field(default_factory=list)
    domains: dict[str, DomainView] = field(default_factory=dict)
    opted_out: set[str] = field(default_factory=set)
    _seq: itertools.count = field(default_factory=itertools.count)
    _per_address: Counter = field(default_factory=Counter)

    def __post_init__(self):
        self.domains = {d.domain: DomainView(d.reputation) for d in self.world.domains}

    # --- reading REX's outbox -------------------------------------------------------------------------------

    def collect(self, *, label: object = None) -> int:
        """Decide the fate of every message sent since the last call; returns how many were new."""
        from agents.models import Message  # the world reads REX's outbox only here

        sent = Message.objects.filter(
            organization_id=self.organization_id, status=Message.Status.SENT, provider__in=SANDBOX_PROVIDERS
        )
        new_ids = sorted(set(sent.values_list("pk", flat=True)) - set(self.fates))
        count = 0
        for start in range(0, len(new_ids), 500):
            chunk = sent.filter(pk__in=new_ids[start : start + 500]).select_related("sending_domain")
            for message in sorted(chunk, key=lambda m: (m.sent_at, m.pk)):
                count += self._schedule(sent_from_message(message), label)
        return count

    def _schedule(self, sent: Sent, label: object) -> int:
        lead = self.world.lead_for(sent.to)
        if lead is None:  # nobody in this world has that address: nothing will ever answer
            self.stats["unknown_recipient"] += 1
            self.fates[sent.message_id] = None
            return 0
        n = self._per_address[sent.to]
        self._per_address[sent.to] += 1
        rng = random.Random(f"{self.world.seed}|{sent.to}|{n}")
        view = self.domains.get(sent.sending_domain)
        fate = sample(
            sent, lead, self.world.model, rng=rng, domain_reputation=view.reputation if view else 1.0,
            opted_out=sent.channel == "sms" and sent.to in self.opted_out,
        )  # fmt: skip
        if view is not None:
            view.sends += 1
            view.bounces += fate.truth.get("bounced") in ("bounce", "blocked")
            view.complaints += bool(fate.truth.get("complaint"))
        if fate.truth.get("stop"):
            self.opted_out.add(sent.to)
        self.fates[sent.message_id] = fate
        self.labels[sent.message_id] = label
        for index, happening in enumerate(fate.happenings):
            heapq.heappush(self.queue, (self.clock + happening.at, next(self._seq), Scheduled(
                self.clock + happening.at, sent, happening, index)))  # fmt: skip
        self.stats["messages"] += 1
        return 1

    # --- answering ------------------------------------------------------------------------------------------

    def advance(self, seconds: float, *, bucket: float = HOUR) -> int:
        """Move the simulated clock and post everything due, one ``bucket`` of simulated time at a time.
        Returns the number of HTTP requests made."""
        target = self.clock + seconds
        posted = self._post_retries()
        while self.queue and self.queue[0][0] <= target:
            edge = self.queue[0][0] + bucket
            due = []
            while self.queue and self.queue[0][0] <= min(edge, target):
                due.append(heapq.heappop(self.queue)[2])
            posted += self._post(self._requests(due))
        self.clock = target
        return posted

    def drain(self) -> int:
        """Post everything still scheduled (the end of the run: every late deal closes now)."""
        last = max((item[0] for item in self.queue), default=self.clock)
        return self.advance(max(0.0, last - self.clock))

    def pending(self) -> int:
        return len(self.queue) + len(self.retry)

    def _requests(self, due: Iterable[Scheduled]) -> list[Request]:
        made = []
        for item in due:
            sent, happening = item.sent, item.happening
            self.stats[f"event.{happening.what}"] += 1
            made += self._requests_for(item, sent, happening)
        return made

    def _requests_for(self, item: Scheduled, sent: Sent, happening: Happening) -> list[Request]:
        what, seed = happening.what, self.world.seed
        if what in events.SENDGRID_KINDS:
            event = events.sendgrid_event(sent, happening, seed=seed, index=item.index)
            return [Request("sendgrid", events.SENDGRID_PATH, event)]
        if what in events.TWILIO_STATUS_KINDS:
            return [events.twilio_status(sent, happening, account_sid=self.credentials.twilio_account_sid)]
        if what == "sms_reply":
            url = f"{self.public_base_url.rstrip('/')}{events.TWILIO_PATH}"
            account = self.credentials.twilio_account_sid
            return [events.twilio_inbound(sent, happening, account_sid=account, url=url, seed=seed)]
        lead = self.world.lead_for(sent.to)
        if what in ("reply", "out_of_office"):
            return [Request("inbox", events.INBOX_PATH, events.inbox_message(sent, happening, lead=lead, seed=seed))]
        if what in events.CRM_EVENTS:
            return [events.crm_event(sent, happening, lead=lead, seed=seed)]
        if what.startswith("unsubscribe_"):
            return events.unsubscribe_requests(sent, happening)
        raise ValueError(f"no request for happening {what!r}")

    def _post(self, made: list[Request]) -> int:
        grouped: dict[str, list[Request]] = defaultdict(list)
        for request in made:
            grouped[request.endpoint].append(request)
        posted = 0
        for endpoint in ENDPOINT_ORDER:
            batch_limit = BATCH_LIMITS.get(endpoint)
            items = grouped.get(endpoint, [])
            if batch_limit is None:
                for request in items:
                    posted += self._deliver([request], self._single(request))
                continue
            for start in range(0, len(items), batch_limit):
                batch = items[start : start + batch_limit]
                posted += self._deliver(batch, self._batch(endpoint, batch))
        return posted

    def _post_retries(self) -> int:
        pending, self.retry = self.retry, []
        return sum(self._deliver(batch, attempt) for batch, attempt in pending)

    def _deliver(self, batch: list[Request], attempt: Callable[[], int]) -> int:
        status = attempt()
        endpoint = batch[0].endpoint
        self.stats[f"post.{endpoint}"] += 1
        if 200 <= status < 300:
            self.stats[f"post.{endpoint}.ok"] += 1
            return 1
        if status >= 500 or status == 429:
            self.stats[f"post.{endpoint}.retry"] += 1
            self.retry.append((batch, attempt))
            return 1
        self.stats[f"post.{endpoint}.rejected"] += 1
        if len(self.errors) < 50:
            self.errors.append({"endpoint": endpoint, "status": status, "path": batch[0].path})
        return 1

    # --- signing each provider's way ------------------------------------------------------------------------

    def _batch(self, endpoint: str, batch: list[Request]) -> Callable[[], int]:
        items = [request.payload for request in batch]
        if endpoint == "sendgrid":
            # SendGrid's body: compact JSON and a CRLF, signed as sent.
            body = json.dumps(items, separators=(",", ":")) + "\r\n"
            key = self.credentials.sendgrid_key

            def attempt() -> int:
                headers = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API"}
                headers.update(sendgrid_headers(key=key, body=body, timestamp=int(time.time())))
                return self.transport.send(method="POST", path=batch[0].path, body=body.encode(), headers=headers)

            return attempt
        payload = {"messages": items} if endpoint == "inbox" else items
        secret = self.credentials.inbox_secret if endpoint == "inbox" else self.credentials.crm_secret
        raw = json.dumps(payload).encode()

        def attempt() -> int:
            headers = {"Content-Type": "application/json"}
            headers.update(rex_headers(secret=secret, body=raw, timestamp=int(time.time())))
            return self.transport.send(method="POST", path=batch[0].path, body=raw, headers=headers)

        return attempt

    def _single(self, request: Request) -> Callable[[], int]:
        params = {key: str(value) for key, value in request.payload.items()}
        body = urlencode(params).encode() if request.method == "POST" else b""
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if request.method == "POST" else {}
        if request.endpoint == "twilio":
            token = self.credentials.twilio_auth_token
            headers.update(twilio_headers(auth_token=token, url=request.url, params=params))
            headers["User-Agent"] = "TwilioProxy/1.1"
        return lambda: self.transport.send(method=request.method, path=request.path, body=body, headers=headers)


# --- Message → Sent --------------------------------------------------------------------------------------------


def _bracketless(value: str) -> str:
    return (value or "").strip().removeprefix("<").removesuffix(">")


def sent_from_message(message) -> Sent:
    """What the provider got: the recipient, sender, content and REX's custom args from the kept request."""
    request = message.provider_request or {}
    common = {
        "message_id": message.pk,
        "lead_id": message.lead_id,
        "channel": message.channel,
        "framework": message.framework,
        "tone": message.tone,
        "provider_message_id": message.provider_message_id,
        "sent_at": message.sent_at,
    }
    if message.channel == "sms":
        return Sent(
            **common, to=request.get("To", message.to_address), from_address=request.get("From", ""), subject="",
            body=request.get("Body", ""), rfc_message_id="", status_callback=request.get("StatusCallback", ""),
        )  # fmt: skip
    personalization = (request.get("personalizations") or [{}])[0]
    to = ((personalization.get("to") or [{}])[0]).get("email", message.to_address)
    headers = request.get("headers") or {}
    content = next((c["value"] for c in request.get("content", []) if c.get("type") == "text/plain"), "")
    sender = (request.get("from") or {}).get("email", message.from_address)
    return Sent(
        **common,
        to=to.lower(),
        from_address=sender,
        subject=request.get("subject", ""),
        body=content,
        rfc_message_id=headers.get("Message-ID", message.rfc_message_id),
        sending_domain=message.sending_domain.domain if message.sending_domain_id else sender.rsplit("@", 1)[-1],
        custom_args={**(personalization.get("custom_args") or {}), **(request.get("custom_args") or {})},
        categories=tuple(request.get("categories") or ()),
        unsubscribe_url=_bracketless(headers.get("List-Unsubscribe", "").split(",")[0]),
    )
