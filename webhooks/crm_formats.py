"""The four CRM webhook formats: how each request splits into stored events, and what each stored event means
for REX (a ``CrmAction``: what to record, when, and how to find the outcome it belongs to).

Parsing at receive time is strict (a malformed request is answered 400 and nothing is stored); reading a stored
event is lenient about the CRM's optional fields (an odd amount or id is left out rather than failing the event).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from webhooks.common import MalformedPayload

DEALS = "deals"
MEETINGS = "meetings"
DNC = "contact.do_not_contact"
# The generic format's event names and what each records (see CrmAction.kind).
GENERIC_KINDS = {
    "opportunity.created": "opportunity",
    "deal.won": "won",
    "deal.lost": "lost",
    "meeting.booked": "booked",
    "meeting.completed": "completed",
    "meeting.no_show": "no_show",
    DNC: "dnc",
}
ENDPOINT_EVENTS = {
    DEALS: ("opportunity.created", "deal.won", "deal.lost", DNC),
    MEETINGS: ("meeting.booked", "meeting.completed", "meeting.no_show", DNC),
}
MAX_EVENT_ID = 255
MAX_ID = 2**63 - 1
MAX_DEAL_VALUE = Decimal("999999999999.99")  # OutcomeLabel.deal_value: 14 digits, 2 decimals
TRUE_WORDS = {"true", "yes", "1", "y"}

XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


@dataclass(frozen=True)
class Incoming:
    """One event of a request as it is stored: its dedupe key, its type and its JSON body."""

    provider_event_id: str
    event_type: str
    payload: dict


@dataclass(frozen=True)
class CrmLink:
    """What a CRM event says about whom it concerns; ``subject`` names the CRM object in an unmatched error."""

    outcome_id: int | None = None
    lead_id: int | None = None
    email: str = ""
    subject: str = ""


@dataclass(frozen=True)
class CrmAction:
    """``kind``: opportunity, won, lost, booked, completed, no_show, dnc, or "" when there is nothing to record
    (``reason`` says why). ``at`` None means "when REX received it"."""

    kind: str
    link: CrmLink
    at: datetime | None = None
    value: Decimal | None = None
    reason: str = ""


# --- Values ---------------------------------------------------------------------------------------


def _empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def crm_time(value, *, unit: int = 1) -> datetime | None:
    """An ISO 8601 string (naive = UTC; a bare date is midnight) or a Unix time (seconds, or ``unit`` per second)."""
    if _empty(value):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / unit, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{value!r} is not a Unix time.") from None
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an ISO 8601 time or a Unix time.")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 time.") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def crm_money(value) -> Decimal | None:
    """A deal amount (number or numeric string) as a 2-decimal Decimal."""
    if _empty(value):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"{value!r} is not an amount.")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an amount.") from None
    if not amount.is_finite() or not 0 <= amount <= MAX_DEAL_VALUE:
        raise ValueError(f"{value!r} is not an amount between 0 and {MAX_DEAL_VALUE}.")
    return amount.quantize(Decimal("0.01"))


def crm_id(value) -> int | None:
    """A positive REX id: an integer, or its digits as a string (Salesforce renders numbers as ``"42.0"``)."""
    if _empty(value):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not an id.")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not an id.") from None
    if not number.is_finite() or number != number.to_integral_value() or not 0 < number <= MAX_ID:
        raise ValueError(f"{value!r} is not a positive integer id.")
    return int(number)


def crm_email(value) -> str:
    if _empty(value):
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not an email address.")
    try:
        validate_email(value.strip())
    except ValidationError:
        raise ValueError(f"{value!r} is not an email address.") from None
    return value.strip()


def _lenient(parse: Callable, value):
    """A stored CRM field REX only uses when it reads: an unusable one counts as absent."""
    try:
        return parse(value)
    except ValueError:
        return "" if parse is crm_email else None


def _truthy(value) -> bool:
    return value is True or (isinstance(value, str | int) and str(value).strip().lower() in TRUE_WORDS)


def _rex_link(fields: dict, *, subject: str, email: str = "") -> CrmLink:
    """REX's own ids when the CRM carries them (``rex_outcome_id`` / ``rex_lead_id``), and the contact email."""
    return CrmLink(
        outcome_id=_lenient(crm_id, fields.get("rex_outcome_id")),
        lead_id=_lenient(crm_id, fields.get("rex_lead_id")),
        email=email or _lenient(crm_email, fields.get("email")),
        subject=subject,
    )


