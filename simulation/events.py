"""Provider requests for happenings, in each provider's real format.

* SendGrid Event Webhook events (one JSON object each; batched into an array by the responder), with the
  custom args REX sent as top-level keys and ``sg_message_id`` starting with the ``X-Message-Id``;
* Twilio status callbacks and inbound messages (form parameters, signed over the URL Twilio would call);
* inbox-sync messages and generic CRM events (REX's documented JSON, signed with REX's HMAC scheme);
* the RFC 8058 one-click unsubscribe POST a mail app makes, and the unsubscribe page a person clicks through.

Identifiers are derived from the world seed and the message, so answering a message twice posts the same
events again (REX drops the repeats, as it must for any provider's at-least-once delivery).
"""

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from simulation.fate import Happening, Sent
from simulation.world import WorldLead

SENDGRID_PATH = "/webhooks/sendgrid"
TWILIO_PATH = "/webhooks/twilio"
INBOX_PATH = "/inbox/sync"
CRM_MEETINGS_PATH = "/webhooks/crm/meetings"
CRM_DEALS_PATH = "/webhooks/crm/deals"

HUMAN_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
)
# Link scanners: some say who they are, some look like a browser (only their timing gives them away).
SCANNER_AGENTS = (
    "Mozilla/5.0 (compatible; Barracuda Sentinel)",
    "Mimecast-URL-Protect/1.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
)
MACHINE_OPEN_AGENT = "Mozilla/5.0"
BOUNCES = {
    "bounce": {
        "type": "bounce",
        "status": "5.1.1",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "bounce_classification": "Invalid Address",
    },
    "blocked": {
        "type": "blocked",
        "status": "5.7.1",
        "reason": "550 5.7.1 Message rejected due to the sending domain's reputation.",
        "bounce_classification": "Reputation",
    },
}
CRM_EVENTS = {
    "meeting_booked": (CRM_MEETINGS_PATH, "meeting.booked"),
    "meeting_completed": (CRM_MEETINGS_PATH, "meeting.completed"),
    "meeting_no_show": (CRM_MEETINGS_PATH, "meeting.no_show"),
    "opportunity": (CRM_DEALS_PATH, "opportunity.created"),
    "deal_won": (CRM_DEALS_PATH, "deal.won"),
    "deal_lost": (CRM_DEALS_PATH, "deal.lost"),
    "do_not_contact": (CRM_DEALS_PATH, "contact.do_not_contact"),
}
SENDGRID_KINDS = {"processed", "deferred", "delivered", "bounce", "blocked", "open", "machine_open", "click",
                  "scanner_click", "spamreport"}  # fmt: skip
TWILIO_STATUS_KINDS = {"sms_sent": "sent", "sms_delivered": "delivered", "sms_undelivered": "undelivered",
                       "sms_failed": "failed"}  # fmt: skip


@dataclass(frozen=True)
class Request:
    """One thing to post: ``endpoint`` groups requests that may share a batch (SendGrid, inbox, CRM)."""

    endpoint: str  # sendgrid | twilio | inbox | crm_meetings | crm_deals | unsubscribe
    path: str
    payload: object  # a dict (JSON item or form params)
    url: str = ""  # Twilio: the exact URL it signs
    method: str = "POST"


def stable_id(*parts, length: int = 22) -> str:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:length]


def stable_hex(*parts, length: int = 32) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:length]


def when(sent: Sent, happening: Happening) -> dt.datetime:
    return sent.sent_at + dt.timedelta(seconds=happening.at)


# --- SendGrid ------------------------------------------------------------------------------------------------


def sendgrid_event(sent: Sent, happening: Happening, *, seed: int, index: int) -> dict:
    what = happening.what
    event = {
        **{key: str(value) for key, value in sent.custom_args.items()},  # reserved keys below win, as at SendGrid
        "email": sent.to,
        "timestamp": int(when(sent, happening).timestamp()),
        "event": {"machine_open": "open", "scanner_click": "click", "blocked": "bounce"}.get(what, what),
        "smtp-id": sent.rfc_message_id or f"<{sent.provider_message_id}@ismtpd0001p1mdw1.sendgrid.net>",
        "sg_event_id": stable_id(seed, sent.message_id, index, what),
        "sg_message_id": f"{sent.provider_message_id}.filterdrecv-{stable_hex(seed, sent.message_id, length=8)}-1-0",
    }
    if sent.categories:
        event["category"] = list(sent.categories)
    event.update(_sendgrid_fields(sent, what, index))
    return event


