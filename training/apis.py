"""Training endpoints (paths from seed 002): run a cycle, follow it, list, deploy and promote models.

The registry is shared by every organization, so writes are for staff only; reads need a login.

What a caller who is not staff sees (the runs and versions belong to no organization, the outcomes do):

* performance figures (messages, replies, meetings, deals, revenue, rates, deltas against the champion) in
  ``/training/models``, ``/training/leaderboard``, ``/training/status/{job_id}`` and ``/training/stats`` are
  rolled up from their own organization's outcome labels only; staff see every organization's;
* run internals (params, example counts, provider job id, tokens, events, error) and model internals (provider
  model id, artifact path, training metadata) are staff-only fields, left out of their responses;
* runs: their organization's and the registry's shared ones (no organization); another organization's run is a
  404, and ``/training/stats`` counts only those runs (staff: every run).
"""

import re
from dataclasses import dataclass

from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from outcomes.models import OutcomeLabel
from outcomes.selectors import training_ready
from rex_project.api import organization_of
from training import registry
from training.cycle import CycleTooSoon, kind_unavailable, training_run_create
from training.models import ModelVersion, PromotionDecision, TrainingRun
from training.promotion import DEFAULT_MIN_DAYS, DEFAULT_MIN_MESSAGES, promote_ab_test_winner
from training.split import holdout_lift

NUMERIC_JOB_ID = re.compile(r"[0-9]{1,18}")  # longer is no run id (and would overflow the id column)


class StaffWrites(permissions.BasePermission):
    message = "Only staff may change models or start training."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or request.user.is_staff


class TrainingAPIView(APIView):
    permission_classes = [StaffWrites]


# --- Who sees what -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    staff: bool
    organization_id: int | None  # whose outcome labels the figures come from; None: every organization's


def _scope(request) -> Scope:
    if request.user.is_staff:
        return Scope(staff=True, organization_id=None)
    return Scope(staff=False, organization_id=organization_of(request.user).pk)


def _context(scope: Scope, versions=(), **extra) -> dict:
    """Serializer context: the caller's scope and the versions' performance in it (one query per kind)."""
    performance = registry.performance_by_version(list(versions), organization_id=scope.organization_id)
    return {"scope": scope, "performance": performance, **extra}


def _visible_runs(scope: Scope):
    runs = TrainingRun.objects.all()
    if scope.staff:
        return runs
    return runs.filter(Q(organization_id=scope.organization_id) | Q(organization__isnull=True))


class StaffOnlyFields:
    # Leaves out the ``staff_only`` fields unless the context's scope is staff's (also when it has none).

    staff_only: tuple[str, ...] = ()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        scope = self.context.get("scope")
        if scope is None or not scope.staff:
            for name in self.staff_only:
                data.pop(name, None)
        return data


# --- Output serializers --------------------------------------------------------------------------------------


class VersusChampionSerializer(serializers.Serializer):
    """This version's rates minus the champion's (absolute: 0.02 = two points better), on the same labels."""

    champion_id = serializers.IntegerField()
    champion_version = serializers.CharField()
    champion_messages = serializers.IntegerField()
    reply_rate = serializers.FloatField()
    positive_reply_rate = serializers.FloatField()
    meeting_rate = serializers.FloatField()
    close_rate = serializers.FloatField()
    score = serializers.FloatField()


class ModelPerformanceSerializer(serializers.Serializer):
    """Rolled up from the outcome labels attributed to the version (all organizations' for staff, the caller's
    organization's otherwise). Score = close rate × 0.5 + meeting rate × 0.3 + reply rate × 0.2."""

    messages = serializers.IntegerField()
    delivered = serializers.IntegerField()
    replies = serializers.IntegerField()
    positive_replies = serializers.IntegerField()
    meetings = serializers.IntegerField()
    deals = serializers.IntegerField()
    unsubscribes = serializers.IntegerField()
    spam_reports = serializers.IntegerField()
    revenue = serializers.FloatField()
    delivery_rate = serializers.FloatField()
    reply_rate = serializers.FloatField()
    positive_reply_rate = serializers.FloatField()
    meeting_rate = serializers.FloatField()
    close_rate = serializers.FloatField()
    unsubscribe_rate = serializers.FloatField()
    spam_rate = serializers.FloatField()
    revenue_per_message = serializers.FloatField()
    reply_rate_ci95 = serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2)
    score = serializers.FloatField()
    vs_champion = VersusChampionSerializer(allow_null=True, help_text="None for the champion, or without one.")


