"""What every send must carry and whom it must never reach: CAN-SPAM footer, RFC 8058 one-click
unsubscribe, SMS opt-out language, suppression entries, and stopping a sequence when the lead replies.
"""

import logging
import secrets
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import DomainNameValidator, validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from agents.decisions.lifecycle import lead_can, lead_transition
from agents.models import Campaign, Lead, Message, Organization, Suppression
from agents.services import normalize_phone
from agents.suppressions import lead_suppression

logger = logging.getLogger("rex.compliance")

UNSUBSCRIBE_SALT = "rex.unsubscribe"
# RFC 3676 signature separator: mail clients dim what follows and reply parsers drop it.
FOOTER_SEPARATOR = "\n\n-- \n"
FOOTER_UNSUBSCRIBE = "Unsubscribe: "
SMS_OPT_OUT = " Reply STOP to opt out."

SMS_STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
SMS_START_WORDS = frozenset({"START", "UNSTOP", "YES"})

_validate_domain = DomainNameValidator()


# --- Unsubscribe links --------------------------------------------------------------------------


def unsubscribe_token(*, organization_id: int, email: str) -> str:
    # A plain Signer (no timestamp, no expiry): a link in a years-old email must still work, and the
    # same address always gets the same token, so re-applying compliance to a message changes nothing.
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign_object([organization_id, email.strip().lower()])


def unsubscribe_target(token: str) -> tuple[int, str]:
    """``(organization_id, email)`` of a token; raises ``signing.BadSignature`` for anything forged or mangled."""
    value = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign_object(token)
    match value:
        case [int() as organization_id, str() as email] if email:
            return organization_id, email
    raise signing.BadSignature("Unsubscribe token has an unexpected shape.")


def unsubscribe_url(message: Message) -> str:
    email = message.to_address or message.lead.email
    token = unsubscribe_token(organization_id=message.organization_id, email=email)
    return f"{settings.PUBLIC_BASE_URL}/unsubscribe/{token}"


# --- What a send carries ------------------------------------------------------------------------


def _sending_domain(message: Message) -> str:
    if message.sending_domain_id:
        return message.sending_domain.domain
    if "@" in message.from_address:
        return message.from_address.rsplit("@", 1)[-1].strip(" >").lower()
    return ""


def _original_body(body: str) -> str:
    before, separator, footer = body.rpartition(FOOTER_SEPARATOR)
    if separator and f"\n{FOOTER_UNSUBSCRIBE}" in f"\n{footer}":
        return before
    return body


def email_compliance(message: Message) -> tuple[str, dict, str]:
    """``(body, headers, rfc_message_id)`` for an email about to go out.

    Idempotent: the footer replaces an earlier one instead of stacking, and a Message-ID REX already gave
    this message is kept (a retried send must keep the id replies will quote).
    """
    organization: Organization = message.organization
    url = unsubscribe_url(message)
    if not organization.postal_address.strip():
        logger.warning("organization %s has no postal address: CAN-SPAM requires one in every email", organization.pk)
    footer = "\n".join(
        line for line in (organization.name, organization.postal_address.strip(), f"{FOOTER_UNSUBSCRIBE}{url}") if line
    )
    body = f"{_original_body(message.body).rstrip()}{FOOTER_SEPARATOR}{footer}"

    domain = _sending_domain(message) or urlsplit(settings.PUBLIC_BASE_URL).hostname or "localhost"
    rfc_message_id = message.rfc_message_id
    if not rfc_message_id.startswith(f"<rex-{message.pk}-"):
        rfc_message_id = f"<rex-{message.pk}-{secrets.token_hex(8)}@{domain}>"
    headers = {
        **(message.headers or {}),
        # Only the https target: nothing reads an unsubscribe@ mailbox, and RFC 8058 one-click needs https.
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Message-ID": rfc_message_id,
    }
    return body, headers, rfc_message_id


def sms_compliance(message: Message) -> str:
    """The body, with opt-out language if this is the first SMS REX sends to the number in the organization."""
    if message.body.endswith(SMS_OPT_OUT):
        return message.body
    earlier = Message.objects.filter(
        organization_id=message.organization_id,
        channel=Message.Channel.SMS,
        to_address=message.to_address,
        status=Message.Status.SENT,
    ).exclude(pk=message.pk)
    if earlier.exists():
        return message.body
    return f"{message.body.rstrip()}{SMS_OPT_OUT}"


# --- Suppression ----------------------------------------------------------------------------------


def suppression_normalize(*, kind: str, value: str) -> str:
    """The stored form of a value (lower-case email or domain, E.164 phone); ValidationError if it is not one."""
    value = (value or "").strip()
    if kind == Suppression.Kind.EMAIL:
        value = value.lower()
        validate_email(value)
    elif kind == Suppression.Kind.DOMAIN:
        value = value.lower().lstrip("@").rstrip(".")
        _validate_domain(value)
    elif kind == Suppression.Kind.PHONE:
        value = normalize_phone(value)
        if not value:
            raise ValidationError("A phone number is required.")
    else:
        raise ValidationError(f"Unknown suppression kind '{kind}'.")
    return value


