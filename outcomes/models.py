"""Outcome labels: every message sent and what the world answered (seed 004's outcome_labels)."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class OutcomeLabel(models.Model):
    class Label(models.TextChoices):
        POSITIVE = "positive"
        NEGATIVE = "negative"
        NEUTRAL = "neutral"

    class SentimentLabel(models.TextChoices):
        POSITIVE = "positive"
        NEUTRAL = "neutral"
        NEGATIVE = "negative"

    class InterestLevel(models.TextChoices):
        HIGH = "high"
        MEDIUM = "medium"
        LOW = "low"
        NONE = "none"

    class Objection(models.TextChoices):
        NONE = "none"
        PRICE = "price"
        TIMING = "timing"
        AUTHORITY = "authority"
        COMPETITOR = "competitor"
        NOT_INTERESTED = "not_interested"
        NO_NEED = "no_need"

    class BounceType(models.TextChoices):
        HARD = "hard"
        SOFT = "soft"
        BLOCKED = "blocked"

    organization = models.ForeignKey("agents.Organization", on_delete=models.CASCADE, related_name="outcomes")
    campaign = models.ForeignKey("agents.Campaign", null=True, blank=True, on_delete=models.SET_NULL)
    mission = models.ForeignKey("agents.Mission", null=True, blank=True, on_delete=models.SET_NULL)
    lead = models.ForeignKey("agents.Lead", on_delete=models.CASCADE, related_name="outcomes")
    message = models.OneToOneField(
        "agents.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="outcome"
    )
    model_version = models.ForeignKey(
        "training.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="outcomes"
    )

    # Message: what we sent
    channel = models.CharField(max_length=16, default="email")
    subject_line = models.CharField(max_length=255, blank=True)
    message_body = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    # Agent decisions: what the agents decided
    framework = models.CharField(max_length=8, blank=True)
    tone = models.CharField(max_length=32, blank=True)
    agent_decisions = models.JSONField(default=dict, blank=True)

    # Delivery: did it arrive?
    delivered = models.BooleanField(default=False)
    delivered_at = models.DateTimeField(null=True, blank=True)
    bounced = models.BooleanField(default=False)
    bounce_type = models.CharField(max_length=8, choices=BounceType.choices, blank=True)
    bounce_reason = models.TextField(blank=True)

    # Engagement: did they engage? (counts only grow; bot opens/clicks kept apart)
    opened = models.BooleanField(default=False)
    clicked = models.BooleanField(default=False)
    open_count = models.PositiveIntegerField(default=0)
    click_count = models.PositiveIntegerField(default=0)
    bot_open_count = models.PositiveIntegerField(default=0)
    bot_click_count = models.PositiveIntegerField(default=0)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    first_clicked_at = models.DateTimeField(null=True, blank=True)
    unsubscribed = models.BooleanField(default=False)
    spam_reported = models.BooleanField(default=False)

    # Reply: what did they say?
    replied = models.BooleanField(default=False)
    replied_at = models.DateTimeField(null=True, blank=True)
    reply_text = models.TextField(blank=True)
    reply_sentiment_score = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-1.0), MaxValueValidator(1.0)]
    )

    # Sentiment: how interested are they?
    sentiment_label = models.CharField(max_length=8, choices=SentimentLabel.choices, blank=True)
    interest_signal = models.BooleanField(null=True, blank=True)
    interest_level = models.CharField(max_length=8, choices=InterestLevel.choices, blank=True)
    objection_detected = models.BooleanField(default=False)
    objection_type = models.CharField(max_length=16, choices=Objection.choices, blank=True)
    sentiment_reasoning = models.TextField(blank=True)

    # Meeting: did we get one?
    meeting_booked = models.BooleanField(default=False)
    meeting_booked_at = models.DateTimeField(null=True, blank=True)
    meeting_completed = models.BooleanField(default=False)
    meeting_no_show = models.BooleanField(default=False)

    # Revenue: did we close?
    opportunity_created = models.BooleanField(default=False)
    deal_closed = models.BooleanField(default=False)
    deal_lost = models.BooleanField(default=False)
    deal_value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    deal_closed_at = models.DateTimeField(null=True, blank=True)
    time_to_close_days = models.PositiveIntegerField(null=True, blank=True)

    # Lead context: who were they when we wrote?
    lead_industry = models.CharField(max_length=100, blank=True)
    lead_role = models.CharField(max_length=200, blank=True)
    company_size = models.PositiveIntegerField(null=True, blank=True)
    icp_score = models.FloatField(null=True, blank=True)
    lead_context = models.JSONField(default=dict, blank=True)

    # Training: ready for the model?
    training_label = models.CharField(max_length=8, choices=Label.choices, default=Label.NEUTRAL)
    training_weight = models.FloatField(default=1.0)
    included_in_training = models.BooleanField(default=False)
    included_in_training_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(reply_sentiment_score__isnull=True)
                | Q(reply_sentiment_score__gte=-1, reply_sentiment_score__lte=1),
                name="outcome_sentiment_score_range",
            ),
            models.CheckConstraint(condition=Q(training_weight__gte=0), name="outcome_training_weight_nonnegative"),
        ]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="outcome_org_created"),
            models.Index(fields=["campaign", "created_at"], name="outcome_campaign_created"),
            models.Index(fields=["lead"], name="outcome_lead"),
            models.Index(
                fields=["organization", "included_in_training", "training_label"], name="outcome_training_ready"
            ),
            models.Index(fields=["organization", "deal_closed"], name="outcome_org_deal"),
        ]

    def __str__(self) -> str:
        return f"Outcome #{self.pk} for lead {self.lead_id}: {self.training_label} (weight {self.training_weight})"