class ModelVersionSerializer(StaffOnlyFields, serializers.ModelSerializer):
    """A model version. ``provider_model_id``, ``artifact_path`` and ``training_metadata`` are for staff only
    (left out for others); ``performance`` is rolled up live (every organization's labels for staff, the
    caller's organization's otherwise)."""

    staff_only = ("provider_model_id", "artifact_path", "training_metadata")
    performance = serializers.SerializerMethodField()

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

    @extend_schema_field(ModelPerformanceSerializer)
    def get_performance(self, version: ModelVersion) -> dict:
        known = self.context.get("performance") or {}
        if version.pk in known:
            return known[version.pk]
        scope = self.context["scope"]  # every view passes it: whose figures these are is never a default
        return registry.performance_by_version([version], organization_id=scope.organization_id)[version.pk]


class TrainingRunSerializer(StaffOnlyFields, serializers.ModelSerializer):
    """A training run (a "job"): ``job_id`` is its id, ``status_url`` where to follow it."""

    staff_only = (
        "params",
        "train_examples",
        "validation_examples",
        "provider_job_id",
        "trained_tokens",
        "events",
        "error",
    )
    job_id = serializers.IntegerField(source="pk", read_only=True, help_text="The run's id, as in status_url.")
    status_url = serializers.SerializerMethodField()
    model_version = ModelVersionSerializer(read_only=True, allow_null=True)

    class Meta:
        model = TrainingRun
        fields = (
            "job_id",
            "status_url",
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

    @extend_schema_field(OpenApiTypes.URI)
    def get_status_url(self, run: TrainingRun) -> str:
        return _status_url(self.context.get("request"), run)


class PromotionDecisionSerializer(serializers.ModelSerializer):
    challenger = serializers.CharField(source="challenger.version")
    champion = serializers.CharField(source="champion.version", default=None, allow_null=True)

    class Meta:
        model = PromotionDecision
        fields = ("id", "kind", "challenger", "champion", "outcome", "reason", "figures", "created_at")


class LeaderboardRowSerializer(ModelPerformanceSerializer):
    """A version's identity, its performance (every organization's labels for staff, the caller's
    organization's otherwise) and its rank by score."""

    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices)
    version = serializers.CharField()
    backend = serializers.ChoiceField(choices=ModelVersion.Backend.choices)
    status = serializers.CharField(help_text="ready, deployed or retired (training and failed are not ranked).")
    ab_role = serializers.CharField(help_text="champion, challenger or empty.")
    traffic_percentage = serializers.FloatField()
    deployed_at = serializers.DateTimeField(allow_null=True)
    rank = serializers.IntegerField()


class OutcomeCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    used = serializers.IntegerField(help_text="Included in a training run.")
    positive = serializers.IntegerField()
    negative = serializers.IntegerField()
    neutral = serializers.IntegerField()


class HoldoutGroupSerializer(serializers.Serializer):
    leads = serializers.IntegerField()
    positive = serializers.IntegerField(help_text="Leads whose current state is one of positive_states.")
    positive_rate = serializers.FloatField(allow_null=True, help_text="None without leads.")


class HoldoutSerializer(serializers.Serializer):
    """The caller's organization's held-out leads (skipped by the personalizer as holdout, never contacted)
    against its treated leads (sent a message): how many reached a positive state by the lead's current state,
    whichever channel brought it. ``lift`` = treated positive rate − held-out positive rate (None until both
    groups have leads)."""

    holdout_percentage = serializers.FloatField(help_text="TRAINING_HOLDOUT_PERCENTAGE.")
    positive_states = serializers.ListField(child=serializers.CharField())
    holdout = HoldoutGroupSerializer()
    treated = HoldoutGroupSerializer()
    lift = serializers.FloatField(allow_null=True)


class TrainingStatsSerializer(serializers.Serializer):
    outcomes = OutcomeCountsSerializer(help_text="The caller's organization's outcome labels.")
    training_ready = serializers.IntegerField()
    runs_by_status = serializers.DictField(child=serializers.IntegerField(), help_text="Status → runs seen.")
    last_run = TrainingRunSerializer(allow_null=True)
    deployed = ModelVersionSerializer(many=True)
    holdout = HoldoutSerializer()


# --- Documented errors ---------------------------------------------------------------------------------------

DetailSerializer = inline_serializer("TrainingErrorDetail", {"detail": serializers.CharField()})


def _field_errors(description: str) -> OpenApiResponse:
    schema = {
        "type": "object",
        "description": "Field name → messages (a malformed body: {detail: message}).",
        "additionalProperties": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]},
    }
    return OpenApiResponse(schema, description=description)


