"""Operator admin for the raw webhook inbox: read-only; the reprocess action is the one lever (it only replays
events that ended without an effect, so an open is never counted twice)."""

import json

from django.contrib import admin, messages
from django.template.defaultfilters import pluralize

from rex_project.admin_utils import pre_block, pretty_json
from rex_project.exceptions import ApplicationError

from .models import WebhookEvent
from .reprocess import REPROCESSABLE_STATES, webhook_event_reprocess

# Credentials some providers send in headers (Pipedrive uses HTTP basic auth): never shown.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("provider", "event_type", "provider_event_id", "signature", "state", "attempts", "received_at")
    list_filter = ("state", "provider", "signature", "organization")
    search_fields = ("provider_event_id", "event_type", "error")
    date_hierarchy = "received_at"
    show_full_result_count = False
    fields = (
        "provider",
        "provider_event_id",
        "organization",
        "event_type",
        "signature",
        "state",
        "attempts",
        "error",
        "received_at",
        "processed_at",
        "next_attempt_at",
        "headers_pretty",
        "raw_body_pretty",
    )
    readonly_fields = fields
    actions = ("reprocess_events",)

    def has_add_permission(self, request):
        return False  # Only providers write to the inbox.

    @admin.action(description="Reprocess selected events (failed, unmatched or ignored)", permissions=["change"])
    def reprocess_events(self, request, queryset):
        reset = skipped = 0
        for event in queryset.only("pk"):  # the service re-reads each row under a lock
            try:
                webhook_event_reprocess(event=event)
            except ApplicationError:
                skipped += 1
            else:
                reset += 1
        if reset:
            self.message_user(
                request, f"{reset} event{pluralize(reset)} reset and queued for processing.", messages.SUCCESS
            )
        if skipped:
            allowed = ", ".join(REPROCESSABLE_STATES)
            self.message_user(
                request,
                f"{skipped} event{pluralize(skipped)} skipped: only {allowed} events are reprocessed.",
                messages.WARNING,
            )

    @admin.display(description="headers")
    def headers_pretty(self, obj: WebhookEvent):
        headers = obj.headers
        if isinstance(headers, dict):
            headers = {k: "[redacted]" if str(k).lower() in SECRET_HEADERS else v for k, v in headers.items()}
        return pretty_json(headers)

    @admin.display(description="raw body")
    def raw_body_pretty(self, obj: WebhookEvent):
        try:
            return pretty_json(json.loads(obj.raw_body))
        except ValueError:
            return pre_block(obj.raw_body)
