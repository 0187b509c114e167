"""Inbox sync (``POST /inbox/sync``): inbound emails from a mailbox integration become replies on outcomes.

The body is a contract shared with the integrations (and the simulated world)::

    {"messages": [{"message_id", "from", "text", "to", "subject", "html", "in_reply_to", "references",
                   "date", "headers"}, ...]}   (or one message object on its own)

Each email is stored as one WebhookEvent keyed by its Message-ID (a repeat is ignored), then processed in Celery:
matched to the sent message by In-Reply-To/References, else by the sender's address; delivery-failure notices and
auto-replies are not counted; the new text (quoted history and signature stripped) goes to ``reply_record``.
This module must not import ``webhooks.services`` (services imports it for its PROCESSORS table).
"""

import json
import re
from datetime import UTC, datetime
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html import unescape

from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils.html import strip_tags
from mailparser_reply.parser import EmailMessage

from agents.models import Message
from outcomes.models import OutcomeLabel
from outcomes.replies import reply_record
from webhooks.auto_reply import is_auto_reply
from webhooks.common import MalformedPayload, kept_headers, mark
from webhooks.models import WebhookEvent

EVENT_TYPE = "inbound"
# Reply headers ("On … wrote:", "Am … schrieb …:", "Le … a écrit :", Outlook's From:/Sent: block) and sign-offs.
REPLY_LANGUAGES = ("en", "de", "fr", "es", "it", "nl")
DAEMON_SENDERS = {"mailer-daemon", "postmaster"}
MAX_THREAD_IDS = 100  # References of a long thread: the newest ids are the ones that can match
ADDRESS_CANDIDATES = 20
OPTIONAL_STRINGS = ("subject", "html", "in_reply_to", "date")
STRINGS_OR_LISTS = ("to", "references")
ANGLE_IDS_RE = re.compile(r"<([^<>\s]+)>")
# "El lun, 6 oct 2025 a las 9:14, Sam (<sam@x.com>) escribió:" above a quoted block the parser did not recognise.
ATTRIBUTION_RE = re.compile(r".*[@\d].*:\s*$")


# --- Parse ----------------------------------------------------------------------------------------


def _bad(index: int, field: str, problem: str) -> MalformedPayload:
    return MalformedPayload(f"Message {index}: '{field}' {problem}.")


def rfc_id_normalize(value: str) -> str:
    """A Message-ID without its angle brackets and surrounding whitespace."""
    return value.strip().strip("<>").strip()


def inbox_date_parse(value: str) -> datetime:
    """RFC 2822 (``Mon, 6 Oct 2025 09:14:00 +0200``) or ISO 8601; no zone means UTC. Raises ValueError."""
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# The address in angle brackets of a From header parseaddr gives up on (an unquoted comma in the name:
# "Ann Lee, PhD <ann@acme.io>" is not RFC 5322, and mail clients still send it).
_BRACKETED_ADDRESS = re.compile(r"<\s*([^<>\s@]+@[^<>\s@]+)\s*>")


def address_of(value: str) -> str:
    """The email address of a From value, also when its display name is malformed; "" when there is none."""
    address = parseaddr(value)[1].strip()
    if "@" in address:
        return address
    bracketed = _BRACKETED_ADDRESS.findall(value)
    return bracketed[-1] if bracketed else ""


def _is_string_list(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value))


def _check_required(message: dict, index: int) -> None:
    message_id = message.get("message_id")
    if not isinstance(message_id, str) or not rfc_id_normalize(message_id):
        raise _bad(index, "message_id", "is required")
    if len(rfc_id_normalize(message_id)) > 253:
        raise _bad(index, "message_id", "is longer than 253 characters")
    sender = message.get("from")
    if not isinstance(sender, str) or not sender.strip():
        raise _bad(index, "from", "is required")
    if "@" not in address_of(sender):
        raise _bad(index, "from", "is not an email address")
    if not isinstance(message.get("text"), str):
        raise _bad(index, "text", "is required (a string, may be empty)")


