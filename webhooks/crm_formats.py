"""The four CRM webhook formats: how each request splits into stored events, and what each stored event means
for REX (a ``CrmAction``: what to record, when, how to find the outcome it belongs to, and what to look up in the
CRM's API when the event itself does not say).

Parsing at receive time is strict about the request (a malformed one is answered 400 and nothing is stored) and
lenient about single events: an event REX does not read, or one sent to the other endpoint, is stored as ignored
with the reason. Reading a stored event is lenient about the CRM's optional fields (an odd amount or id is left out
rather than failing the event).
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from rex_project.api import MAX_ID
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
# What each endpoint records: deal events only from /deals, meeting events only from /meetings; contact events
# (do-not-contact) from either. An event of the other kind is stored and ignored, with the reason.
DEAL, MEETING, CONTACT = "deal", "meeting", "contact"
GENERIC_CATEGORIES = {
    "opportunity.created": DEAL,
    "deal.won": DEAL,
    "deal.lost": DEAL,
    "meeting.booked": MEETING,
    "meeting.completed": MEETING,
    "meeting.no_show": MEETING,
    DNC: CONTACT,
}
ENDPOINT_CATEGORY = {DEALS: DEAL, MEETINGS: MEETING}
CATEGORY_ENDPOINT = {DEAL: DEALS, MEETING: MEETINGS}
# A deal stage REX cannot read from the event (a custom pipeline's numeric id): won, lost or open is asked of the
# CRM (HubSpot's pipeline-independent hs_is_closed_won / hs_is_closed) before anything is recorded.
RESOLVE_STAGE = "deal_stage"
MAX_EVENT_ID = 255
MAX_DEAL_VALUE = Decimal("999999999999.99")  # OutcomeLabel.deal_value: 14 digits, 2 decimals
TRUE_WORDS = {"true", "yes", "1", "y"}

XSI = "{http://www.w3.org/2001/XMLSchema-instance}"


@dataclass(frozen=True)
class Incoming:
    """One event of a request as it is stored: its dedupe key, its type and its JSON body. ``category`` (deal,
    meeting, contact or "") decides which endpoint records it; ``ignored`` is the reason an event is stored as
    ignored instead of being processed."""

    provider_event_id: str
    event_type: str
    payload: dict
    category: str = ""
    ignored: str = ""


def endpoint_checked(item: Incoming, endpoint: str) -> Incoming:
    """``item``, marked ignored when it is a deal event on /meetings or a meeting event on /deals."""
    home = CATEGORY_ENDPOINT.get(item.category)
    if item.ignored or home is None or home == endpoint:
        return item
    reason = f"A {item.category} event sent to /webhooks/crm/{endpoint}: only /webhooks/crm/{home} records them."
    return replace(item, ignored=reason)


@dataclass(frozen=True)
class CrmLink:
    """What a CRM event says about whom it concerns; ``subject`` names the CRM object in an unmatched error."""

    outcome_id: int | None = None
    lead_id: int | None = None
    email: str = ""
    subject: str = ""

    @property
    def linkable(self) -> bool:
        return bool(self.outcome_id or self.lead_id or self.email)


@dataclass(frozen=True)
class CrmLookup:
    """The CRM object to read through the CRM's REST API (webhooks.crm_lookup) when the event lacks REX ids, an
    email or the deal's facts: ``provider`` hubspot or pipedrive, ``object_type`` deal, contact or person."""

    provider: str
    object_type: str
    object_id: str


@dataclass(frozen=True)
class CrmAction:
    """``kind``: opportunity, won, lost, booked, completed, no_show, dnc, RESOLVE_STAGE (won, lost or open: the
    lookup says), or "" when there is nothing to record (``reason`` says why). ``at`` None means "when REX received
    it"."""

    kind: str
    link: CrmLink
    at: datetime | None = None
    value: Decimal | None = None
    reason: str = ""
    lookup: CrmLookup | None = None


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


def _generic_event(event, index: int) -> Incoming:
    if not isinstance(event, dict):
        raise MalformedPayload(f"Event {index} is not an object.")
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise MalformedPayload(f"Event {index}: 'event_id' is required (a non-empty string).")
    if len(event_id) > MAX_EVENT_ID:
        raise MalformedPayload(f"Event {index}: 'event_id' is longer than {MAX_EVENT_ID} characters.")
    name = event.get("event")
    if not isinstance(name, str) or name not in GENERIC_KINDS:
        raise MalformedPayload(f"Event {index}: 'event' must be one of {', '.join(GENERIC_KINDS)} (got {name!r}).")
    _field(index, "occurred_at", crm_time, event.get("occurred_at"))
    link = [_field(index, key, parse, event.get(key)) for key, parse in GENERIC_LINK_FIELDS.items()]
    if not any(link):
        raise MalformedPayload(f"Event {index}: one of 'outcome_id', 'lead_id' or 'email' is required.")
    _nested(event, index, "deal", {"id": _text, "value": crm_money, "currency": _text, "closed_at": crm_time})
    _nested(event, index, "meeting", {"id": _text, "starts_at": crm_time})
    return Incoming(provider_event_id=event_id, event_type=name, payload=event, category=GENERIC_CATEGORIES[name])


