"""CRM webhooks (HubSpot, Pipedrive, Salesforce and REX's generic JSON): detect the format, verify the request,
store one WebhookEvent per CRM event; later, in the Celery task, link each event to an outcome and record it.

Linking, strongest first: a REX outcome id, else a REX lead id (that lead's most recent outcome), else the contact
email (the most recent outcome of a lead with that email, whatever the organization). An event that finds no
outcome yet is kept as unmatched and retried by the sweep; a do-not-contact needs only a lead.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import F

from agents.compliance import suppress
from agents.models import Lead, Organization, Suppression
from outcomes import tracker
from outcomes.models import OutcomeLabel
from webhooks.common import MalformedPayload, kept_headers, mark
from webhooks.crm_formats import (
    CrmAction,
    CrmLink,
    Incoming,
    generic_action,
    generic_events_parse,
    hubspot_action,
    hubspot_events_parse,
    hubspot_shaped,
    pipedrive_action,
    pipedrive_events_parse,
    salesforce_action,
    salesforce_notifications_parse,
    stored_payload,
)
from webhooks.models import WebhookEvent
from webhooks.signatures import (
    HUBSPOT_SIGNATURE_HEADER,
    hubspot_signature_check,
    pipedrive_basic_auth_check,
    rex_hmac_signature_check,
    salesforce_organization_check,
)

Provider = WebhookEvent.Provider
State = WebhookEvent.State
# Most recent first: the outcome a CRM event about a lead most likely follows from.
RECENT = (F("sent_at").desc(nulls_last=True), "-created_at", "-id")
BOM_AND_SPACE = b"\xef\xbb\xbf \t\r\n"


@dataclass(frozen=True)
class CrmReceipt:
    provider: str
    received: int
    new_ids: list[int]


@dataclass(frozen=True)
class CrmRequest:
    endpoint: str  # crm_formats.DEALS or MEETINGS
    method: str
    uri: str  # as the CRM called it: PUBLIC_BASE_URL + path + query string
    raw_body: bytes
    headers: Mapping[str, str]


# --- Receive --------------------------------------------------------------------------------------


def crm_format_detect(*, raw_body: bytes, headers: Mapping[str, str]) -> tuple[str, object]:
    """``(provider, parsed JSON body)`` (None for Salesforce's XML): HubSpot sends a JSON array of
    subscription events, Pipedrive an object with ``meta``, Salesforce a SOAP envelope; any other JSON is the
    generic format."""
    if raw_body.lstrip(BOM_AND_SPACE).startswith(b"<"):
        return Provider.SALESFORCE, None
    try:
        body = json.loads(raw_body)
    except ValueError as exc:  # also UnicodeDecodeError
        raise MalformedPayload(f"Body is neither JSON nor a Salesforce SOAP message: {exc}") from None
    if headers.get(HUBSPOT_SIGNATURE_HEADER) or hubspot_shaped(body):
        return Provider.HUBSPOT, body
    if isinstance(body, dict) and "meta" in body:
        return Provider.PIPEDRIVE, body
    return Provider.CRM_GENERIC, body


def _generic(request: CrmRequest, body) -> tuple[str, list[Incoming]]:
    signature = rex_hmac_signature_check(
        raw_body=request.raw_body, headers=request.headers, setting="CRM_WEBHOOK_SECRET"
    )
    return signature, generic_events_parse(body=body, endpoint=request.endpoint)


def _hubspot(request: CrmRequest, body) -> tuple[str, list[Incoming]]:
    signature = hubspot_signature_check(
        method=request.method, uri=request.uri, raw_body=request.raw_body, headers=request.headers
    )
    return signature, hubspot_events_parse(body=body)


def _pipedrive(request: CrmRequest, body) -> tuple[str, list[Incoming]]:
    signature = pipedrive_basic_auth_check(headers=request.headers)
    return signature, pipedrive_events_parse(body=body)


def _salesforce(request: CrmRequest, body) -> tuple[str, list[Incoming]]:
    # Nothing to verify before reading the envelope: the organization id is inside it.
    organization_id, incoming = salesforce_notifications_parse(raw_body=request.raw_body)
    return salesforce_organization_check(organization_id=organization_id), incoming


RECEIVERS: dict[str, Callable[[CrmRequest, object], tuple[str, list[Incoming]]]] = {
    Provider.CRM_GENERIC: _generic,
    Provider.HUBSPOT: _hubspot,
    Provider.PIPEDRIVE: _pipedrive,
    Provider.SALESFORCE: _salesforce,
}


def crm_events_store(*, provider: str, incoming: list[Incoming], headers: dict, signature: str) -> list[int]:
    """One WebhookEvent per CRM event (a repeat of a provider event id is ignored). Returns the ids of new rows."""
    kept = kept_headers(headers)
    rows = {
        item.provider_event_id: WebhookEvent(
            provider=provider,
            provider_event_id=item.provider_event_id,
            event_type=item.event_type[:64],
            raw_body=json.dumps(item.payload),
            headers=kept,
            signature=signature,
        )
        for item in incoming
    }
    existing = set(
        WebhookEvent.objects.filter(provider=provider, provider_event_id__in=rows).values_list(
            "provider_event_id", flat=True
        )
    )
    WebhookEvent.objects.bulk_create(rows.values(), ignore_conflicts=True)
    new = WebhookEvent.objects.filter(
        provider=provider, provider_event_id__in=set(rows) - existing, state=State.RECEIVED
    )
    return list(new.order_by("id").values_list("id", flat=True))


def crm_events_receive(*, request: CrmRequest) -> CrmReceipt:
    """Detect, verify, check every event, then store them all. Raises SignatureRejected or MalformedPayload
    before anything is written."""
    provider, body = crm_format_detect(raw_body=request.raw_body, headers=request.headers)
    signature, incoming = RECEIVERS[provider](request, body)
    new_ids = crm_events_store(provider=provider, incoming=incoming, headers=dict(request.headers), signature=signature)
    return CrmReceipt(provider=provider, received=len(incoming), new_ids=new_ids)


# --- Link -----------------------------------------------------------------------------------------


def _unlinked(link: CrmLink, *, what: str = "outcome") -> str:
    known = [
        f"{name} {value}"
        for name, value in (("outcome", link.outcome_id), ("lead", link.lead_id), ("email", link.email))
        if value
    ]
    if not known:
        return f"{link.subject} cannot be linked: it carries no REX outcome id, REX lead id or contact email."
    return f"{link.subject}: no REX {what} matches {', '.join(known)} yet."


def crm_outcome_find(*, link: CrmLink) -> OutcomeLabel | None:
    outcomes = OutcomeLabel.objects.select_related("organization", "lead", "message")
    if link.outcome_id and (outcome := outcomes.filter(pk=link.outcome_id).first()):
        return outcome
    if link.lead_id and (outcome := outcomes.filter(lead_id=link.lead_id).order_by(*RECENT).first()):
        return outcome
    if link.email:
        return outcomes.filter(lead__email__iexact=link.email).order_by(*RECENT).first()
    return None


def _dnc_target(link: CrmLink) -> tuple[Organization, str] | None:
    """(organization, email) to suppress: the linked outcome's, else the lead's (a lead with no outcome yet can
    still be opted out)."""
    outcome = crm_outcome_find(link=link)
    if outcome is not None:
        return outcome.organization, link.email or outcome.lead.email
    leads = Lead.objects.select_related("organization")
    lead = leads.filter(pk=link.lead_id).first() if link.lead_id else None
    if lead is None and link.email:
        lead = leads.filter(email__iexact=link.email).order_by("-created_at", "-id").first()
    return (lead.organization, link.email or lead.email) if lead else None


# --- Process --------------------------------------------------------------------------------------

TRACKERS: dict[str, Callable[[OutcomeLabel, CrmAction, datetime], object]] = {
    "opportunity": lambda outcome, action, at: tracker.track_opportunity(outcome, at=at, value=action.value),
    "won": lambda outcome, action, at: tracker.track_deal(outcome, at=at, won=True, value=action.value),
    # A lost deal's amount is not recorded: it must not overwrite the value of a deal already won.
    "lost": lambda outcome, action, at: tracker.track_deal(outcome, at=at, won=False),
    "booked": lambda outcome, action, at: tracker.track_meeting(outcome, at=at, state="booked"),
    "completed": lambda outcome, action, at: tracker.track_meeting(outcome, at=at, state="completed"),
    "no_show": lambda outcome, action, at: tracker.track_meeting(outcome, at=at, state="no_show"),
}
ACTIONS: dict[str, Callable[[dict], CrmAction]] = {
    Provider.CRM_GENERIC: generic_action,
    Provider.HUBSPOT: hubspot_action,
    Provider.PIPEDRIVE: pipedrive_action,
    Provider.SALESFORCE: salesforce_action,
}


def _apply(event: WebhookEvent, apply: Callable[[], object]) -> None:
    try:
        apply()
    except (ValueError, ValidationError) as exc:  # bad data does not get better on retry
        mark(event, State.FAILED, str(exc))
        return
    mark(event, State.PROCESSED)


def _do_not_contact(event: WebhookEvent, action: CrmAction) -> None:
    target = _dnc_target(action.link)
    if target is None:
        mark(event, State.UNMATCHED, _unlinked(action.link, what="lead"))
        return
    organization, email = target
    event.organization = organization
    note = f"{event.get_provider_display()} {event.provider_event_id}"
    _apply(
        event,
        lambda: suppress(
            organization=organization,
            kind=Suppression.Kind.EMAIL,
            value=email,
            reason=Suppression.Reason.CRM_DO_NOT_CONTACT,
            note=note,
        ),
    )


def crm_event_process(event: WebhookEvent) -> None:
    """The PROCESSORS entry of every CRM provider: sets the event's state (and organization once linked)."""
    try:
        action = ACTIONS[event.provider](stored_payload(event.raw_body))
    except (ValueError, KeyError, TypeError) as exc:  # a stored body that does not read never will
        mark(event, State.FAILED, f"Unreadable stored event: {exc!r}")
        return
    if not action.kind:
        mark(event, State.IGNORED, action.reason)
        return
    if action.kind == "dnc":
        _do_not_contact(event, action)
        return
    outcome = crm_outcome_find(link=action.link)
    if outcome is None:
        # Kept, not dropped: the sweep retries it once the outcome exists (or an operator links it).
        mark(event, State.UNMATCHED, _unlinked(action.link))
        return
    event.organization = outcome.organization
    _apply(event, lambda: TRACKERS[action.kind](outcome, action, action.at or event.received_at))
