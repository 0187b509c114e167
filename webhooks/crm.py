"""CRM webhooks (HubSpot, Pipedrive, Salesforce and REX's generic JSON): detect the format, verify the request,
store one WebhookEvent per CRM event; later, in the Celery task, link each event to an outcome and record it.

Each endpoint records its own kind of event: deals (opportunity, won, lost) only from /webhooks/crm/deals,
meetings only from /webhooks/crm/meetings, a contact's do-not-contact from either. An event of the other kind, or
one REX does not read (a HubSpot association change), is stored as ignored with the reason; the rest of the
batch goes on. An operator can still reprocess such an event: it is then recorded like any other.

Linking, strongest first: a REX outcome id, else a REX lead id (that lead's most recent outcome), else the contact
email. When the event carries none of them (HubSpot sends object ids only; Pipedrive a person id), the CRM's API
is asked for the contact's email (webhooks.crm_lookup). An event that finds no outcome yet is kept as unmatched
and retried by the sweep; a do-not-contact needs only a lead.

Known limitation: the CRM secrets are global, so a request does not say which REX organization it is for. An
email known in several organizations links to the one whose outcome has the most recent message (logged).
"""

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db.models import F
from django.utils import timezone

from agents.compliance import suppress
from agents.models import Lead, Organization, Suppression
from outcomes import tracker
from outcomes.models import OutcomeLabel
from webhooks.common import MalformedPayload, kept_headers, mark
from webhooks.crm_formats import (
    CrmAction,
    CrmLink,
    Incoming,
    endpoint_checked,
    generic_action,
    generic_events_parse,
    hubspot_action,
    hubspot_events_parse,
    hubspot_shaped,
    pipedrive_action,
    pipedrive_events_parse,
    pipedrive_shaped,
    salesforce_action,
    salesforce_notifications_parse,
    stored_payload,
)
from webhooks.crm_lookup import LookupFailed, crm_action_complete
from webhooks.models import WebhookEvent
from webhooks.signatures import (
    HUBSPOT_SIGNATURE_HEADER,
    hubspot_signature_check,
    pipedrive_basic_auth_check,
    rex_hmac_signature_check,
    salesforce_organization_check,
    salesforce_token_check,
)

logger = logging.getLogger("rex.webhooks")

Provider = WebhookEvent.Provider
State = WebhookEvent.State
# Most recent first: the outcome a CRM event about a lead most likely follows from.
RECENT = (F("sent_at").desc(nulls_last=True), "-created_at", "-id")
BOM_AND_SPACE = b"\xef\xbb\xbf \t\r\n"


@dataclass(frozen=True)
class CrmReceipt:
    """``new_ids``: the new events to process (events stored as ignored are not in it)."""

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
    """``(provider, parsed JSON body)`` (None for Salesforce's XML): HubSpot sends a JSON array of subscription
    events (or signs with its v3 header), Pipedrive an object with ``meta.entity`` and ``data`` (v1:
    ``meta.object`` and ``current``), Salesforce a SOAP envelope; any other JSON is the generic format (which may
    have a ``meta`` key of its own)."""
    if raw_body.lstrip(BOM_AND_SPACE).startswith(b"<"):
        return Provider.SALESFORCE, None
    try:
        body = json.loads(raw_body)
    except ValueError as exc:  # also UnicodeDecodeError
        raise MalformedPayload(f"Body is neither JSON nor a Salesforce SOAP message: {exc}") from None
    except RecursionError:
        raise MalformedPayload("Body is nested too deeply.") from None
    if headers.get(HUBSPOT_SIGNATURE_HEADER) or hubspot_shaped(body):
        return Provider.HUBSPOT, body
    if pipedrive_shaped(body):
        return Provider.PIPEDRIVE, body
    return Provider.CRM_GENERIC, body


def _generic(request: CrmRequest, body) -> tuple[str, list[Incoming]]:
    signature = rex_hmac_signature_check(
        raw_body=request.raw_body, headers=request.headers, setting="CRM_WEBHOOK_SECRET"
    )
    return signature, generic_events_parse(body=body)


def _hubspot(request: CrmRequest, body) -> tuple[str, list[Incoming]]:
    signature = hubspot_signature_check(
        method=request.method, uri=request.uri, raw_body=request.raw_body, headers=request.headers
    )
    return signature, hubspot_events_parse(body=body)