# --- Generic JSON (REX's contract, HMAC-signed) -------------------------------------------------------


def _field(index: int, name: str, parse: Callable, value):
    try:
        return parse(value)
    except ValueError as exc:
        raise MalformedPayload(f"Event {index}: '{name}': {exc}") from None


def _nested(event: dict, index: int, name: str, fields: dict[str, Callable]) -> None:
    part = event.get(name)
    if part is None:
        return
    if not isinstance(part, dict):
        raise MalformedPayload(f"Event {index}: '{name}' must be an object.")
    for key, parse in fields.items():
        _field(index, f"{name}.{key}", parse, part.get(key))


def _text(value) -> str:
    if _empty(value):
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{value!r} is not a string.")
    return str(value)


GENERIC_LINK_FIELDS: dict[str, Callable] = {"outcome_id": crm_id, "lead_id": crm_id, "email": crm_email}


def _generic_event(event, index: int, allowed: tuple[str, ...]) -> Incoming:
    if not isinstance(event, dict):
        raise MalformedPayload(f"Event {index} is not an object.")
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise MalformedPayload(f"Event {index}: 'event_id' is required (a non-empty string).")
    if len(event_id) > MAX_EVENT_ID:
        raise MalformedPayload(f"Event {index}: 'event_id' is longer than {MAX_EVENT_ID} characters.")
    name = event.get("event")
    if name not in allowed:
        raise MalformedPayload(f"Event {index}: 'event' must be one of {', '.join(allowed)} here (got {name!r}).")
    _field(index, "occurred_at", crm_time, event.get("occurred_at"))
    link = [_field(index, key, parse, event.get(key)) for key, parse in GENERIC_LINK_FIELDS.items()]
    if not any(link):
        raise MalformedPayload(f"Event {index}: one of 'outcome_id', 'lead_id' or 'email' is required.")
    _nested(event, index, "deal", {"id": _text, "value": crm_money, "currency": _text, "closed_at": crm_time})
    _nested(event, index, "meeting", {"id": _text, "starts_at": crm_time})
    return Incoming(provider_event_id=event_id, event_type=name, payload=event)


def generic_events_parse(*, body, endpoint: str) -> list[Incoming]:
    """One JSON object or an array of them; every event is checked before anything is stored."""
    events = body if isinstance(body, list) else [body]
    if not events:
        raise MalformedPayload("Body is an empty array.")
    return [_generic_event(event, index, ENDPOINT_EVENTS[endpoint]) for index, event in enumerate(events)]


def generic_action(payload: dict) -> CrmAction:
    kind = GENERIC_KINDS.get(payload.get("event"), "")
    link = CrmLink(
        outcome_id=crm_id(payload.get("outcome_id")),
        lead_id=crm_id(payload.get("lead_id")),
        email=crm_email(payload.get("email")),
        subject=f"CRM event {payload.get('event_id')}",
    )
    deal = payload.get("deal") or {}
    at = crm_time(payload.get("occurred_at"))
    if kind == "won":
        at = crm_time(deal.get("closed_at")) or at
    value = crm_money(deal.get("value")) if kind in ("opportunity", "won") else None
    return CrmAction(kind, link, at=at, value=value, reason="" if kind else f"Unknown event {payload.get('event')!r}.")


# --- HubSpot (webhooks v3) --------------------------------------------------------------------------

# The generic "object.*" subscriptions name the object by type id.
HUBSPOT_OBJECT_TYPES = {"0-1": "contact", "0-3": "deal"}
# Default pipeline stage ids; a custom pipeline's stages have numeric ids and are not read.
HUBSPOT_STAGES = {"closedwon": "won", "closedlost": "lost"}
HUBSPOT_OPT_OUT_PROPERTIES = ("hs_email_optout", "donotcontact", "do_not_contact", "hs_do_not_contact")


def hubspot_shaped(body) -> bool:
    return (
        isinstance(body, list)
        and bool(body)
        and all(isinstance(item, dict) and "subscriptionType" in item and "objectId" in item for item in body)
    )


