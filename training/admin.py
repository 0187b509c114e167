"""Operator admin for the model registry and the flywheel's training runs."""

from django.contrib import admin

from rex_project.admin_utils import json_display

from .models import ModelVersion, TrainingRun


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