def _check_optional(message: dict, index: int) -> None:
    for field in OPTIONAL_STRINGS:
        if message.get(field) is not None and not isinstance(message[field], str):
            raise _bad(index, field, "is not a string")
    for field in STRINGS_OR_LISTS:
        if message.get(field) is not None and not _is_string_list(message[field]):
            raise _bad(index, field, "is not a string or a list of strings")
    headers = message.get("headers")
    if headers is not None and not (isinstance(headers, dict) and all(map(_is_string_list, headers.values()))):
        raise _bad(index, "headers", "is not an object of string values")
    if message.get("date"):
        try:
            inbox_date_parse(message["date"])
        except (ValueError, OverflowError):
            raise _bad(index, "date", "is not an RFC 2822 or ISO 8601 date") from None


def inbox_messages_parse(*, raw_body: bytes) -> list[dict]:
    """The batch (or single message) as a list; the whole batch is checked before anything is stored."""
    try:
        body = json.loads(raw_body)
    except ValueError as exc:
        raise MalformedPayload(f"Body is not JSON: {exc}") from None
    except RecursionError:
        raise MalformedPayload("Body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise MalformedPayload('Body is not a JSON object (a message, or {"messages": [...]}).')
    messages = body.get("messages", [body])
    if not isinstance(messages, list):
        raise MalformedPayload("'messages' is not a list.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise MalformedPayload(f"Message {index} is not an object.")
        _check_required(message, index)
        _check_optional(message, index)
    return messages


# --- Store ----------------------------------------------------------------------------------------


def inbox_messages_store(*, messages: list[dict], headers: dict, signature: str) -> list[int]:
    """One WebhookEvent per email, keyed by ``<Message-ID>`` (a repeat is ignored). Returns the ids of new rows."""
    kept = kept_headers(headers)
    provider = WebhookEvent.Provider.INBOX
    rows = {}
    for message in messages:
        event_id = f"<{rfc_id_normalize(message['message_id'])}>"
        rows[event_id] = WebhookEvent(
            provider=provider,
            provider_event_id=event_id,
            event_type=EVENT_TYPE,
            raw_body=json.dumps(message),
            headers=kept,
            signature=signature,
        )
    existing = set(
        WebhookEvent.objects.filter(provider=provider, provider_event_id__in=rows).values_list(
            "provider_event_id", flat=True
        )
    )
    WebhookEvent.objects.bulk_create(rows.values(), ignore_conflicts=True)
    new = WebhookEvent.objects.filter(
        provider=provider, provider_event_id__in=set(rows) - existing, state=WebhookEvent.State.RECEIVED
    )
    return list(new.order_by("id").values_list("id", flat=True))


# --- Match ----------------------------------------------------------------------------------------


def _ids(value) -> list[str]:
    if isinstance(value, list):
        return [found for item in value for found in _ids(item)]
    text = str(value or "")
    return ANGLE_IDS_RE.findall(text) or [rfc_id_normalize(part) for part in text.split() if rfc_id_normalize(part)]


def thread_ids(payload: dict) -> list[str]:
    """In-Reply-To, then References newest first (a References header lists the oldest first), deduplicated."""
    ordered = _ids(payload.get("in_reply_to")) + _ids(payload.get("references"))[::-1]
    return list(dict.fromkeys(ordered))[:MAX_THREAD_IDS]


def _outcomes():
    return OutcomeLabel.objects.select_related("organization", "message", "lead")


def _thread_outcome(ids: list[str]) -> OutcomeLabel | None:
    if not ids:
        return None
    stored_forms = [f"<{rfc_id}>" for rfc_id in ids] + ids
    rows = _outcomes().filter(message__rfc_message_id__in=stored_forms)
    found = {rfc_id_normalize(row.message.rfc_message_id): row for row in rows}
    return next((found[rfc_id] for rfc_id in ids if rfc_id in found), None)


def _address_outcome(sender: str, recipients: set[str]) -> OutcomeLabel | None:
    """The most recent sent email to the sender; one sent from the mailbox the reply went to wins (the same
    address may be a lead in two organizations)."""
    rows = list(
        _outcomes()
        .filter(message__channel=Message.Channel.EMAIL, message__status=Message.Status.SENT)
        .filter(message__to_address__iexact=sender)
        .order_by(F("message__sent_at").desc(nulls_last=True), "-message_id")[:ADDRESS_CANDIDATES]
    )
    ours = [row for row in rows if row.message.from_address.lower() in recipients]
    return (ours or rows or [None])[0]


def _sender(payload: dict) -> str:
    return address_of(str(payload.get("from") or "")).lower()


def _recipients(payload: dict) -> set[str]:
    to = payload.get("to") or []
    return {address.lower() for _, address in getaddresses(to if isinstance(to, list) else [to]) if address}


def inbox_outcome_match(*, payload: dict) -> OutcomeLabel | None:
    """The outcome of the sent message this email answers: by thread ids, else by the sender's address."""
    return _thread_outcome(thread_ids(payload)) or _address_outcome(_sender(payload), _recipients(payload))


# --- Process --------------------------------------------------------------------------------------


def _html_text(html: str) -> str:
    html = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>|<blockquote\b.*</blockquote\s*>", "", html)
    html = re.sub(r"(?i)<br\s*/?>|</(?:p|div|li|tr|h\d)\s*>", "\n", html)
    return unescape(strip_tags(html))


def _without_quoted_lines(text: str) -> str:
    """Drop ``>`` lines the parser left (an attribution it does not know, a bottom-posted reply) and the
    attribution line right above the first quoted block."""
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.lstrip().startswith(">")), None)
    if first is None:
        return text.strip()
    before = lines[:first]
    while before and not before[-1].strip():
        before.pop()
    if before and ATTRIBUTION_RE.match(before[-1]):
        before.pop()
    kept = before + [line for line in lines[first:] if not line.lstrip().startswith(">")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def reply_text_clean(*, text: str) -> str:
    """The newly written part of a reply: quoted history, reply headers, sign-off and signature removed."""
    parsed = EmailMessage(text=text.strip(), languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True).read()
    latest = parsed.replies[0].body if parsed.replies else ""
    return _without_quoted_lines(latest)


def _reply_time(payload: dict, event: WebhookEvent) -> datetime:
    """The email's Date, never later than its arrival (a skewed sender clock cannot reply in the future)."""
    if not payload.get("date"):
        return event.received_at
    return min(inbox_date_parse(payload["date"]), event.received_at)


def _record(event: WebhookEvent, outcome: OutcomeLabel, payload: dict, text: str) -> None:
    try:
        reply_record(outcome=outcome, at=_reply_time(payload, event), text=reply_text_clean(text=text))
    except (ValueError, ValidationError) as exc:  # bad data does not get better on retry
        mark(event, WebhookEvent.State.FAILED, str(exc))
        return
    mark(event, WebhookEvent.State.PROCESSED)


def _subject_and_text(payload: dict, outcome: OutcomeLabel) -> tuple[str, str]:
    """The subject without the original's (a human "Re:" of a subject that says "vacation" is no auto-reply) and
    the plain text (from the HTML part when the integration sent no text)."""
    subject = str(payload.get("subject") or "")
    if outcome.message.subject:
        subject = subject.replace(outcome.message.subject, "")
    text = payload.get("text") or ""
    if not text.strip() and payload.get("html"):
        text = _html_text(payload["html"])
    return subject, text


def inbox_process(event: WebhookEvent) -> None:
    """Apply one stored inbound email (called by ``webhook_event_process`` inside its transaction)."""
    payload = json.loads(event.raw_body)
    outcome = inbox_outcome_match(payload=payload)
    if outcome is not None:
        event.organization = outcome.organization
    sender = _sender(payload)
    if sender.split("@", 1)[0] in DAEMON_SENDERS:
        mark(event, WebhookEvent.State.IGNORED, f"Delivery-failure notice from {sender}: not a reply.")
        return
    if outcome is None:
        # Kept, not dropped: the sweep retries it once the sent message is recorded.
        mark(event, WebhookEvent.State.UNMATCHED, "No sent message matches this email yet.")
        return
    subject, text = _subject_and_text(payload, outcome)
    if is_auto_reply(subject=subject, text=text, headers=payload.get("headers")):
        mark(event, WebhookEvent.State.PROCESSED, "auto-reply: not counted")
        return
    _record(event, outcome, payload, text)
