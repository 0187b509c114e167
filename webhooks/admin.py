"""Operator admin for the raw webhook inbox: everything read-only except the processing state."""

import json

from django.contrib import admin

from rex_project.admin_utils import pre_block, pretty_json

from .models import WebhookEvent

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
        "headers_pretty",
        "raw_body_pretty",
    )
    readonly_fields = tuple(f for f in fields if f != "state")

    def has_add_permission(self, request):
        return False  # Only providers write to the inbox.

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