def _pipedrive(request: CrmRequest, body) -> tuple[str, list[Incoming]]:
    signature = pipedrive_basic_auth_check(headers=request.headers)
    return signature, pipedrive_events_parse(body=body)


def _salesforce(request: CrmRequest, body) -> tuple[str, list[Incoming]]:
    """The shared token of the endpoint URL first; then the envelope, and the organization id inside it."""
    token = salesforce_token_check(uri=request.uri)
    organization_id, incoming = salesforce_notifications_parse(raw_body=request.raw_body)
    organization = salesforce_organization_check(organization_id=organization_id)
    valid = token == organization == WebhookEvent.Signature.VALID
    return (WebhookEvent.Signature.VALID if valid else WebhookEvent.Signature.NOT_CONFIGURED), incoming


RECEIVERS: dict[str, Callable[[CrmRequest, object], tuple[str, list[Incoming]]]] = {
    Provider.CRM_GENERIC: _generic,
    Provider.HUBSPOT: _hubspot,
    Provider.PIPEDRIVE: _pipedrive,
    Provider.SALESFORCE: _salesforce,
}


def _row(provider: str, item: Incoming, headers: dict, signature: str) -> WebhookEvent:
    row = WebhookEvent(
        provider=provider,
        provider_event_id=item.provider_event_id,
        event_type=item.event_type[:64],
        raw_body=json.dumps(item.payload),
        headers=headers,
        signature=signature,
    )
    if item.ignored:  # stored for the record, never processed
        row.state, row.error, row.processed_at = State.IGNORED, item.ignored, timezone.now()
    return row


def crm_events_store(*, provider: str, incoming: list[Incoming], headers: dict, signature: str) -> list[int]:
    """One WebhookEvent per CRM event (a repeat of a provider event id is ignored). Returns the ids of the new
    rows to process (not those stored as ignored)."""
    kept = kept_headers(headers)
    rows = {item.provider_event_id: _row(provider, item, kept, signature) for item in incoming}
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
    incoming = [endpoint_checked(item, request.endpoint) for item in incoming]
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


def _several_organizations(link: CrmLink, chosen: Organization) -> None:
    """Log when the email of an event is a lead's in more than one organization (the CRM secrets are global: the
    request cannot say which organization it is for)."""
    count = Lead.objects.filter(email__iexact=link.email).values("organization_id").distinct().count()
    if count > 1:
        logger.warning(
            "%s: %s is a lead in %s organizations; linked to organization %s (the most recent message)",
            link.subject,
            link.email,
            count,
            chosen.pk,
        )


def crm_outcome_find(*, link: CrmLink) -> OutcomeLabel | None:
    outcomes = OutcomeLabel.objects.select_related("organization", "lead", "message")
    if link.outcome_id and (outcome := outcomes.filter(pk=link.outcome_id).first()):
        return outcome
    if link.lead_id and (outcome := outcomes.filter(lead_id=link.lead_id).order_by(*RECENT).first()):
        return outcome
    if link.email and (outcome := outcomes.filter(lead__email__iexact=link.email).order_by(*RECENT).first()):
        _several_organizations(link, outcome.organization)
        return outcome
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
        if lead is not None:
            _several_organizations(link, lead.organization)
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


def _stored_action(event: WebhookEvent) -> CrmAction | None:
    """What the stored event asks for, completed from the CRM's API when the event lacks it; None once the event
    is marked (failed, ignored, or unmatched because the lookup could not answer)."""
    try:
        action = ACTIONS[event.provider](stored_payload(event.raw_body))
    except (ValueError, KeyError, TypeError) as exc:  # a stored body that does not read never will
        mark(event, State.FAILED, f"Unreadable stored event: {exc!r}")
        return None
    if not action.kind:
        mark(event, State.IGNORED, action.reason)
        return None
    try:
        action = crm_action_complete(action)
    except LookupFailed as exc:
        # Kept, not dropped: the sweep retries it (the CRM may answer later, or the setting be filled in).
        mark(event, State.UNMATCHED, exc.reason)
        return None
    if action.kind != "dnc" and action.kind not in TRACKERS:
        mark(event, State.IGNORED, f"{action.link.subject}: nothing REX can record ({action.kind}).")
        return None
    return action


def crm_event_process(event: WebhookEvent) -> None:
    """The PROCESSORS entry of every CRM provider: sets the event's state (and organization once linked)."""
    action = _stored_action(event)
    if action is None:
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
