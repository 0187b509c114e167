"""Who must never be contacted: checked right before every send, not only when planning."""

from agents.models import Lead, Suppression


def suppression_for(*, organization_id: int, email: str = "", phone: str = "") -> Suppression | None:
    """The entry that blocks this address or number (or the address's whole domain), if any."""
    wanted = set()
    if email:
        email = email.strip().lower()
        wanted |= {(Suppression.Kind.EMAIL, email), (Suppression.Kind.DOMAIN, email.rsplit("@", 1)[-1])}
    if phone:
        wanted.add((Suppression.Kind.PHONE, phone))
    if not wanted:
        return None
    # One indexed lookup by value; the kind is matched here (a value is rarely stored under two kinds).
    candidates = Suppression.objects.filter(organization_id=organization_id, value__in={v for _, v in wanted})
    return next((entry for entry in candidates if (entry.kind, entry.value) in wanted), None)


def lead_suppression(lead: Lead) -> Suppression | None:
    return suppression_for(organization_id=lead.organization_id, email=lead.email, phone=lead.phone)
