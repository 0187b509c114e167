"""Writes for organizations, operators and leads. Plain functions, keyword-only, atomic."""

import csv
import io
from dataclasses import dataclass, field

import phonenumbers
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from email_validator import EmailNotValidError, validate_email
from rest_framework.authtoken.models import Token

from agents.models import Campaign, Lead, Membership, Organization

LEAD_FIELDS = (
    "first_name", "last_name", "email", "phone", "title", "company", "industry",
    "company_size", "timezone", "website", "linkedin_url", "lost_reason", "last_engaged_at",
)  # fmt: skip


@transaction.atomic
def operator_create(
    *, organization_name: str, email: str, staff: bool = False, password: str | None = None
) -> tuple[Membership, Token]:
    """Create (or reuse) the organization and the user in it; return the membership and API token."""
    email = normalize_email(email)
    organization = organization_get_or_create(name=organization_name)
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=email, defaults={"email": email})
    if staff and not user.is_staff:
        user.is_staff = True
        user.is_superuser = True
    if password:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.full_clean()
    user.save()
    membership, _ = Membership.objects.get_or_create(user=user, defaults={"organization": organization})
    if membership.organization_id != organization.id:
        raise ValidationError({"email": f"{email} already belongs to organization '{membership.organization}'."})
    token, _ = Token.objects.get_or_create(user=user)
    return membership, token


def organization_get_or_create(*, name: str) -> Organization:
    """An organization starts with the default decision rules and an ICP profile."""
    from agents.decisions.rules import rules_install_defaults

    organization, created = Organization.objects.get_or_create(name=name.strip())
    if created:
        rules_install_defaults(organization=organization)
    return organization


def normalize_email(value: str) -> str:
    """Validated, lower-cased address (syntax only; no DNS lookups on import)."""
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationError({"email": str(exc)}) from exc


def normalize_phone(value: str, *, default_region: str = "US") -> str:
    """E.164, e.g. '+14155550100'; national numbers are read in ``default_region``."""
    value = (value or "").strip()
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError({"phone": f"'{value}' is not a phone number: {exc}"}) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError({"phone": f"'{value}' is not a valid phone number."})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _lead_build(*, organization: Organization, data: dict) -> Lead:
    values = {name: data[name] for name in LEAD_FIELDS if data.get(name) not in (None, "")}
    values["email"] = normalize_email(str(data.get("email") or ""))
    if values.get("phone"):
        values["phone"] = normalize_phone(str(values["phone"]))
    lead = Lead(organization=organization, **values)
    # Uniqueness is checked by the callers against what is stored (and within an import file).
    lead.full_clean(validate_unique=False, validate_constraints=False)
    return lead


@transaction.atomic
def lead_create(*, organization: Organization, **data) -> Lead:
    lead = _lead_build(organization=organization, data=data)
    if Lead.objects.filter(organization=organization, email=lead.email).exists():
        raise ValidationError({"email": f"A lead with {lead.email} already exists."})
    lead.save()
    return lead


@dataclass
class ImportResult:
    created: list[Lead] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {"row": n, "email": ..., "errors": {field: [msg]}}


@transaction.atomic
def leads_import(*, organization: Organization, rows: list[dict]) -> ImportResult:
    """Validate every row, skip duplicates (in the file and already stored), create the rest in one go."""
    result = ImportResult()
    existing = set(Lead.objects.filter(organization=organization).values_list("email", flat=True))
    for number, row in enumerate(rows, start=1):
        try:
            lead = _lead_build(organization=organization, data=row)
        except ValidationError as exc:
            result.rejected.append({"row": number, "email": row.get("email", ""), "errors": exc.message_dict})
            continue
        if lead.email in existing:
            result.rejected.append({"row": number, "email": lead.email, "errors": {"email": ["duplicate"]}})
            continue
        existing.add(lead.email)
        result.created.append(lead)
    Lead.objects.bulk_create(result.created, batch_size=1000)
    return result


@transaction.atomic
def lead_update(*, lead: Lead, **data) -> Lead:
    merged = {name: getattr(lead, name) for name in LEAD_FIELDS} | data
    updated = _lead_build(organization=lead.organization, data=merged)
    clash = Lead.objects.filter(organization=lead.organization, email=updated.email).exclude(pk=lead.pk)
    if clash.exists():
        raise ValidationError({"email": f"A lead with {updated.email} already exists."})
    for name in LEAD_FIELDS:
        setattr(lead, name, getattr(updated, name))
    lead.save()
    return lead


def leads_parse_csv(*, text: str) -> list[dict]:
    """Rows of a CSV with a header line; empty cells are left out."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "email" not in [name.strip() for name in reader.fieldnames]:
        raise ValidationError({"file": "The CSV needs a header row with at least an 'email' column."})
    return [{k.strip(): v.strip() for k, v in row.items() if k and v and v.strip()} for row in reader]


@transaction.atomic
def campaign_save(*, organization: Organization, campaign: Campaign | None = None, created_by=None, **data) -> Campaign:
    lead_ids = data.pop("lead_ids", None)
    campaign = campaign or Campaign(organization=organization, created_by=created_by)
    for name, value in data.items():
        setattr(campaign, name, value)
    campaign.full_clean(exclude=["leads"])
    campaign.save()
    if lead_ids is not None:
        leads = list(Lead.objects.filter(organization=organization, pk__in=lead_ids).values_list("pk", flat=True))
        missing = sorted(set(lead_ids) - set(leads))
        if missing:
            raise ValidationError({"lead_ids": f"Unknown lead ids: {missing}"})
        campaign.leads.set(leads)
    return campaign