def _matching_leads(*, organization: Organization, kind: str, value: str):
    leads = Lead.objects.filter(organization=organization)
    if kind == Suppression.Kind.EMAIL:
        return leads.filter(email__iexact=value)
    if kind == Suppression.Kind.DOMAIN:
        return leads.filter(email__iendswith=f"@{value}")
    return leads.filter(phone=value)


def _recipient_match(*, kind: str, value: str) -> Q:
    if kind == Suppression.Kind.EMAIL:
        return Q(to_address__iexact=value)
    if kind == Suppression.Kind.DOMAIN:
        return Q(to_address__iendswith=f"@{value}")
    return Q(to_address=value)


def _cancel_queued(messages, *, error: str) -> int:
    # Conditional on "queued": a message a worker already claimed is left alone (its own check decides).
    return messages.filter(status=Message.Status.QUEUED).update(
        status=Message.Status.CANCELLED, error=error[:2000], updated_at=timezone.now()
    )


@transaction.atomic
def suppress(*, organization: Organization, kind: str, value: str, reason: str, note: str = "") -> Suppression:
    """Never contact this address, number or domain again in the organization (idempotent).

    Cancels the contact's queued messages and moves matching leads to ``suppressed``.
    """
    value = suppression_normalize(kind=kind, value=value)
    suppression = Suppression.objects.filter(organization=organization, kind=kind, value=value).first()
    if suppression is None:
        suppression = Suppression(organization=organization, kind=kind, value=value, reason=reason, note=note[:255])
        suppression.full_clean(validate_constraints=False)
        try:
            with transaction.atomic():
                suppression.save()
        except IntegrityError:  # recorded meanwhile by a concurrent request (e.g. a repeated one-click POST)
            suppression = Suppression.objects.get(organization=organization, kind=kind, value=value)

    leads = list(_matching_leads(organization=organization, kind=kind, value=value))
    messages = Message.objects.filter(organization=organization).filter(
        _recipient_match(kind=kind, value=value) | Q(lead__in=[lead.pk for lead in leads])
    )
    cancelled = _cancel_queued(messages, error=f"suppressed: {suppression}")
    for lead in leads:
        if lead.state != Lead.State.SUPPRESSED and lead_can(lead, "suppress"):
            lead_transition(lead, "suppress")
    logger.info("suppressed %s (org %s); %d queued message(s) cancelled", suppression, organization.pk, cancelled)
    return suppression


@transaction.atomic
def unsuppress(*, organization: Organization, kind: str, value: str, reasons: list[str] | None = None) -> bool:
    """Remove the entry (a re-subscribe); leads no other entry still blocks go back to ``new``. With ``reasons``,
    only an entry recorded for one of them is removed (a provider opt-in lifts an opt-out, not a hard bounce)."""
    value = suppression_normalize(kind=kind, value=value)
    entries = Suppression.objects.filter(organization=organization, kind=kind, value=value)
    if reasons is not None:
        entries = entries.filter(reason__in=reasons)
    deleted, _ = entries.delete()
    for lead in _matching_leads(organization=organization, kind=kind, value=value):
        if lead.state == Lead.State.SUPPRESSED and lead_suppression(lead) is None and lead_can(lead, "resubscribe"):
            lead_transition(lead, "resubscribe")
    return bool(deleted)


def sms_keyword(body: str) -> str | None:
    """``"stop"`` or ``"start"`` for a carrier opt-out/opt-in keyword; only the whole message counts."""
    word = (body or "").strip().upper()
    if word in SMS_STOP_WORDS:
        return "stop"
    if word in SMS_START_WORDS:
        return "start"
    return None


# --- Stop on reply ------------------------------------------------------------------------------


def stop_on_reply(*, lead: Lead) -> int:
    """Cancel the lead's remaining queued messages (every mission); with a campaign's
    ``stop_company_on_reply``, also those of every lead at the same company. Returns how many were cancelled."""
    with transaction.atomic():
        cancelled = _cancel_queued(Message.objects.filter(lead=lead), error=f"stopped: lead {lead.pk} replied")
        company = lead.company.strip()
        if not company:
            return cancelled
        stops_company = (
            Campaign.objects.filter(organization_id=lead.organization_id, stop_company_on_reply=True)
            .filter(Q(leads=lead) | Q(missions__mission_leads__lead=lead) | Q(messages__lead=lead))
            .exists()
        )
        if stops_company:
            same_company = Message.objects.filter(
                organization_id=lead.organization_id, lead__company__iexact=company
            ).exclude(lead=lead)
            cancelled += _cancel_queued(
                same_company, error=f"stopped: lead {lead.pk} at the same company ({company}) replied"
            )
    return cancelled