def _hubspot_event(event, index: int) -> Incoming:
    if not isinstance(event, dict):
        raise MalformedPayload(f"Event {index} is not an object.")
    for key in ("eventId", "occurredAt", "subscriptionType", "objectId"):
        if _empty(event.get(key)):
            raise MalformedPayload(f"Event {index} has no '{key}'.")
    # HubSpot's eventId alone is not unique: eventId + occurredAt is.
    event_id = f"{event['eventId']}:{event['occurredAt']}"
    if len(event_id) > MAX_EVENT_ID:
        raise MalformedPayload(f"Event {index} has an over-long 'eventId'.")
    return Incoming(provider_event_id=event_id, event_type=str(event["subscriptionType"]), payload=event)


def hubspot_events_parse(*, body) -> list[Incoming]:
    if not isinstance(body, list) or not body:
        raise MalformedPayload("Body is not a JSON array of HubSpot events.")
    return [_hubspot_event(event, index) for index, event in enumerate(body)]


def _hubspot_stage(value: str) -> tuple[str, Decimal | None]:
    return HUBSPOT_STAGES.get(value.lower(), ""), None


def _hubspot_amount(value: str) -> tuple[str, Decimal | None]:
    return "opportunity", _lenient(crm_money, value)


def _hubspot_opt_out(value: str) -> tuple[str, Decimal | None]:
    return ("dnc" if _truthy(value) else ""), None


# (object, change, property) -> what the new property value records.
HUBSPOT_RULES: dict[tuple[str, str, str], Callable[[str], tuple[str, Decimal | None]]] = {
    ("deal", "creation", ""): lambda value: ("opportunity", None),
    ("deal", "propertyChange", "dealstage"): _hubspot_stage,
    ("deal", "propertyChange", "amount"): _hubspot_amount,
    **{("contact", "propertyChange", name): _hubspot_opt_out for name in HUBSPOT_OPT_OUT_PROPERTIES},
}


def hubspot_action(payload: dict) -> CrmAction:
    """HubSpot sends object ids only: an event links by REX ids or an email added to it (e.g. by middleware), or by
    the email in a contact's ``email`` change; otherwise it stays unmatched."""
    kind, _, change = str(payload.get("subscriptionType")).partition(".")
    if kind == "object":
        kind = HUBSPOT_OBJECT_TYPES.get(str(payload.get("objectTypeId")), "object")
    prop = str(payload.get("propertyName") or "")
    value = str(payload.get("propertyValue") or "")
    email = _lenient(crm_email, value) if prop == "email" else ""
    link = _rex_link(payload, subject=f"HubSpot {kind} {payload.get('objectId')}", email=email)
    rule = HUBSPOT_RULES.get((kind, change, prop))
    recorded, amount = rule(value) if rule else ("", None)
    change_text = f" {prop}={value!r}" if prop else ""
    reason = "" if recorded else f"Nothing to record for {payload.get('subscriptionType')}{change_text}."
    at = _lenient(lambda stamp: crm_time(stamp, unit=1000), payload.get("occurredAt"))
    return CrmAction(recorded, link, at=at, value=amount, reason=reason)


# --- Pipedrive (webhooks v2) ------------------------------------------------------------------------


def pipedrive_events_parse(*, body: dict) -> list[Incoming]:
    """One event per request: ``{"meta": {...}, "data": {...}|null, "previous": {...}|null}``."""
    meta = body.get("meta")
    if not isinstance(meta, dict):
        raise MalformedPayload("Pipedrive 'meta' is not an object.")
    if "data" not in body and "current" in body:
        raise MalformedPayload("Pipedrive webhooks v1 are not supported: create the webhook with version 2.0.")
    if body.get("data") is not None and not isinstance(body.get("data"), dict):
        raise MalformedPayload("Pipedrive 'data' is not an object.")
    entity, action = meta.get("entity"), meta.get("action")
    if not isinstance(entity, str) or not entity or not isinstance(action, str) or not action:
        raise MalformedPayload("Pipedrive 'meta' has no 'entity' or 'action'.")
    event_id = str(
        meta.get("id") or f"{meta.get('company_id')}:{entity}:{meta.get('entity_id')}:{action}:{meta.get('timestamp')}"
    )
    if len(event_id) > MAX_EVENT_ID:
        raise MalformedPayload("Pipedrive 'meta.id' is over-long.")
    return [Incoming(provider_event_id=event_id, event_type=f"{entity}.{action}", payload=body)]


def _custom(data: dict, key: str):
    """A v2 custom field (``custom_fields[key]``, a value or ``{"value": ...}``) or a top-level key of ``data``."""
    custom = data.get("custom_fields")
    value = custom.get(key) if isinstance(custom, dict) else None
    if isinstance(value, dict):
        value = value.get("value")
    return data.get(key) if _empty(value) else value