FORBIDDEN = OpenApiResponse(DetailSerializer, description="Writes are for staff; reads need an organization.")
NOT_FOUND = OpenApiResponse(DetailSerializer, description="No such job or model version (visible to you).")


# --- Views ---------------------------------------------------------------------------------------------------


class TrainingRunApi(TrainingAPIView):
    class TrainingRunInputSerializer(serializers.Serializer):
        """A cycle's parameters; the admin's start form and the weekly beat task's kwargs are validated by it too."""

        kind = serializers.ChoiceField(
            choices=ModelVersion.Kind.choices,
            required=False,
            help_text="Default: message_writer when OPENAI_API_KEY is set, else policy. message_writer needs "
            "OPENAI_API_KEY (it is fine-tuned at OpenAI).",
        )
        min_quality_score = serializers.FloatField(
            min_value=0.0,
            max_value=1.0,
            required=False,
            help_text="message_writer: only positive outcomes of at least this quality are exported (default 0.6, "
            "seed 002). policy: ignored, the policy learns from every clean label, positive and negative.",
        )
        deploy_immediately = serializers.BooleanField(default=False)
        ab_test_percentage = serializers.FloatField(min_value=0.1, max_value=50.0, default=10.0)
        force = serializers.BooleanField(
            default=False, help_text="Run even when a cycle of this kind already ran this ISO week (UTC)."
        )

        def validate_kind(self, kind: str) -> str:
            problem = kind_unavailable(kind)
            if problem:
                raise serializers.ValidationError(problem)
            return kind

    @extend_schema(
        request=TrainingRunInputSerializer,
        responses={
            202: TrainingRunSerializer,
            400: _field_errors("Invalid kind, min_quality_score, ab_test_percentage, …"),
            403: FORBIDDEN,
            409: OpenApiResponse(
                inline_serializer(
                    "TrainingRunConflict",
                    {
                        "detail": serializers.CharField(),
                        "run_id": serializers.IntegerField(),
                        "status_url": serializers.URLField(),
                    },
                ),
                description="A cycle of that kind already ran this week (pass force to run again).",
            ),
        },
    )
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
        context = _context(_scope(request), request=request)
        return Response(TrainingRunSerializer(run, context=context).data, status=status.HTTP_202_ACCEPTED)


def _status_url(request, run: TrainingRun) -> str:
    path = reverse("training-status", args=[run.pk])
    return request.build_absolute_uri(path) if request is not None else path


class TrainingStatusApi(TrainingAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "job_id",
                str,
                OpenApiParameter.PATH,
                description="The run's job_id (from POST /training/run) or its OpenAI fine-tuning job id (ftjob-…).",
            )
        ],
        responses={200: TrainingRunSerializer, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, job_id: str):
        scope = _scope(request)
        runs = _visible_runs(scope).select_related("model_version")
        run = runs.filter(pk=int(job_id)).first() if NUMERIC_JOB_ID.fullmatch(job_id) else None
        if run is None:
            run = runs.filter(provider_job_id=job_id).order_by("-created_at").first()
        if run is None:
            raise NotFound(f"No training job {job_id!r}.")
        context = _context(scope, [run.model_version] if run.model_version else [], request=request)
        return Response(TrainingRunSerializer(run, context=context).data)


class ModelListApi(TrainingAPIView):
    @extend_schema(
        operation_id="training_models_list",
        parameters=[
            OpenApiParameter("status", str, enum=ModelVersion.Status.values),
            OpenApiParameter("kind", str, enum=ModelVersion.Kind.values),
        ],
        responses={
            200: inline_serializer("ModelVersionList", {"results": ModelVersionSerializer(many=True)}),
            400: _field_errors("An unknown status or kind."),
            403: FORBIDDEN,
        },
    )
    def get(self, request):
        """Newest first per kind (at most 500), with performance and deltas against the champion (see the module
        docstring for whose figures)."""
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
        versions = list(versions[:500])
        context = _context(_scope(request), versions)
        return Response({"results": ModelVersionSerializer(versions, many=True, context=context).data})


