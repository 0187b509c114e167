"""Who must never be contacted: checked right before every send, not only when planning."""

from django.db.models import Q

from agents.models import Lead, Suppression


def suppression_for(*, organization_id: int, email: str = "", phone: str = "") -> Suppression | None:
    """The entry that blocks this address or number (or the address's whole domain), if any."""
    match = Q(pk__in=[])
    if email:
        email = email.strip().lower()
        match |= Q(kind=Suppression.Kind.EMAIL, value=email)
        match |= Q(kind=Suppression.Kind.DOMAIN, value=email.rsplit("@", 1)[-1])
    if phone:
        match |= Q(kind=Suppression.Kind.PHONE, value=phone)
    return Suppression.objects.filter(match, organization_id=organization_id).first()


def lead_suppression(lead: Lead) -> Suppression | None:
    return suppression_for(organization_id=lead.organization_id, email=lead.email, phone=lead.phone)
