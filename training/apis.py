"""Training endpoints (paths from seed 002): run a cycle, follow it, list, deploy and promote models.

The registry is shared by every organization, so writes are for staff only; reads need a login.
"""

from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from outcomes.models import OutcomeLabel
from outcomes.selectors import training_ready
from rex_project.api import organization_of
from training import registry
from training.cycle import CycleTooSoon, training_run_create
from training.models import ModelVersion, PromotionDecision, TrainingRun
from training.promotion import DEFAULT_MIN_DAYS, DEFAULT_MIN_MESSAGES, promote_ab_test_winner


class StaffWrites(permissions.BasePermission):
    message = "Only staff may change models or start training."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or request.user.is_staff


class TrainingAPIView(APIView):
    permission_classes = [StaffWrites]


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = (
            "id",
            "kind",
            "backend",
            "version",
            "status",
            "provider_model_id",
            "artifact_path",
            "traffic_percentage",
            "ab_role",
            "training_metadata",
            "metrics",
            "performance",
            "deployed_at",
            "retired_at",
            "created_at",
        )


class TrainingRunSerializer(serializers.ModelSerializer):
    model_version = ModelVersionSerializer(read_only=True)

    class Meta:
        model = TrainingRun
        fields = (
            "id",
            "kind",
            "backend",
            "status",
            "params",
            "train_examples",
            "validation_examples",
            "provider_job_id",
            "trained_tokens",
            "events",
            "error",
            "model_version",
            "created_at",
            "started_at",
            "finished_at",
        )


class PromotionDecisionSerializer(serializers.ModelSerializer):
    challenger = serializers.CharField(source="challenger.version")
    champion = serializers.CharField(source="champion.version", default=None)

    class Meta:
        model = PromotionDecision
        fields = ("id", "kind", "challenger", "champion", "outcome", "reason", "figures", "created_at")


class TrainingRunApi(TrainingAPIView):
    class TrainingRunInputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices, required=False)
        min_quality_score = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.0)
        deploy_immediately = serializers.BooleanField(default=False)
        ab_test_percentage = serializers.FloatField(min_value=0.1, max_value=50.0, default=10.0)
        force = serializers.BooleanField(default=False)

    @extend_schema(request=TrainingRunInputSerializer, responses={202: TrainingRunSerializer})
    def post(self, request):
        from training.tasks import run_training_cycle_task

        serializer = self.TrainingRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            run = training_run_create(**serializer.validated_data, requested_by=request.user)
        except CycleTooSoon as exc:
            return Response(
                {"detail": exc.message, "run_id": exc.run.pk, "status_url": _status_url(request, exc.run)},
                status=status.HTTP_409_CONFLICT,
            )
        run_training_cycle_task.delay_on_commit(run.pk)
        body = {"job_id": run.pk, "status_url": _status_url(request, run), **TrainingRunSerializer(run).data}
        return Response(body, status=status.HTTP_202_ACCEPTED)


def _status_url(request, run: TrainingRun) -> str:
    return request.build_absolute_uri(reverse("training-status", args=[run.pk]))


class TrainingStatusApi(TrainingAPIView):
    @extend_schema(responses=TrainingRunSerializer)
    def get(self, request, job_id: int):
        run = get_object_or_404(TrainingRun.objects.select_related("model_version"), pk=job_id)
        return Response({"job_id": run.pk, **TrainingRunSerializer(run).data})


class ModelListApi(TrainingAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=ModelVersion.Status.values),
            OpenApiParameter("kind", str, enum=ModelVersion.Kind.values),
        ],
        responses=ModelVersionSerializer(many=True),
    )
    def get(self, request):
        versions = ModelVersion.objects.order_by("kind", "-created_at")
        errors = {}
        for field, choices in (("status", ModelVersion.Status.values), ("kind", ModelVersion.Kind.values)):
            value = request.query_params.get(field)
            if value and value not in choices:
                errors[field] = [f"'{value}' is not one of {choices}."]
            elif value:
                versions = versions.filter(**{field: value})
        if errors:
            raise serializers.ValidationError(errors)
        return Response({"results": ModelVersionSerializer(versions[:500], many=True).data})


class ModelDeployApi(TrainingAPIView):
    class ModelDeployInputSerializer(serializers.Serializer):
        traffic_percentage = serializers.FloatField(min_value=0.1, max_value=100.0)

    @extend_schema(request=ModelDeployInputSerializer, responses=ModelVersionSerializer)
    def post(self, request, model_id: int):
        version = get_object_or_404(ModelVersion, pk=model_id)
        serializer = self.ModelDeployInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The registry refuses what cannot serve (failed, still training, no artifact): a 400 naming why.
        traffic = serializer.validated_data["traffic_percentage"]
        role = ModelVersion.Role.CHAMPION if traffic >= 100 else ModelVersion.Role.CHALLENGER
        registry.model_deploy(version=version, traffic_percentage=traffic, role=role)
        version.refresh_from_db()
        return Response(ModelVersionSerializer(version).data)


class PromoteWinnerApi(TrainingAPIView):
    class PromoteWinnerInputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices, required=False)
        min_days = serializers.FloatField(min_value=0, default=DEFAULT_MIN_DAYS)
        min_messages_per_arm = serializers.IntegerField(min_value=1, default=DEFAULT_MIN_MESSAGES)

    @extend_schema(request=PromoteWinnerInputSerializer, responses=PromotionDecisionSerializer(many=True))
    def post(self, request):
        serializer = self.PromoteWinnerInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decisions = promote_ab_test_winner(**serializer.validated_data, decided_by=request.user)
        return Response({"decisions": PromotionDecisionSerializer(decisions, many=True).data})


class TrainingStatsApi(TrainingAPIView):
    @extend_schema(responses=dict)
    def get(self, request):
        """The caller's organization's training data, and the registry's runs."""
        organization = organization_of(request.user)
        outcomes = OutcomeLabel.objects.filter(organization=organization)
        counts = outcomes.aggregate(
            total=Count("id"),
            used=Count("id", filter=Q(included_in_training=True)),
            positive=Count("id", filter=Q(training_label=OutcomeLabel.Label.POSITIVE)),
            negative=Count("id", filter=Q(training_label=OutcomeLabel.Label.NEGATIVE)),
            neutral=Count("id", filter=Q(training_label=OutcomeLabel.Label.NEUTRAL)),
        )
        runs = dict(TrainingRun.objects.values_list("status").annotate(n=Count("id")).order_by())
        last = TrainingRun.objects.order_by("-created_at").first()
        return Response(
            {
                "outcomes": counts,
                "training_ready": training_ready(organization_id=organization.pk).count(),
                "runs_by_status": runs,
                "last_run": TrainingRunSerializer(last).data if last else None,
                "deployed": ModelVersionSerializer(registry.active_versions(None), many=True).data,
            }
        )


class LeaderboardApi(TrainingAPIView):
    @extend_schema(parameters=[OpenApiParameter("kind", str, enum=ModelVersion.Kind.values)], responses=dict)
    def get(self, request):
        kind = request.query_params.get("kind")
        if kind and kind not in ModelVersion.Kind.values:
            raise serializers.ValidationError({"kind": [f"'{kind}' is not one of {ModelVersion.Kind.values}."]})
        return Response({"results": registry.leaderboard(kind=kind)})