class ModelDeployApi(TrainingAPIView):
    class ModelDeployInputSerializer(serializers.Serializer):
        traffic_percentage = serializers.FloatField(
            min_value=0.1,
            max_value=100.0,
            help_text="100: champion (replacing the current one). Less: a challenger with that share of leads; "
            "the champion itself cannot take less than 100.",
        )

    @extend_schema(
        parameters=[OpenApiParameter("model_id", int, OpenApiParameter.PATH)],
        request=ModelDeployInputSerializer,
        responses={
            200: ModelVersionSerializer,
            400: _field_errors(
                "traffic_percentage out of range or more than the challengers leave, less than 100 for the "
                "champion; a version that cannot serve (failed, training, no artifact, an artifact that does not "
                "load)."
            ),
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def post(self, request, model_id: str):
        version = get_object_or_404(ModelVersion, pk=model_id)
        serializer = self.ModelDeployInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # The registry refuses what cannot serve (failed, still training, no artifact) and a champion made a
        # challenger: a 400 naming why. A policy whose artifact does not load is refused here, before any write.
        traffic = serializer.validated_data["traffic_percentage"]
        role = ModelVersion.Role.CHAMPION if traffic >= 100 else ModelVersion.Role.CHALLENGER
        registry.model_servable_check(version=version)
        registry.model_deploy(version=version, traffic_percentage=traffic, role=role)
        version.refresh_from_db()
        return Response(ModelVersionSerializer(version, context=_context(_scope(request), [version])).data)


class PromoteWinnerApi(TrainingAPIView):
    class PromoteWinnerInputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=ModelVersion.Kind.choices, required=False)
        min_days = serializers.FloatField(min_value=0, default=DEFAULT_MIN_DAYS)
        min_messages_per_arm = serializers.IntegerField(min_value=1, default=DEFAULT_MIN_MESSAGES)

    @extend_schema(
        request=PromoteWinnerInputSerializer,
        responses={
            200: inline_serializer("PromotionDecisionList", {"decisions": PromotionDecisionSerializer(many=True)}),
            400: _field_errors("Invalid kind, min_days or min_messages_per_arm."),
            403: FORBIDDEN,
        },
    )
    def post(self, request):
        serializer = self.PromoteWinnerInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        decisions = promote_ab_test_winner(**serializer.validated_data, decided_by=request.user)
        return Response({"decisions": PromotionDecisionSerializer(decisions, many=True).data})


class TrainingStatsApi(TrainingAPIView):
    @extend_schema(responses={200: TrainingStatsSerializer, 403: FORBIDDEN})
    def get(self, request):
        """The caller's organization's training data and holdout, the runs the caller may see (staff: all), the
        deployed versions with performance (see the module docstring for whose figures)."""
        organization = organization_of(request.user)
        scope = _scope(request)
        outcomes = OutcomeLabel.objects.filter(organization=organization)
        counts = outcomes.aggregate(
            total=Count("id"),
            used=Count("id", filter=Q(included_in_training=True)),
            positive=Count("id", filter=Q(training_label=OutcomeLabel.Label.POSITIVE)),
            negative=Count("id", filter=Q(training_label=OutcomeLabel.Label.NEGATIVE)),
            neutral=Count("id", filter=Q(training_label=OutcomeLabel.Label.NEUTRAL)),
        )
        runs = _visible_runs(scope)
        last = runs.select_related("model_version").order_by("-created_at").first()
        deployed = registry.active_versions(None)
        versions = [*deployed, *([last.model_version] if last and last.model_version else [])]
        context = _context(scope, versions, request=request)
        return Response(
            {
                "outcomes": counts,
                "training_ready": training_ready(organization_id=organization.pk).count(),
                "runs_by_status": dict(runs.values_list("status").annotate(n=Count("id")).order_by()),
                "last_run": TrainingRunSerializer(last, context=context).data if last else None,
                "deployed": ModelVersionSerializer(deployed, many=True, context=context).data,
                "holdout": holdout_lift(organization_id=organization.pk),
            }
        )


class LeaderboardApi(TrainingAPIView):
    @extend_schema(
        parameters=[OpenApiParameter("kind", str, enum=ModelVersion.Kind.values)],
        responses={
            200: inline_serializer("Leaderboard", {"results": LeaderboardRowSerializer(many=True)}),
            400: _field_errors("An unknown kind."),
            403: FORBIDDEN,
        },
    )
    def get(self, request):
        """Every version that served or can serve, best score first, with deltas against its kind's champion
        (see the module docstring for whose figures)."""
        kind = request.query_params.get("kind")
        if kind and kind not in ModelVersion.Kind.values:
            raise serializers.ValidationError({"kind": [f"'{kind}' is not one of {ModelVersion.Kind.values}."]})
        scope = _scope(request)
        return Response({"results": registry.leaderboard(kind=kind, organization_id=scope.organization_id)})