def generic_events_parse(*, body, endpoint: str = "") -> list[Incoming]:
    """One JSON object or an array of them; every event is checked before anything is stored. With ``endpoint``,
    an event of the other endpoint comes back marked ignored (webhooks.crm does this for every format)."""
    events = body if isinstance(body, list) else [body]
    if not events:
        raise MalformedPayload("Body is an empty array.")
    incoming = [_generic_event(event, index) for index, event in enumerate(events)]
    return [endpoint_checked(item, endpoint) for item in incoming] if endpoint else incoming


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
HUBSPOT_OBJECT_TYPES = {"0-1": CONTACT, "0-3": DEAL}
# The default pipeline's stage ids. A custom pipeline's stages have numeric ids: won, lost or open is then read
# from the deal's pipeline-independent hs_is_closed_won / hs_is_closed properties (RESOLVE_STAGE).
HUBSPOT_STAGES = {
    "closedwon": "won",
    "closedlost": "lost",
    **dict.fromkeys(
        ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin", "contractsent"),
        "opportunity",
    ),
}
HUBSPOT_OPT_OUT_PROPERTIES = ("hs_email_optout", "donotcontact", "do_not_contact", "hs_do_not_contact")
# What an event needs for REX to read it; any other event (an associationChange has fromObjectId/toObjectId and
# no objectId) is stored as ignored, and the rest of the batch goes on.
HUBSPOT_REQUIRED = ("eventId", "occurredAt", "subscriptionType", "objectId")


def hubspot_shaped(body) -> bool:
    """A JSON array of objects, at least one a HubSpot subscription event (REX's generic events never carry
    ``subscriptionType``)."""
    return (
        isinstance(body, list)
        and bool(body)
        and all(isinstance(item, dict) for item in body)
        and any("subscriptionType" in item for item in body)
    )


def _hubspot_object(event: dict) -> str:
    """deal, contact, or HubSpot's own object name (company, ticket...) from ``subscriptionType``."""
    name = str(event.get("subscriptionType") or "").partition(".")[0]
    return HUBSPOT_OBJECT_TYPES.get(str(event.get("objectTypeId")), "object") if name == "object" else name


def _hubspot_event_id(event: dict) -> str:
    """``eventId:occurredAt`` (HubSpot's eventId alone is not unique); a digest of the event when it has neither."""
    if not _empty(event.get("eventId")) and not _empty(event.get("occurredAt")):
        event_id = f"{event['eventId']}:{event['occurredAt']}"
        if len(event_id) <= MAX_EVENT_ID:
            return event_id
    return "sha256:" + hashlib.sha256(json.dumps(event, sort_keys=True).encode()).hexdigest()


def _hubspot_unread(event: dict) -> str:
    """Why REX does not read this event ("" when it does)."""
    missing = [key for key in HUBSPOT_REQUIRED if _empty(event.get(key))]
    if not missing:
        return ""
    subscription = str(event.get("subscriptionType") or "event")
    if "objectId" in missing and "fromObjectId" in event:
        return f"HubSpot {subscription}: association changes are not recorded."
    return f"HubSpot {subscription} is not an event REX reads (no {', '.join(map(repr, missing))})."


def _hubspot_event(event, index: int) -> Incoming:
    if not isinstance(event, dict):
        raise MalformedPayload(f"Event {index} is not an object.")
    return Incoming(
        provider_event_id=_hubspot_event_id(event),
        event_type=str(event.get("subscriptionType") or "unknown"),
        payload=event,
        category=DEAL if _hubspot_object(event) == DEAL else "",
        ignored=_hubspot_unread(event),
    )


def hubspot_events_parse(*, body) -> list[Incoming]:
    if not isinstance(body, list) or not body:
        raise MalformedPayload("Body is not a JSON array of HubSpot events.")
    return [_hubspot_event(event, index) for index, event in enumerate(body)]


def _hubspot_stage(value: str) -> tuple[str, Decimal | None]:
    return HUBSPOT_STAGES.get(value.lower(), RESOLVE_STAGE if value else ""), None


