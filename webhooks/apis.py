"""The webhook inbox over the API: /api/webhook-events (list, detail) and a staff-only reprocess."""

from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
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
    """The caller's organization's events; staff also see events not yet linked to any organization."""

    def scoped(self, queryset: QuerySet) -> QuerySet:
        mine = Q(organization=self.organization)
        if self.request.user.is_staff:
            mine |= Q(organization__isnull=True)
        return queryset.filter(mine)


class WebhookEventListApi(WebhookEventAPIView):
    class WebhookEventFilterSerializer(serializers.Serializer):
        provider = serializers.ChoiceField(choices=WebhookEvent.Provider.choices, required=False)
        state = serializers.ChoiceField(choices=WebhookEvent.State.choices, required=False)
        event_type = serializers.CharField(max_length=64, required=False)

    @extend_schema(parameters=[WebhookEventFilterSerializer], responses=WebhookEventOutputSerializer(many=True))
    def get(self, request):
        filters = self.WebhookEventFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        queryset = self.scoped(WebhookEvent.objects.filter(**filters.validated_data)).order_by("-received_at", "-id")
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(WebhookEventOutputSerializer(page, many=True).data)


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
