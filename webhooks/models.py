"""The raw webhook inbox: every request received, stored before anything else happens."""

from django.db import models


class WebhookEvent(models.Model):
    class Provider(models.TextChoices):
        SENDGRID = "sendgrid", "SendGrid"
        TWILIO = "twilio", "Twilio"
        HUBSPOT = "hubspot", "HubSpot"
        PIPEDRIVE = "pipedrive", "Pipedrive"
        SALESFORCE = "salesforce", "Salesforce"
        CRM_GENERIC = "crm_generic", "CRM (generic JSON)"
        INBOX = "inbox", "Inbox sync"

    class Signature(models.TextChoices):
        VALID = "valid"
        INVALID = "invalid"
        NOT_CONFIGURED = "not_configured", "Not configured (DEBUG only)"

    class State(models.TextChoices):
        RECEIVED = "received"
        PROCESSING = "processing"
        PROCESSED = "processed"
        UNMATCHED = "unmatched", "Unmatched (retried later)"
        IGNORED = "ignored"
        FAILED = "failed"

    provider = models.CharField(max_length=16, choices=Provider.choices)
    provider_event_id = models.CharField(max_length=255)
    organization = models.ForeignKey(
        "agents.Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="webhook_events"
    )
    event_type = models.CharField(max_length=64, blank=True)
    raw_body = models.TextField()
    headers = models.JSONField(default=dict, blank=True)
    signature = models.CharField(max_length=16, choices=Signature.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.RECEIVED)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When the sweep tries an unmatched or failing event again."
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            # A provider retry of the same event is acknowledged and ignored.
            models.UniqueConstraint(fields=["provider", "provider_event_id"], name="webhook_event_unique_per_provider"),
        ]
        indexes = [models.Index(fields=["state", "received_at"], name="webhook_state_received")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.event_type or 'event'} {self.provider_event_id} ({self.state})"
