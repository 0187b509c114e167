"""Reads for leads and campaigns."""

from django.db.models import QuerySet

from agents.models import Lead, Organization


def lead_list(*, organization: Organization, filters: dict | None = None) -> QuerySet[Lead]:
    filters = filters or {}
    queryset = Lead.objects.filter(organization=organization)
    for name in ("state", "industry", "company"):
        if filters.get(name):
            queryset = queryset.filter(**{name: filters[name]})
    if filters.get("search"):
        queryset = queryset.filter(email__icontains=filters["search"].lower())
    return queryset.order_by("-created_at", "-id")
