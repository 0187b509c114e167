"""What a CRM webhook leaves out, read from the CRM's REST API in the Celery task (never while answering the
webhook).

HubSpot's webhooks carry object ids only, and Pipedrive's deals carry a person id while custom fields are keyed by
40-character hashes: REX's ids rarely come with the event. When an event has no REX ids or email, or names a deal
stage REX cannot read, the deal, contact or person is fetched:

* HubSpot, with a private app's access token (``HUBSPOT_ACCESS_TOKEN``; scopes ``crm.objects.deals.read`` and
  ``crm.objects.contacts.read``): ``GET /crm/v3/objects/deals/{id}?properties=...&associations=contacts``, then
  the deal's contact (``GET /crm/v3/objects/contacts/{id}?properties=email,hs_email_optout``). A deal event is
  also completed with the deal's ``amount`` and ``closedate`` whenever the token is set.
* Pipedrive, with an API token (``PIPEDRIVE_API_TOKEN``, sent as the ``x-api-token`` header):
  ``GET /api/v2/persons/{id}``, for the person's primary email.

A lookup that cannot answer raises ``LookupFailed``: the event stays unmatched with the reason, and the sweep
retries it. After a network error, a 5xx or a 429 the provider is left alone for a while (the 429's Retry-After,
else COOL_DOWN_SECONDS) so that a batch does not wait out one timeout per event.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

import requests
from django.conf import settings

from webhooks.crm_formats import (
    CONTACT,
    DEAL,
    HUBSPOT_STAGES,
    RESOLVE_STAGE,
    CrmAction,
    crm_email,
    crm_id,
    crm_money,
    crm_time,
    pipedrive_email,
)

logger = logging.getLogger("rex.webhooks")

TIMEOUT = (3.05, 10.0)  # seconds to connect, seconds to read
COOL_DOWN_SECONDS = 30
MAX_COOL_DOWN_SECONDS = 300
HUBSPOT_DEAL_PROPERTIES = "amount,closedate,createdate,dealstage,hs_is_closed_won,hs_is_closed"
HUBSPOT_CONTACT_PROPERTIES = "email,hs_email_optout"
HUBSPOT_PRIMARY_CONTACT = "deal_to_contact"  # the association label of a deal's primary contact


class LookupFailed(Exception):
    """The CRM could not tell. ``retryable``: a network error, a 5xx or a 429, which a later attempt may not
    meet; a 404 or a refused token is not (the event still waits as unmatched: someone may fix the data)."""

    def __init__(self, reason: str, *, retryable: bool = True):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class CrmApi:
    name: str
    token_setting: str
    url_setting: str
    auth: Callable[[str], dict[str, str]]


APIS = {
    "hubspot": CrmApi(
        "HubSpot", "HUBSPOT_ACCESS_TOKEN", "HUBSPOT_API_BASE_URL", lambda t: {"Authorization": f"Bearer {t}"}
    ),
    "pipedrive": CrmApi("Pipedrive", "PIPEDRIVE_API_TOKEN", "PIPEDRIVE_API_URL", lambda t: {"x-api-token": t}),
}
# Provider name -> (time.monotonic() until which it is not called, the failure that paused it).
_paused: dict[str, tuple[float, str]] = {}


def lookup_pauses_reset() -> None:
    """Forget the paused providers (tests; a worker restart does the same)."""
    _paused.clear()


def _lenient(parse: Callable, value):
    try:
        return parse(value)
    except ValueError:
        return None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


# --- HTTP -----------------------------------------------------------------------------------------


def _missing_setting(api: CrmApi) -> str:
    return next((name for name in (api.token_setting, api.url_setting) if not getattr(settings, name, "")), "")


def _pause(api: CrmApi, reason: str, retry_after: str | None) -> LookupFailed:
    seconds = COOL_DOWN_SECONDS
    if retry_after and retry_after.strip().isdigit():
        seconds = max(1, min(int(retry_after), MAX_COOL_DOWN_SECONDS))
    _paused[api.name] = (time.monotonic() + seconds, reason)
    logger.warning("%s; no %s lookups for %s s", reason, api.name, seconds)
    return LookupFailed(f"{reason}; retried later.")


def _answer(api: CrmApi, response: requests.Response, what: str) -> dict:
    status = response.status_code
    if status == 429 or status >= 500:
        raise _pause(api, f"{api.name} API answered {status} looking up {what}", response.headers.get("Retry-After"))
    if status == 404:
        raise LookupFailed(
            f"{what} was not found in {api.name} (404): deleted, merged or in another account.", retryable=False
        )
    if status in (401, 403):
        reason = f"{api.name} refused {api.token_setting} ({status}) looking up {what}: check the token and its scopes."
        raise LookupFailed(reason, retryable=False)
    if status != 200:
        raise LookupFailed(
            f"{api.name} API answered {status} looking up {what} (check {api.url_setting}).", retryable=False
        )
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise LookupFailed(f"{api.name} API did not answer {what} with a JSON object.", retryable=False)
    return body


def _get(provider: str, path: str, *, what: str, params: dict | None = None) -> dict:
    """The JSON object at ``path``. Redirects are not followed: the token header must not go to another host."""
    api = APIS[provider]
    until, reason = _paused.get(api.name, (0.0, ""))
    if time.monotonic() < until:
        raise LookupFailed(f"{reason}; {api.name} lookups are paused, retried later.")
    url = str(getattr(settings, api.url_setting)).rstrip("/") + path
    headers = {"Accept": "application/json", **api.auth(getattr(settings, api.token_setting))}
    try:
        response = requests.get(url, params=params, headers=headers, timeout=TIMEOUT, allow_redirects=False)
    except requests.RequestException as exc:
        raise _pause(api, f"{api.name} API unreachable looking up {what} ({type(exc).__name__})", None) from None
    return _answer(api, response, what)


# --- HubSpot --------------------------------------------------------------------------------------


def _hubspot_contact_email(contact_id: str, *, what: str) -> str:
    contact = _get(
        "hubspot",
        f"/crm/v3/objects/contacts/{contact_id}",
        what=what,
        params={"properties": HUBSPOT_CONTACT_PROPERTIES},
    )
    email = _lenient(crm_email, _dict(contact.get("properties")).get("email"))
    if not email:
        raise LookupFailed(f"{what} has no email address in HubSpot.", retryable=False)
    return email


def _hubspot_deal_contact(deal: dict, subject: str) -> str:
    """The deal's primary contact (association type ``deal_to_contact``), else its first one."""
    results = _dict(_dict(deal.get("associations")).get("contacts")).get("results")
    entries = [item for item in results if isinstance(item, dict)] if isinstance(results, list) else []
    entries.sort(key=lambda item: item.get("type") != HUBSPOT_PRIMARY_CONTACT)
    contact_id = next((found for item in entries if (found := _lenient(crm_id, item.get("id")))), None)
    if contact_id is None:
        raise LookupFailed(f"{subject} has no contact in HubSpot: REX links a deal by its contact.", retryable=False)
    return str(contact_id)


