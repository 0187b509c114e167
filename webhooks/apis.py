"""The webhook inbox over the API: /api/webhook-events (list, detail) and a staff-only reprocess."""

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from rex_project.api import OrganizationAPIView
from webhooks.common import kept_headers
from webhooks.models import WebhookEvent
from webhooks.reprocess import webhook_event_reprocess

LIST_FIELDS = [
    "id", "provider", "provider_event_id", "organization", "event_type", "signature", "state", "attempts", "error",
    "received_at", "processed_at",
]  # fmt: skip


class WebhookEventOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEvent
        fields = LIST_FIELDS
        read_only_fields = fields


class WebhookEventDetailOutputSerializer(serializers.ModelSerializer):
    headers = serializers.SerializerMethodField()

    class Meta:
        model = WebhookEvent
        fields = [*LIST_FIELDS, "headers", "raw_body"]
        read_only_fields = fields

    def get_headers(self, event: WebhookEvent) -> dict:
        # Stored without credentials since the receivers began dropping them; older rows may still hold some.
        return kept_headers(event.headers) if isinstance(event.headers, dict) else {}


class WebhookEventAPIView(OrganizationAPIView):
    """The caller's organization's events; superusers also see events not yet linked to any organization.

    An event is linked to an organization once it is matched to one of its messages or leads. Until then it has
    no organization and may belong to any tenant: its ``raw_body`` holds another tenant's recipients and replies,
    so only a superuser (who administers every tenant) sees it, to investigate or reprocess an unmatched event.
    Staff of an organization (``is_staff`` without ``is_superuser``) see their organization's events only, like
    every member; ``is_staff`` still lets them reprocess those.
    """

    def scoped(self, queryset: QuerySet) -> QuerySet:
        mine = Q(organization=self.organization)
        if self.request.user.is_superuser:
            mine |= Q(organization__isnull=True)
        return queryset.filter(mine)


class WebhookEventListApi(WebhookEventAPIView, generics.ListAPIView):
    """Received events with their processing state, newest first, paginated ({count, next, previous, results})."""

    class WebhookEventFilterSerializer(serializers.Serializer):
        provider = serializers.ChoiceField(choices=WebhookEvent.Provider.choices, required=False)
        state = serializers.ChoiceField(choices=WebhookEvent.State.choices, required=False)
        event_type = serializers.CharField(max_length=64, required=False)

    queryset = WebhookEvent.objects.all()
    serializer_class = WebhookEventOutputSerializer
    pagination_class = PageNumberPagination

    def get_queryset(self) -> QuerySet[WebhookEvent]:
        filters = self.WebhookEventFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return self.scoped(super().get_queryset().filter(**filters.validated_data)).order_by("-received_at", "-id")

    @extend_schema(parameters=[WebhookEventFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class WebhookEventDetailApi(WebhookEventAPIView):
    @extend_schema(responses=WebhookEventDetailOutputSerializer)
    def get(self, request, event_id: int):
        event = self.get_scoped(WebhookEvent.objects.all(), pk=event_id)
        return Response(WebhookEventDetailOutputSerializer(event).data)


class WebhookEventReprocessApi(WebhookEventAPIView):
    """Staff only: a failed, unmatched or ignored event goes back to received and is processed again."""

    permission_classes = [*OrganizationAPIView.permission_classes, permissions.IsAdminUser]

    @extend_schema(request=None, responses={202: WebhookEventDetailOutputSerializer})
    def post(self, request, event_id: int):
        event = webhook_event_reprocess(event=self.get_scoped(WebhookEvent.objects.all(), pk=event_id))
        return Response(WebhookEventDetailOutputSerializer(event).data, status=status.HTTP_202_ACCEPTED)