def _pipedrive_email(data: dict) -> str:
    """A person's primary email (``emails``/``email``: a string or ``[{value, primary}]``), else an activity's
    first attendee email."""
    candidates: list = []
    for key in ("emails", "email"):
        value = data.get(key)
        if isinstance(value, list):
            entries = sorted(
                (item for item in value if isinstance(item, dict)), key=lambda item: not item.get("primary")
            )
            candidates += [item.get("value") for item in entries]
        else:
            candidates.append(value)
    attendees = data.get("attendees")
    if isinstance(attendees, list):
        candidates += [item.get("email_address") for item in attendees if isinstance(item, dict)]
    return next((email for email in map(lambda value: _lenient(crm_email, value), candidates) if email), "")


def _pipedrive_deal(action: str, data: dict) -> tuple[str, datetime | None, Decimal | None]:
    status = str(data.get("status") or "")
    if status == "won":
        won_at = _lenient(crm_time, data.get("won_time") or data.get("close_time"))
        return "won", won_at, _lenient(crm_money, data.get("value"))
    if status == "lost":
        return "lost", _lenient(crm_time, data.get("lost_time") or data.get("close_time")), None
    if status in ("", "open"):  # any event about an open deal means an opportunity exists
        return "opportunity", _lenient(crm_time, data.get("add_time")), _lenient(crm_money, data.get("value"))
    return "", None, None


def _pipedrive_activity(action: str, data: dict) -> tuple[str, datetime | None, Decimal | None]:
    if str(data.get("type") or "").lower() != "meeting":
        return "", None, None
    if _truthy(data.get("done")):
        return "completed", _lenient(crm_time, data.get("marked_as_done_time")), None
    return "booked", _lenient(crm_time, data.get("add_time")), None


def _pipedrive_person(action: str, data: dict) -> tuple[str, datetime | None, Decimal | None]:
    marked = _truthy(_custom(data, "do_not_contact")) or str(data.get("marketing_status") or "") == "unsubscribed"
    return ("dnc" if marked else ""), None, None


PIPEDRIVE_RULES: dict[str, Callable[[str, dict], tuple[str, datetime | None, Decimal | None]]] = {
    "deal": _pipedrive_deal,
    "activity": _pipedrive_activity,
    "person": _pipedrive_person,
}


def pipedrive_action(payload: dict) -> CrmAction:
    meta = payload["meta"]
    data = payload.get("data") or {}
    entity, action = str(meta.get("entity")), str(meta.get("action"))
    link = CrmLink(
        outcome_id=_lenient(crm_id, _custom(data, "rex_outcome_id")),
        lead_id=_lenient(crm_id, _custom(data, "rex_lead_id")),
        email=_pipedrive_email(data),
        subject=f"Pipedrive {entity} {meta.get('entity_id') or data.get('id')}",
    )
    rule = PIPEDRIVE_RULES.get(entity)
    kind, at, value = rule(action, data) if rule and action != "delete" else ("", None, None)
    at = at or _lenient(crm_time, meta.get("timestamp"))
    return CrmAction(kind, link, at=at, value=value, reason="" if kind else f"Nothing to record for {entity}.{action}.")


# --- Salesforce (Outbound Messages) -------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _leaf_text(element: Element) -> str | None:
    return None if element.get(f"{XSI}nil") == "true" else (element.text or "").strip()


def _salesforce_notification(item: Element, index: int, header: dict) -> Incoming:
    parts = {_local(child.tag): child for child in item}
    notification_id = (parts["Id"].text or "").strip() if "Id" in parts else ""
    if not notification_id or len(notification_id) > MAX_EVENT_ID:
        raise MalformedPayload(f"Notification {index} has no usable 'Id'.")
    sobject = parts.get("sObject")
    if sobject is None:
        raise MalformedPayload(f"Notification {index} has no 'sObject'.")
    sobject_type = (sobject.get(f"{XSI}type") or "sObject").rsplit(":", 1)[-1]
    fields = {_local(child.tag): _leaf_text(child) for child in sobject if len(child) == 0}
    # Stored without the SessionId the message may carry: it is a live Salesforce credential.
    payload = {
        "OrganizationId": header.get("OrganizationId", ""),
        "ActionId": header.get("ActionId", ""),
        "NotificationId": notification_id,
        "sObjectType": sobject_type,
        "sObject": fields,
    }
    return Incoming(provider_event_id=notification_id, event_type=sobject_type, payload=payload)


