"""Operator admin for the model registry and the flywheel's training runs.

Model versions come from training and change only through the actions (deploy, promote, roll back): their
identity and deployment fields are read-only. "Add training run" starts a cycle exactly as POST /training/run
does (same parameters and validation, the weekly guard, the run's task); a run is then read-only.
"""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import FloatField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast

from rex_project.admin_utils import json_display

from . import registry
from .apis import TrainingRunApi
from .cycle import CycleTooSoon, default_kind, training_run_check, training_run_create
from .models import ModelVersion, PromotionDecision, TrainingRun
from .promotion import promote_ab_test_winner


def _deploy(version: ModelVersion, *, traffic_percentage: float, role: str) -> None:
    registry.model_servable_check(version=version)  # as the API does: never deploy a model that cannot serve
    registry.model_deploy(version=version, traffic_percentage=traffic_percentage, role=role)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "kind",
        "version",
        "backend",
        "status",
        "ab_role",
        "traffic_percentage",
        "held_out_auc",
        "deployed_at",
    )
    list_filter = ("kind", "backend", "status", "ab_role")
    search_fields = ("version", "provider_model_id")
    date_hierarchy = "created_at"
    readonly_fields = (
        "kind",
        "version",
        "backend",
        "status",
        "ab_role",
        "traffic_percentage",
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

    def has_add_permission(self, request) -> bool:
        return False  # versions are registered by training runs

    @admin.display(description="Held-out AUC", ordering=Cast(KT("metrics__auc"), FloatField()))
    def held_out_auc(self, obj: ModelVersion) -> str:
        auc = (obj.metrics or {}).get("auc")
        return f"{auc:.3f}" if isinstance(auc, int | float) else "—"

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
            lambda v: _deploy(v, traffic_percentage=10.0, role=ModelVersion.Role.CHALLENGER),
            "Deployed as challenger",
        )

    @admin.action(description="Deploy as champion (100%%)")
    def deploy_as_champion(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda v: _deploy(v, traffic_percentage=100.0, role=ModelVersion.Role.CHAMPION),
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


class TrainingRunStartForm(forms.ModelForm):
    """Start a training cycle the way POST /training/run does: its parameters, validated by its serializer, the
    weekly guard, and the run's task once the admin's transaction commits."""

    PARAMS = ("kind", "min_quality_score", "deploy_immediately", "ab_test_percentage", "force")

    min_quality_score = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="message_writer: export only positive outcomes of at least this quality (empty: 0.6). "
        "policy: ignored, the policy learns from every clean label.",
    )
    ab_test_percentage = forms.FloatField(
        initial=10.0, min_value=0.1, max_value=50.0, help_text="The share of leads the new challenger gets."
    )
    deploy_immediately = forms.BooleanField(
        required=False, help_text="Deploy the new version as champion at 100% instead of an A/B test."
    )
    force = forms.BooleanField(required=False, help_text="Run even if a cycle of this kind already ran this week.")

    class Meta:
        model = TrainingRun
        fields = ("kind", "organization")
        help_texts = {"organization": "Train on this organization's outcomes only (empty: every organization's)."}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].initial = default_kind()
        self.params: dict = {}

    def clean(self):
        cleaned = super().clean()
        if "kind" not in cleaned:
            return cleaned
        data = {name: cleaned[name] for name in self.PARAMS if cleaned.get(name) is not None}
        serializer = TrainingRunApi.TrainingRunInputSerializer(data=data)
        if not serializer.is_valid():
            for field, errors in serializer.errors.items():
                self.add_error(field if field in self.fields else None, [str(error) for error in errors])
            return cleaned
        self.params = dict(serializer.validated_data)
        try:  # the lock it takes lasts until the admin's transaction ends, so the guard still holds at save
            training_run_check(kind=self.params["kind"], force=self.params["force"])
        except CycleTooSoon as exc:
            self.add_error("force", exc.message)
        return cleaned

    def start(self, *, requested_by) -> TrainingRun:
        from training.tasks import run_training_cycle_task

        organization = self.cleaned_data.get("organization")
        run = training_run_create(
            **self.params, organization_id=organization.pk if organization else None, requested_by=requested_by
        )
        run_training_cycle_task.delay_on_commit(run.pk)
        return run


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
        ("Timeline", {"fields": ("created_at", "started_at", "claimed_by", "claimed_at", "finished_at")}),
    )
    start_fieldsets = (
        (None, {"fields": ("kind", "organization")}),
        ("Parameters", {"fields": ("min_quality_score", "ab_test_percentage", "deploy_immediately", "force")}),
    )

    params_pretty = json_display("params")
    events_pretty = json_display("events")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a run changes only by its task, the fine-tuning poll and the sweeper

    def get_fieldsets(self, request, obj=None):
        return self.start_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else super().get_readonly_fields(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = TrainingRunStartForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_form(self, request, form, change):
        """Adding starts a cycle through the service (``training_run_create``) and its task."""
        return form.start(requested_by=request.user)

    def save_model(self, request, obj, form, change) -> None:
        pass  # saved by training_run_create

    def save_related(self, request, form, formsets, change) -> None:
        pass  # a run has no related objects to save from the form
