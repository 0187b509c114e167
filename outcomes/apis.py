"""Outcome labels and what works: /api/outcomes and /api/analytics/*."""

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from agents.models import AgentRun, Campaign, Message
from agents.selectors import decision_stats
from outcomes.models import OutcomeLabel
from outcomes.selectors import DEFAULT_MIN_SAMPLE, METRICS, agent_performance, strategy_leaderboard
from outcomes.serializers import (
    AgentPerformanceOutputSerializer,
    OutcomeLabelOutputSerializer,
    WinningStrategiesOutputSerializer,
)
from rex_project.api import OrganizationAPIView, id_field

# Query parameter -> model lookup; the others are foreign keys (``campaign`` -> ``campaign_id``).
FILTER_LOOKUPS = {"label": "training_label", "channel": "channel"}


def id_filter(**kwargs) -> serializers.IntegerField:
    """An optional filter by a row's id."""
    return id_field(required=False, **kwargs)


class OutcomeListApi(OrganizationAPIView, generics.ListAPIView):
    """The organization's outcome labels, newest first, paginated ({count, next, previous, results})."""

    class OutcomeFilterSerializer(serializers.Serializer):
        campaign = id_filter()
        mission = id_filter()
        lead = id_filter()
        message = id_filter()
        model_version = id_filter()
        label = serializers.ChoiceField(choices=OutcomeLabel.Label.choices, required=False, help_text="Training label.")
        channel = serializers.ChoiceField(choices=Message.Channel.choices, required=False)

    queryset = OutcomeLabel.objects.all()
    serializer_class = OutcomeLabelOutputSerializer
    pagination_class = PageNumberPagination

    def get_queryset(self) -> QuerySet[OutcomeLabel]:
        filters = self.OutcomeFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        lookups = {FILTER_LOOKUPS.get(name, f"{name}_id"): value for name, value in filters.validated_data.items()}
        return self.scoped(super().get_queryset().filter(**lookups)).order_by("-created_at", "-id")

    @extend_schema(parameters=[OutcomeFilterSerializer])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


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
    """Per campaign and agent: runs, failures, decision layers and latency, beside the campaign's outcome rates,
    overall and per framework x tone x channel (Wilson intervals; arms under min_sample sends flagged exploring)."""

    class AgentPerformanceFilterSerializer(serializers.Serializer):
        campaign = id_filter()
        agent = serializers.ChoiceField(
            choices=AgentRun.Agent.choices, required=False, help_text="Only this agent's runs (outcomes unchanged)."
        )
        since = serializers.DateTimeField(required=False, help_text="Only runs and messages at or after this time.")
        metric = serializers.ChoiceField(
            choices=METRICS, required=False, default="reply_rate", help_text="Ranks each campaign's strategies."
        )
        min_sample = serializers.IntegerField(
            required=False, min_value=1, default=DEFAULT_MIN_SAMPLE, help_text="Sends a strategy needs to be ranked."
        )

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
        params = {"campaign": None, "since": None, "agent": None, **filters.validated_data}
        data = {
            **params,
            "campaign": params["campaign"].pk if params["campaign"] else None,
            "campaigns": agent_performance(organization=organization, **params),
            "organization_decisions": decision_stats(organization=organization),
        }
        return Response(AgentPerformanceOutputSerializer(data).data)