def _hubspot_amount(value: str) -> tuple[str, Decimal | None]:
    return "opportunity", _lenient(crm_money, value)


def _hubspot_opt_out(value: str) -> tuple[str, Decimal | None]:
    return ("dnc" if _truthy(value) else ""), None


# (object, change, property) -> what the new property value records.
HUBSPOT_RULES: dict[tuple[str, str, str], Callable[[str], tuple[str, Decimal | None]]] = {
    (DEAL, "creation", ""): lambda value: ("opportunity", None),
    (DEAL, "propertyChange", "dealstage"): _hubspot_stage,
    (DEAL, "propertyChange", "amount"): _hubspot_amount,
    **{(CONTACT, "propertyChange", name): _hubspot_opt_out for name in HUBSPOT_OPT_OUT_PROPERTIES},
}


def _hubspot_lookup(kind: str, object_id) -> CrmLookup | None:
    object_id = _lenient(crm_id, object_id)
    return CrmLookup("hubspot", kind, str(object_id)) if kind in (DEAL, CONTACT) and object_id else None


def hubspot_action(payload: dict) -> CrmAction:
    """HubSpot sends object ids only: REX ids or an email added to the event (e.g. by middleware) link it, else
    the lookup of the deal (its contact's email, amount, close date) or of the contact (its email)."""
    kind = _hubspot_object(payload)
    change = str(payload.get("subscriptionType")).partition(".")[2]
    prop = str(payload.get("propertyName") or "")
    value = str(payload.get("propertyValue") or "")
    email = _lenient(crm_email, value) if prop == "email" else ""
    object_id = payload.get("objectId")
    link = _rex_link(payload, subject=f"HubSpot {kind} {object_id}", email=email)
    rule = HUBSPOT_RULES.get((kind, change, prop))
    recorded, amount = rule(value) if rule else ("", None)
    change_text = f" {prop}={value!r}" if prop else ""
    reason = "" if recorded else f"Nothing to record for {payload.get('subscriptionType')}{change_text}."
    at = _lenient(lambda stamp: crm_time(stamp, unit=1000), payload.get("occurredAt"))
    return CrmAction(recorded, link, at=at, value=amount, reason=reason, lookup=_hubspot_lookup(kind, object_id))


# --- Pipedrive (webhooks v2, and v1 read as v2) -----------------------------------------------------------

PIPEDRIVE_CATEGORIES = {"deal": DEAL, "activity": MEETING, "person": CONTACT}
# Webhooks v1 name their actions differently ("merged" leaves the surviving object: a change).
PIPEDRIVE_V1_ACTIONS = {"added": "create", "updated": "change", "merged": "change", "deleted": "delete"}


def pipedrive_shaped(body) -> bool:
    """v2 ``{"meta": {"entity", ...}, "data"}`` or v1 ``{"meta": {"object", ...}, "current"}``."""
    meta = body.get("meta") if isinstance(body, dict) else None
    return isinstance(meta, dict) and ("entity" in meta or "object" in meta) and ("data" in body or "current" in body)


def pipedrive_v2(body: dict) -> dict:
    """A webhooks v1 body (``current``/``previous``, ``meta.object``, ``meta.action`` added/updated/deleted,
    ``meta.id`` = the object's id) in the v2 form; a v2 body as it is. v1 has no event id: the company, object,
    action and time stand for it."""
    meta = body.get("meta")
    if "data" in body or "current" not in body or not isinstance(meta, dict):
        return body
    action = str(meta.get("action") or "")
    stamp = meta.get("timestamp_micro") or meta.get("timestamp")
    event_id = f"v1:{meta.get('company_id')}:{meta.get('object')}:{meta.get('id')}:{action}:{stamp}"
    return {
        "meta": {
            "action": PIPEDRIVE_V1_ACTIONS.get(action, action),
            "entity": meta.get("object"),
            "entity_id": str(meta.get("id") or ""),
            "company_id": meta.get("company_id"),
            "user_id": meta.get("user_id"),
            "timestamp": meta.get("timestamp"),
            "id": event_id,
            "version": "1.0",
        },
        "data": body.get("current") or None,
        "previous": body.get("previous") or None,
    }


