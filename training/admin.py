"""Operator admin for the model registry and the flywheel's training runs."""

from django.contrib import admin, messages
from django.db import transaction

from rex_project.admin_utils import json_display

from . import registry
from .models import ModelVersion, PromotionDecision, TrainingRun
from .promotion import promote_ab_test_winner


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("kind", "version", "backend", "status", "ab_role", "traffic_percentage", "deployed_at")
    list_filter = ("kind", "backend", "status", "ab_role")
    search_fields = ("version", "provider_model_id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "training_metadata_pretty",
        "metrics_pretty",
        "performance_pretty",
        "deployed_at",
        "retired_at",
        "created_at",
    )
    fieldsets = (
        (None, {"fields": ("kind", "version", "backend", "status", "provider_model_id", "artifact_path")}),
        ("A/B test", {"fields": ("ab_role", "traffic_percentage", "deployed_at", "retired_at")}),
        ("Evaluation", {"fields": ("metrics_pretty", "performance_pretty", "training_metadata_pretty")}),
        ("Audit", {"classes": ("collapse",), "fields": ("created_at",)}),
    )

    training_metadata_pretty = json_display("training_metadata")
    metrics_pretty = json_display("metrics")
    performance_pretty = json_display("performance")
    actions = ("deploy_as_challenger", "deploy_as_champion", "promote_winners", "rollback", "refresh_performance")

    def _each(self, request, queryset, apply, done: str) -> None:
        count = 0
        for version in queryset:
            try:
                with transaction.atomic():
                    apply(version)
            except Exception as exc:  # shown to the operator, the rest still run
                self.message_user(request, f"{version}: {exc}", messages.ERROR)
            else:
                count += 1
        self.message_user(request, f"{done}: {count} model version(s).")

    @admin.action(description="Deploy as A/B challenger at 10%%")
    def deploy_as_challenger(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda v: registry.model_deploy(version=v, traffic_percentage=10.0, role=ModelVersion.Role.CHALLENGER),
            "Deployed as challenger",
        )

    @admin.action(description="Deploy as champion (100%%)")
    def deploy_as_champion(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda v: registry.model_deploy(version=v, traffic_percentage=100.0, role=ModelVersion.Role.CHAMPION),
            "Deployed as champion",
        )

    @admin.action(description="Run the promotion check for these kinds")
    def promote_winners(self, request, queryset):
        for kind in sorted(set(queryset.values_list("kind", flat=True))):
            for decision in promote_ab_test_winner(kind=kind, decided_by=request.user):
                self.message_user(request, f"{decision.challenger.version}: {decision.outcome} — {decision.reason}")

    @admin.action(description="Roll back (retire; the previous champion takes 100%%)")
    def rollback(self, request, queryset):
        self._each(request, queryset, lambda v: registry.model_rollback(version=v), "Rolled back")

    @admin.action(description="Refresh performance from outcome labels")
    def refresh_performance(self, request, queryset):
        self._each(request, queryset, lambda v: registry.performance_rollup(version=v), "Refreshed")


@admin.register(PromotionDecision)
class PromotionDecisionAdmin(admin.ModelAdmin):
    list_display = ("created_at", "kind", "challenger", "champion", "outcome", "short_reason")
    list_filter = ("kind", "outcome")
    list_select_related = ("challenger", "champion")
    date_hierarchy = "created_at"
    readonly_fields = (
        "kind",
        "challenger",
        "champion",
        "outcome",
        "reason",
        "figures_pretty",
        "decided_by",
        "created_at",
    )
    exclude = ("figures",)
    figures_pretty = json_display("figures")

    @admin.display(description="Reason")
    def short_reason(self, obj: PromotionDecision) -> str:
        return obj.reason[:120]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "backend",
        "status",
        "organization",
        "train_examples",
        "validation_examples",
        "model_version",
        "requested_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "kind", "backend", "organization")
    list_select_related = ("organization", "model_version", "requested_by")
    search_fields = ("provider_job_id", "dataset_path", "error", "model_version__version")
    date_hierarchy = "created_at"
    autocomplete_fields = ("organization", "model_version", "requested_by")
    readonly_fields = (
        "train_examples",
        "validation_examples",
        "trained_tokens",
        "provider_job_id",
        "params_pretty",
        "events_pretty",
        "created_at",
        "started_at",
        "finished_at",
    )
    fieldsets = (
        (None, {"fields": ("kind", "backend", "status", "organization", "requested_by", "model_version")}),
        (
            "Data and job",
            {
                "fields": (
                    "dataset_path",
                    "train_examples",
                    "validation_examples",
                    "provider_job_id",
                    "trained_tokens",
                    "params_pretty",
                    "error",
                )
            },
        ),
        ("Events", {"fields": ("events_pretty",)}),
        ("Timeline", {"fields": ("created_at", "started_at", "finished_at")}),
    )

    params_pretty = json_display("params")
    events_pretty = json_display("events")