def _hubspot_closed(properties: dict) -> str:
    """won, lost or opportunity (open) from the pipeline-independent properties, else from a default stage id."""
    if str(properties.get("hs_is_closed_won")).lower() == "true":
        return "won"
    if str(properties.get("hs_is_closed")).lower() == "true":
        return "lost"
    return HUBSPOT_STAGES.get(str(properties.get("dealstage") or "").lower(), "opportunity")


def _hubspot_deal_facts(kind: str, properties: dict, action: CrmAction) -> tuple[datetime | None, Decimal | None]:
    """(at, value): a won deal's closedate and amount, a lost deal's closedate (a lost amount is not recorded), an
    opportunity's createdate and amount (an amount change event's own value first: the value it announces)."""
    amount = _lenient(crm_money, properties.get("amount"))
    if kind == "won":
        return _lenient(crm_time, properties.get("closedate")) or action.at, amount
    if kind == "lost":
        return _lenient(crm_time, properties.get("closedate")) or action.at, None
    if kind == "opportunity":
        created_at = _lenient(crm_time, properties.get("createdate")) or action.at
        return created_at, action.value if action.value is not None else amount
    return action.at, action.value


def _hubspot_deal(action: CrmAction) -> CrmAction:
    subject = action.link.subject
    path = f"/crm/v3/objects/deals/{action.lookup.object_id}"
    deal = _get(
        "hubspot", path, what=subject, params={"properties": HUBSPOT_DEAL_PROPERTIES, "associations": "contacts"}
    )
    properties = _dict(deal.get("properties"))
    kind = _hubspot_closed(properties) if action.kind == RESOLVE_STAGE else action.kind
    link = action.link
    if not link.linkable:
        contact_id = _hubspot_deal_contact(deal, subject)
        link = replace(
            link, email=_hubspot_contact_email(contact_id, what=f"HubSpot contact {contact_id} of {subject}")
        )
    at, value = _hubspot_deal_facts(kind, properties, action)
    return replace(action, kind=kind, link=link, at=at, value=value)


