"""Mission endpoints (paths from the seeds): /rex/command, /rex/stats, /agent/status, /agent/mission."""

from django.core.paginator import Paginator
from django.db.models import Count
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from agents.decisions.lifecycle import IllegalTransition, mission_transition
from agents.missions import LEAD_FILTER_FIELDS, mission_cancel, mission_create
from agents.models import AgentRun, Campaign, Mission
from agents.selectors import agent_status, decision_stats, mission_agent_counts, mission_lead_counts
from rex_project.api import OrganizationAPIView, id_field
from rex_project.celery import app as celery_app
from rex_project.exceptions import ApplicationError

LOG_PAGE_SIZE = 50


def mission_summary(mission: Mission, request) -> dict:
    url = reverse("mission-detail", args=[mission.pk])
    return {
        "id": mission.pk,
        "type": mission.type,
        "priority": mission.priority,
        "status": mission.status,
        "progress": {
            "processed": mission.processed,
            "total": mission.total,
            "percent": round(100 * mission.progress, 1),
        },
        "created_at": mission.created_at,
        "started_at": mission.started_at,
        "finished_at": mission.finished_at,
        "failure_reason": mission.failure_reason,
        "links": {
            "self": request.build_absolute_uri(url),
            "logs": request.build_absolute_uri(f"{url}?include_logs=true"),
            "cancel": request.build_absolute_uri(reverse("mission-cancel", args=[mission.pk])),
        },
    }


class MissionCommandApi(OrganizationAPIView):
    class MissionCommandInputSerializer(serializers.Serializer):
        type = serializers.ChoiceField(choices=Mission.Type.choices)
        priority = serializers.IntegerField(min_value=0, max_value=100, default=50)
        lead_ids = serializers.ListField(child=id_field(), required=False, max_length=100_000)
        campaign_id = id_field(required=False)
        filter = serializers.DictField(required=False)

        def validate_filter(self, value):
            unknown = sorted(set(value) - set(LEAD_FILTER_FIELDS))
            if unknown:
                raise serializers.ValidationError(f"Unknown filter keys {unknown}; use {sorted(LEAD_FILTER_FIELDS)}.")
            return value

        def validate(self, data):
            chosen = [key for key in ("lead_ids", "campaign_id", "filter") if key in data]
            per_lead = data["type"] in (Mission.Type.LEAD_REACTIVATION, Mission.Type.ENRICHMENT)
            if per_lead and len(chosen) != 1:
                raise serializers.ValidationError(
                    {"lead_ids": ["Give exactly one of lead_ids, campaign_id or filter."]}
                )
            return data

    @extend_schema(
        request=MissionCommandInputSerializer,
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False)],
        responses={202: dict},
    )
    def post(self, request):
        serializer = self.MissionCommandInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        campaign = None
        if "campaign_id" in data:
            campaign = Campaign.objects.filter(organization=self.organization, pk=data.pop("campaign_id")).first()
            if campaign is None:
                raise ApplicationError("Unknown campaign.", extra={"campaign_id": ["No such campaign."]})
        mission, created = mission_create(
            organization=self.organization, requested_by=request.user, campaign=campaign,
            idempotency_key=request.headers.get("Idempotency-Key"), **data,
        )  # fmt: skip
        return Response(mission_summary(mission, request), status=status.HTTP_202_ACCEPTED if created else 200)


class MissionDetailApi(OrganizationAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("include_logs", bool, required=False),
            OpenApiParameter("page", int, required=False),
        ],
        responses=dict,
    )
    def get(self, request, mission_id: int):
        mission = self.get_scoped(Mission.objects.all(), pk=mission_id)
        body = mission_summary(mission, request)
        body["leads"] = mission_lead_counts(mission=mission)
        body["agents"] = mission_agent_counts(mission=mission)
        body["report"] = mission.report
        if request.query_params.get("include_logs", "").lower() in ("1", "true", "yes"):
            body["logs"] = self._logs(mission, request.query_params.get("page", 1))
        return Response(body)

    def _logs(self, mission: Mission, page_number) -> dict:
        runs = AgentRun.objects.filter(mission=mission).order_by("id").values(
            "id", "agent", "lead_id", "decision_layer", "decision", "decision_reason", "success", "error",
            "duration_ms", "decision_ms", "input_summary", "output_summary", "created_at",
        )  # fmt: skip
        page = Paginator(runs, LOG_PAGE_SIZE).get_page(page_number)
        return {"count": page.paginator.count, "page": page.number, "pages": page.paginator.num_pages,
                "results": list(page.object_list)}  # fmt: skip


class MissionCancelApi(OrganizationAPIView):
    @extend_schema(request=None, responses=dict)
    def post(self, request, mission_id: int):
        mission = self.get_scoped(Mission.objects.all(), pk=mission_id)
        mission_cancel(mission=mission)
        return Response(mission_summary(mission, request))


class StatsApi(OrganizationAPIView):
    @extend_schema(responses=dict)
    def get(self, request):
        missions = dict(
            Mission.objects.filter(organization=self.organization).values_list("status").annotate(**{"n": Count("id")})
        )
        return Response({"missions": missions, **decision_stats(organization=self.organization)})


class AgentStatusApi(OrganizationAPIView):
    WORKER_PING_TIMEOUT = 1.0

    @extend_schema(responses=dict)
    def get(self, request):
        try:
            replies = celery_app.control.ping(timeout=self.WORKER_PING_TIMEOUT) or []
            workers = sorted(name for reply in replies for name in reply)
            error = ""
        except Exception as exc:  # a broker outage must not break the status page
            workers, error = [], f"{type(exc).__name__}: {exc}"
        return Response({
            "agents": agent_status(organization=self.organization),
            "workers": {"alive": workers, "count": len(workers), "error": error},
        })  # fmt: skip


class AgentMissionUpdateApi(OrganizationAPIView):
    """An outside system moves a mission along its lifecycle (e.g. an orchestrator cancels it)."""

    EVENTS = {"running": "start", "completed": "complete", "failed": "fail", "cancelled": "cancel"}

    class MissionUpdateInputSerializer(serializers.Serializer):
        mission_id = id_field()
        status = serializers.ChoiceField(choices=["running", "completed", "failed", "cancelled"])
        reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    @extend_schema(request=MissionUpdateInputSerializer, responses=dict)
    def post(self, request):
        serializer = self.MissionUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        mission = self.get_scoped(Mission.objects.all(), pk=data["mission_id"])
        try:
            mission_transition(mission, self.EVENTS[data["status"]], reason=data["reason"])
        except IllegalTransition as exc:
            raise ApplicationError(str(exc), extra={"status": [str(exc)]}) from exc
        return Response(mission_summary(mission, request))