def pipedrive_events_parse(*, body: dict) -> list[Incoming]:
    """One event per request: v2 ``{"meta": {...}, "data": {...}|null, "previous": {...}|null}``, or v1 (stored
    as received, read as v2)."""
    normal = pipedrive_v2(body)
    meta = normal.get("meta")
    if not isinstance(meta, dict):
        raise MalformedPayload("Pipedrive 'meta' is not an object.")
    if normal.get("data") is not None and not isinstance(normal.get("data"), dict):
        raise MalformedPayload("Pipedrive 'data' (v1: 'current') is not an object.")
    entity, action = meta.get("entity"), meta.get("action")
    if not isinstance(entity, str) or not entity or not isinstance(action, str) or not action:
        raise MalformedPayload("Pipedrive 'meta' has no 'entity' (v1: 'object') or 'action'.")
    event_id = str(
        meta.get("id") or f"{meta.get('company_id')}:{entity}:{meta.get('entity_id')}:{action}:{meta.get('timestamp')}"
    )
    if len(event_id) > MAX_EVENT_ID:
        raise MalformedPayload("Pipedrive 'meta.id' is over-long.")
    category = PIPEDRIVE_CATEGORIES.get(entity, "")
    return [Incoming(provider_event_id=event_id, event_type=f"{entity}.{action}", payload=body, category=category)]


def _custom(data: dict, key: str):
    """A v2 custom field (``custom_fields[key]``, a value or ``{"value": ...}``) or a top-level key of ``data``
    (where v1 puts its custom fields)."""
    custom = data.get("custom_fields")
    value = custom.get(key) if isinstance(custom, dict) else None
    if isinstance(value, dict):
        value = value.get("value")
    return data.get(key) if _empty(value) else value


def _email_values(value) -> list:
    """A string, or ``[{value, primary}]`` primary first."""
    if not isinstance(value, list):
        return [value]
    entries = sorted((item for item in value if isinstance(item, dict)), key=lambda item: not item.get("primary"))
    return [item.get("value") for item in entries]


def pipedrive_email(data: dict) -> str:
    """A person's primary email (``emails`` in v2, ``email`` in v1: a string or ``[{value, primary}]``), else the
    one of a deal's embedded person (v1 ``person_id: {"value", "email"}``), else an activity's first attendee."""
    person = data.get("person_id")
    candidates = _email_values(data.get("emails")) + _email_values(data.get("email"))
    if isinstance(person, dict):
        candidates += _email_values(person.get("email"))
    attendees = data.get("attendees")
    if isinstance(attendees, list):
        candidates += [item.get("email_address") for item in attendees if isinstance(item, dict)]
    return next((email for email in (_lenient(crm_email, value) for value in candidates) if email), "")


def pipedrive_person_id(entity: str, data: dict) -> int | None:
    """The person a deal or an activity is about (``person_id``, a number or v1's ``{"value": id}``, else the
    primary participant), or the person itself."""
    if entity == "person":
        return _lenient(crm_id, data.get("id"))
    person = data.get("person_id")
    if isinstance(person, dict):
        person = person.get("value")
    if _empty(person) and isinstance(data.get("participants"), list):
        primary = [item for item in data["participants"] if isinstance(item, dict)]
        primary.sort(key=lambda item: not (item.get("primary") or item.get("primary_flag")))
        person = primary[0].get("person_id") if primary else None
    return _lenient(crm_id, person)


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
    """Pipedrive's custom fields are keyed by 40-character hashes, so REX ids rarely come with the event: the
    email of the deal's or activity's person is looked up (webhooks.crm_lookup) when the event has none."""
    normal = pipedrive_v2(payload)
    meta = normal["meta"]
    data = normal.get("data") or {}
    entity, action = str(meta.get("entity")), str(meta.get("action"))
    link = CrmLink(
        outcome_id=_lenient(crm_id, _custom(data, "rex_outcome_id")),
        lead_id=_lenient(crm_id, _custom(data, "rex_lead_id")),
        email=pipedrive_email(data),
        subject=f"Pipedrive {entity} {meta.get('entity_id') or data.get('id')}",
    )
    rule = PIPEDRIVE_RULES.get(entity)
    kind, at, value = rule(action, data) if rule and action != "delete" else ("", None, None)
    at = at or _lenient(crm_time, meta.get("timestamp"))
    person_id = pipedrive_person_id(entity, data)
    lookup = CrmLookup("pipedrive", "person", str(person_id)) if person_id else None
    reason = "" if kind else f"Nothing to record for {entity}.{action}."
    return CrmAction(kind, link, at=at, value=value, reason=reason, lookup=lookup)


# --- Salesforce (Outbound Messages) -------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _leaf_text(element: Element) -> str | None:
    return None if element.get(f"{XSI}nil") == "true" else (element.text or "").strip()


SALESFORCE_CATEGORIES = {"Opportunity": DEAL, "Event": MEETING, "Contact": CONTACT, "Lead": CONTACT}


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
    category = SALESFORCE_CATEGORIES.get(sobject_type, "")
    return Incoming(provider_event_id=notification_id, event_type=sobject_type, payload=payload, category=category)


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