def salesforce_notifications_parse(*, raw_body: bytes) -> tuple[str, list[Incoming]]:
    """``(OrganizationId, one Incoming per Notification)`` of a SOAP ``notifications`` message."""
    try:
        root = fromstring(raw_body, forbid_dtd=True)
    except (ParseError, DefusedXmlException) as exc:
        raise MalformedPayload(f"Body is not a well-formed XML document: {exc}") from None
    notifications = next((element for element in root.iter() if _local(element.tag) == "notifications"), None)
    if notifications is None:
        raise MalformedPayload("Not a Salesforce outbound message (no 'notifications' element).")
    header = {_local(child.tag): _leaf_text(child) or "" for child in notifications if len(child) == 0}
    items = [child for child in notifications if _local(child.tag) == "Notification"]
    if not items:
        raise MalformedPayload("The outbound message has no Notification.")
    return header.get("OrganizationId", ""), [
        _salesforce_notification(item, index, header) for index, item in enumerate(items)
    ]


SALESFORCE_EMAIL_FIELDS = ("Email", "Contact_Email__c", "Rex_Contact_Email__c")
SALESFORCE_MEETING_STATUS_FIELDS = ("Rex_Meeting_Status__c", "Meeting_Status__c")
# An Event has no standard status: a picklist in one of the fields above says what became of the meeting.
SALESFORCE_MEETING_STATES = {
    "completed": "completed",
    "held": "completed",
    "no show": "no_show",
    "no-show": "no_show",
    "no_show": "no_show",
}


def _salesforce_opportunity(fields: dict) -> tuple[str, datetime | None, Decimal | None]:
    stage = str(fields.get("StageName") or "").strip().lower()
    amount = _lenient(crm_money, fields.get("Amount"))
    if _truthy(fields.get("IsWon")) or stage == "closed won":
        return "won", _lenient(crm_time, fields.get("CloseDate")), amount
    closed_unwon = _truthy(fields.get("IsClosed")) and str(fields.get("IsWon")).lower() == "false"
    if stage == "closed lost" or closed_unwon:
        return "lost", _lenient(crm_time, fields.get("CloseDate")), None
    return "opportunity", _lenient(crm_time, fields.get("CreatedDate")), amount


def _salesforce_event(fields: dict) -> tuple[str, datetime | None, Decimal | None]:
    status = next(
        (str(fields[name]).strip().lower() for name in SALESFORCE_MEETING_STATUS_FIELDS if fields.get(name)), ""
    )
    state = SALESFORCE_MEETING_STATES.get(status, "booked")
    return state, _lenient(crm_time, fields.get("CreatedDate")), None


def _salesforce_person(fields: dict) -> tuple[str, datetime | None, Decimal | None]:
    marked = _truthy(fields.get("HasOptedOutOfEmail")) or _truthy(fields.get("DoNotCall"))
    return ("dnc" if marked else ""), None, None


SALESFORCE_RULES: dict[str, Callable[[dict], tuple[str, datetime | None, Decimal | None]]] = {
    "Opportunity": _salesforce_opportunity,
    "Event": _salesforce_event,
    "Contact": _salesforce_person,
    "Lead": _salesforce_person,
}


def salesforce_action(payload: dict) -> CrmAction:
    fields = payload.get("sObject") or {}
    sobject_type = str(payload.get("sObjectType"))
    email = next((email for name in SALESFORCE_EMAIL_FIELDS if (email := _lenient(crm_email, fields.get(name)))), "")
    link = CrmLink(
        outcome_id=_lenient(crm_id, fields.get("Rex_Outcome_Id__c")),
        lead_id=_lenient(crm_id, fields.get("Rex_Lead_Id__c")),
        email=email,
        subject=f"Salesforce {sobject_type} {fields.get('Id')}",
    )
    rule = SALESFORCE_RULES.get(sobject_type)
    kind, at, value = rule(fields) if rule else ("", None, None)
    return CrmAction(kind, link, at=at, value=value, reason="" if kind else f"Nothing to record for {sobject_type}.")


def stored_payload(raw_body: str) -> dict:
    payload = json.loads(raw_body)
    if not isinstance(payload, dict):
        raise ValueError("The stored event is not a JSON object.")
    return payload
