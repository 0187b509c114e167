"""The one way every API view reaches data: through the caller's organization."""

from django.db.models import Model, QuerySet
from django.shortcuts import get_object_or_404
from rest_framework import permissions, serializers
from rest_framework.exceptions import PermissionDenied
from rest_framework.views import APIView

from agents.models import Organization

# The largest primary key a database holds (a signed 64-bit integer); a larger id is a 400, not an overflow.
MAX_ID = 2**63 - 1


def id_field(**kwargs) -> serializers.IntegerField:
    """A row's id in a request: a positive integer the database can hold."""
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def organization_of(user) -> Organization:
    membership = getattr(user, "membership", None)
    if membership is None:
        raise PermissionDenied("Your user belongs to no organization; ask an admin to add you to one.")
    return membership.organization


class HasOrganization(permissions.BasePermission):
    message = "Your user belongs to no organization; ask an admin to add you to one."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and hasattr(request.user, "membership"))


class OrganizationAPIView(APIView):
    """Base for every REX API view: authenticated, in an organization, and scoped to it.

    Use ``self.scoped(queryset)`` for lists and ``self.get_scoped(queryset, pk=...)`` for one
    row; another organization's row is a 404, never a 403, so ids do not leak.
    """

    permission_classes = [permissions.IsAuthenticated, HasOrganization]

    @property
    def organization(self) -> Organization:
        return organization_of(self.request.user)

    def scoped(self, queryset: QuerySet) -> QuerySet:
        return queryset.filter(organization=self.organization)

    def get_scoped(self, queryset: QuerySet, **lookup) -> Model:
        return get_object_or_404(self.scoped(queryset), **lookup)
