"""The model registry and training runs of the flywheel."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    class Kind(models.TextChoices):
        MESSAGE_WRITER = "message_writer"
        POLICY = "policy"

    class Backend(models.TextChoices):
        OPENAI = "openai", "OpenAI fine-tune"
        LOCAL = "local", "Local model"

    class Status(models.TextChoices):
        TRAINING = "training"
        READY = "ready"
        DEPLOYED = "deployed"
        RETIRED = "retired"
        FAILED = "failed"

    class Role(models.TextChoices):
        NONE = "", "—"
        CHAMPION = "champion"
        CHALLENGER = "challenger"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    backend = models.CharField(max_length=8, choices=Backend.choices)
    version = models.CharField(max_length=32, help_text="Bumped per kind: v2.1.0 → v2.2.0.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING)
    provider_model_id = models.CharField(max_length=255, blank=True, help_text="e.g. ft:gpt-4o-2024-08-06:org:…")
    artifact_path = models.CharField(max_length=500, blank=True)
    training_metadata = models.JSONField(default=dict, blank=True, help_text="Job id, examples, tokens.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Held-out evaluation (AUC, log loss, …).")
    performance = models.JSONField(default=dict, blank=True, help_text="Rolled up from outcome labels.")
    traffic_percentage = models.FloatField(default=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(100.0)])
    ab_role = models.CharField(max_length=16, choices=Role.choices, blank=True, default=Role.NONE)
    deployed_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="model_version_unique_per_kind"),
            models.UniqueConstraint(
                fields=["kind"], condition=Q(ab_role="champion"), name="model_version_one_champion_per_kind"
            ),
            models.CheckConstraint(
                condition=Q(traffic_percentage__gte=0, traffic_percentage__lte=100), name="model_version_traffic_0_100"
            ),
        ]
        indexes = [models.Index(fields=["kind", "status"], name="model_version_kind_status")]

    def __str__(self) -> str:
        return f"{self.kind} {self.version} ({self.status})"


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        EXPORTING = "exporting"
        TRAINING = "training"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"
        NOT_ENOUGH_DATA = "not_enough_data", "Not enough data"

    kind = models.CharField(max_length=16, choices=ModelVersion.Kind.choices)
    backend = models.CharField(max_length=8, choices=ModelVersion.Backend.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    organization = models.ForeignKey("agents.Organization", null=True, blank=True, on_delete=models.SET_NULL)
    params = models.JSONField(default=dict, blank=True)
    dataset_path = models.CharField(max_length=500, blank=True)
    train_examples = models.PositiveIntegerField(default=0)
    validation_examples = models.PositiveIntegerField(default=0)
    provider_job_id = models.CharField(max_length=255, blank=True)
    trained_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    events = models.JSONField(default=list, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="training_runs"
    )
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    claimed_by = models.CharField(
        max_length=255, blank=True, help_text="Id of the Celery task working on the run (its retry resumes the run)."
    )
    claimed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a task last claimed or resumed the run. Still exporting (or training locally) longer "
        "than the task time limit after it, the run is stuck and the sweeper fails it.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["kind", "status"], name="training_run_kind_status")]

    def __str__(self) -> str:
        return f"Training run #{self.pk} {self.kind}/{self.backend} ({self.status})"


class PromotionDecision(models.Model):
    """One look at an A/B test: the figures of both arms and what was decided, kept for the audit trail."""

    class Outcome(models.TextChoices):
        PROMOTED = "promoted"
        RETIRED = "retired"
        WAITING = "waiting", "Waiting for exposure"

    kind = models.CharField(max_length=16, choices=ModelVersion.Kind.choices)
    challenger = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="promotion_decisions")
    champion = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="defended_decisions",
        help_text="Empty: the challenger was measured against the baseline (no model).",
    )  # fmt: skip
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.TextField()
    figures = models.JSONField(default=dict, help_text="Both arms' counts, rates, scores, the test and its p-value.")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["kind", "created_at"], name="promotion_kind_created")]

    def __str__(self) -> str:
        return f"{self.kind} {self.challenger.version}: {self.outcome}"
