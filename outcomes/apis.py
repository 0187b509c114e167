"""Outcome labels and what works: /api/outcomes and /api/analytics/*."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from agents.models import Campaign, Message
from agents.selectors import decision_stats
from outcomes.models import OutcomeLabel
from outcomes.selectors import DEFAULT_MIN_SAMPLE, METRICS, agent_performance, strategy_leaderboard
from outcomes.serializers import (
    AgentPerformanceOutputSerializer,
    OutcomeLabelOutputSerializer,
    WinningStrategiesOutputSerializer,
)
from rex_project.api import OrganizationAPIView

# Query parameter -> model lookup; the others are foreign keys (``campaign`` -> ``campaign_id``).
FILTER_LOOKUPS = {"label": "training_label", "channel": "channel"}


class OutcomeListApi(OrganizationAPIView):
    class OutcomeFilterSerializer(serializers.Serializer):
        campaign = serializers.IntegerField(required=False, min_value=1)
        mission = serializers.IntegerField(required=False, min_value=1)
        lead = serializers.IntegerField(required=False, min_value=1)
        message = serializers.IntegerField(required=False, min_value=1)
        model_version = serializers.IntegerField(required=False, min_value=1)
        label = serializers.ChoiceField(choices=OutcomeLabel.Label.choices, required=False, help_text="Training label.")
        channel = serializers.ChoiceField(choices=Message.Channel.choices, required=False)

    @extend_schema(parameters=[OutcomeFilterSerializer], responses=OutcomeLabelOutputSerializer(many=True))
    def get(self, request):
        filters = self.OutcomeFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        lookups = {FILTER_LOOKUPS.get(name, f"{name}_id"): value for name, value in filters.validated_data.items()}
        queryset = self.scoped(OutcomeLabel.objects.filter(**lookups)).order_by("-created_at", "-id")
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(OutcomeLabelOutputSerializer(page, many=True).data)


class OutcomeDetailApi(OrganizationAPIView):
    @extend_schema(responses=OutcomeLabelOutputSerializer)
    def get(self, request, outcome_id: int):
        return Response(OutcomeLabelOutputSerializer(self.get_scoped(OutcomeLabel.objects.all(), pk=outcome_id)).data)


class WinningStrategiesApi(OrganizationAPIView):
    """Rates per framework x tone x channel, with Wilson intervals: arms with enough sends ranked, others to explore."""

    class WinningStrategiesFilterSerializer(serializers.Serializer):
        min_sample = serializers.IntegerField(required=False, min_value=1, default=DEFAULT_MIN_SAMPLE)
        channel = serializers.ChoiceField(choices=Message.Channel.choices, required=False)
        since = serializers.DateTimeField(required=False, help_text="Only messages sent at or after this time.")
        metric = serializers.ChoiceField(choices=METRICS, required=False, default="reply_rate")

    @extend_schema(parameters=[WinningStrategiesFilterSerializer], responses=WinningStrategiesOutputSerializer)
    def get(self, request):
        filters = self.WinningStrategiesFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = {"channel": None, "since": None, **filters.validated_data}
        board = strategy_leaderboard(organization_id=self.organization.pk, **params)
        return Response(WinningStrategiesOutputSerializer({**params, **board}).data)


class AgentPerformanceApi(OrganizationAPIView):
    """Per campaign and agent: runs, failures, decision layers and latency, beside the campaign's outcome rates."""

    class AgentPerformanceFilterSerializer(serializers.Serializer):
        campaign = serializers.IntegerField(required=False, min_value=1)
        since = serializers.DateTimeField(required=False, help_text="Only runs and messages at or after this time.")

        def validate_campaign(self, value: int) -> Campaign:
            campaign = Campaign.objects.filter(organization=self.context["organization"], pk=value).first()
            if campaign is None:
                raise serializers.ValidationError(f"No campaign {value} in your organization.")
            return campaign

    @extend_schema(parameters=[AgentPerformanceFilterSerializer], responses=AgentPerformanceOutputSerializer)
    def get(self, request):
        organization = self.organization
        filters = self.AgentPerformanceFilterSerializer(
            data=request.query_params, context={"organization": organization}
        )
        filters.is_valid(raise_exception=True)
        campaign, since = filters.validated_data.get("campaign"), filters.validated_data.get("since")
        data = {
            "campaign": campaign.pk if campaign else None,
            "since": since,
            "campaigns": agent_performance(organization=organization, campaign=campaign, since=since),
            "organization_decisions": decision_stats(organization=organization),
        }
        return Response(AgentPerformanceOutputSerializer(data).data)