def _sendgrid_fields(sent: Sent, what: str, index: int) -> dict:
    ip = f"149.72.{index % 200 + 1}.{(sent.message_id * 7) % 250 + 1}"
    if what == "delivered":
        return {"response": "250 2.0.0 OK  accepted for delivery", "ip": ip, "tls": 1}
    if what == "deferred":
        return {"response": "451 4.7.1 Please try again later (greylisted)", "attempt": "1", "ip": ip}
    if what in BOUNCES:
        return {**BOUNCES[what], "ip": ip}
    if what == "open":
        agent = HUMAN_AGENTS[(sent.message_id + index) % len(HUMAN_AGENTS)]
        return {"useragent": agent, "ip": f"66.102.{index % 250}.{sent.message_id % 250}", "sg_machine_open": False}
    if what == "machine_open":
        return {"useragent": MACHINE_OPEN_AGENT, "ip": "17.58.101.20", "sg_machine_open": True}
    if what in ("click", "scanner_click"):
        agents = SCANNER_AGENTS if what == "scanner_click" else HUMAN_AGENTS
        return {
            "url": sent.unsubscribe_url or "",
            "url_offset": {"index": 0, "type": "text"},
            "useragent": agents[sent.message_id % len(agents)],
            "ip": f"52.{index % 250}.{sent.message_id % 250}.9",
        }
    return {}


# --- Twilio --------------------------------------------------------------------------------------------------


def twilio_status(sent: Sent, happening: Happening, *, account_sid: str) -> Request:
    """A status callback to the StatusCallback URL REX gave in the request (signed over exactly that URL)."""
    status = TWILIO_STATUS_KINDS[happening.what]
    params = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "From": sent.from_address,
        "To": sent.to,
        "MessageSid": sent.provider_message_id,
        "SmsSid": sent.provider_message_id,
        "MessageStatus": status,
        "SmsStatus": status,
    }
    if happening.detail.get("error_code"):
        params["ErrorCode"] = str(happening.detail["error_code"])
    return Request("twilio", _path(sent.status_callback), params, url=sent.status_callback)


def twilio_inbound(sent: Sent, happening: Happening, *, account_sid: str, url: str, seed: int) -> Request:
    """An inbound SMS from the lead to the number REX texted from, at the number's messaging webhook."""
    reply = happening.detail["reply"]
    sid = "SM" + stable_hex(seed, sent.message_id, "inbound", happening.at)
    params = {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": reply.text,
        "FromCountry": "US" if sent.to.startswith("+1") else "GB",
        "To": sent.from_address,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": sent.to,
        "ApiVersion": "2010-04-01",
    }
    if reply.kind == "stop":  # Advanced Opt-Out names the keyword it matched
        params["OptOutType"] = "STOP"
    return Request("twilio", _path(url), params, url=url)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- Inbox, CRM, unsubscribe ---------------------------------------------------------------------------------


def inbox_message(sent: Sent, happening: Happening, *, lead: WorldLead, seed: int) -> dict:
    reply = happening.detail["reply"]
    domain = lead.email.rsplit("@", 1)[-1]
    message = {
        "message_id": f"<{stable_hex(seed, sent.message_id, happening.what, happening.at, length=24)}@{domain}>",
        "from": f"{lead.first_name} {lead.last_name} <{lead.email}>",
        "to": sent.from_address,
        "subject": reply.subject,
        "text": reply.text,
        "in_reply_to": sent.rfc_message_id,
        "references": sent.rfc_message_id,
        "date": when(sent, happening).isoformat(),
    }
    if reply.headers:
        message["headers"] = dict(reply.headers)
    return message


def crm_event(sent: Sent, happening: Happening, *, lead: WorldLead, seed: int) -> Request:
    """A generic-format CRM event. The CRM knows the contact (REX's lead id, synced on import, and the email),
    not REX's outcome rows, so ``outcome_id`` is never sent."""
    path, name = CRM_EVENTS[happening.what]
    at = when(sent, happening)
    event = {
        "event_id": f"crm-{stable_hex(seed, sent.message_id, happening.what, length=20)}",
        "event": name,
        "occurred_at": at.isoformat(),
        "lead_id": sent.lead_id,
        "email": lead.email,
    }
    if happening.what.startswith("meeting_"):
        starts = sent.sent_at + dt.timedelta(seconds=happening.detail.get("starts", happening.at))
        event["meeting"] = {"id": f"mtg-{seed}-{sent.message_id}", "starts_at": starts.isoformat()}
    elif happening.what in ("opportunity", "deal_won", "deal_lost"):
        deal = {"id": f"deal-{seed}-{sent.message_id}", "currency": "USD"}
        if "value" in happening.detail:
            deal["value"] = happening.detail["value"]
        if happening.what != "opportunity":
            deal["closed_at"] = at.isoformat()
        event["deal"] = deal
    return Request("crm_" + path.rsplit("/", 1)[-1], path, event)


def unsubscribe_requests(sent: Sent, happening: Happening) -> list[Request]:
    """The one-click POST (RFC 8058 body) or a visit to the page and a press of its button."""
    path = _path(sent.unsubscribe_url)
    if not path:
        return []
    if happening.what == "unsubscribe_one_click":
        return [Request("unsubscribe", path, {"List-Unsubscribe": "One-Click"})]
    return [Request("unsubscribe", path, {}, method="GET"), Request("unsubscribe", path, {})]