def _hubspot_contact(action: CrmAction) -> CrmAction:
    if action.link.linkable:
        return action
    email = _hubspot_contact_email(action.lookup.object_id, what=action.link.subject)
    return replace(action, link=replace(action.link, email=email))


# --- Pipedrive ------------------------------------------------------------------------------------


def _pipedrive_person(action: CrmAction) -> CrmAction:
    if action.link.linkable:
        return action
    person_id, subject = action.lookup.object_id, action.link.subject
    what = subject if subject == f"Pipedrive person {person_id}" else f"Pipedrive person {person_id} of {subject}"
    email = pipedrive_email(_dict(_get("pipedrive", f"/api/v2/persons/{person_id}", what=what).get("data")))
    if not email:
        raise LookupFailed(f"{what} has no email address in Pipedrive.", retryable=False)
    return replace(action, link=replace(action.link, email=email))


# --- Entry point ----------------------------------------------------------------------------------

COMPLETERS: dict[tuple[str, str], Callable[[CrmAction], CrmAction]] = {
    ("hubspot", DEAL): _hubspot_deal,
    ("hubspot", CONTACT): _hubspot_contact,
    ("pipedrive", "person"): _pipedrive_person,
}


def _not_configured(action: CrmAction, api: CrmApi, missing: str) -> LookupFailed:
    if action.kind == RESOLVE_STAGE:
        why = f"{action.link.subject} moved to a deal stage REX cannot read (a custom pipeline's)"
    else:
        why = f"{action.link.subject} carries no REX outcome id, REX lead id or contact email"
    return LookupFailed(f"{why}: set {missing} so that REX can look it up in {api.name}.", retryable=False)


def crm_action_complete(action: CrmAction) -> CrmAction:
    """``action`` with what the CRM's API adds: the contact email when the event has no REX ids or email, won/lost/
    open for a stage REX cannot read, and a HubSpot deal's amount and close date. A lookup only the deal's facts
    depend on is skipped without a token, and a lasting failure of it (404, refused token) records the event
    without them; any other failure raises LookupFailed."""
    lookup = action.lookup
    completer = COMPLETERS.get((lookup.provider, lookup.object_type)) if lookup else None
    required = action.kind == RESOLVE_STAGE or not action.link.linkable
    if completer is None or not (required or lookup.object_type == DEAL):
        return action
    api = APIS[lookup.provider]
    if missing := _missing_setting(api):
        if required:
            raise _not_configured(action, api, missing)
        return action
    try:
        return completer(action)
    except LookupFailed as exc:
        if required or exc.retryable:
            raise
        logger.warning("%s: recorded without the deal's amount and close date: %s", action.link.subject, exc.reason)
        return action
