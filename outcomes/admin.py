"""Operator admin for outcome labels: what each message did, grouped like the seed's outcome_labels."""

from django.contrib import admin

from rex_project.admin_utils import json_display

from .models import OutcomeLabel


@admin.register(OutcomeLabel)
class OutcomeLabelAdmin(admin.ModelAdmin):
    list_display = (
        "lead",
        "channel",
        "framework",
        "tone",
        "delivered",
        "opened",
        "replied",
        "sentiment_label",
        "meeting_booked",
        "deal_closed",
        "training_label",
        "training_weight",
    )
    list_filter = (
        "training_label",
        "included_in_training",
        "channel",
        "sentiment_label",
        "delivered",
        "opened",
        "replied",
        "meeting_booked",
        "deal_closed",
        "organization",
    )
    list_select_related = ("lead",)
    search_fields = ("lead__email", "lead__company", "subject_line")
    date_hierarchy = "created_at"
    show_full_result_count = False
    raw_id_fields = ("lead", "mission", "message")
    autocomplete_fields = ("organization", "campaign", "model_version")
    readonly_fields = ("agent_decisions_pretty", "lead_context_pretty", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("organization", "campaign", "mission", "lead", "message", "model_version")}),
        ("Message", {"fields": ("channel", "subject_line", "message_body", "sent_at")}),
        ("Agent decisions", {"fields": ("framework", "tone", "agent_decisions_pretty")}),
        ("Delivery", {"fields": ("delivered", "delivered_at", "bounced", "bounce_type", "bounce_reason")}),
        (
            "Engagement",
            {
                "fields": (
                    ("opened", "open_count", "bot_open_count", "first_opened_at"),
                    ("clicked", "click_count", "bot_click_count", "first_clicked_at"),
                    ("unsubscribed", "spam_reported"),
                )
            },
        ),
        ("Reply", {"fields": ("replied", "replied_at", "reply_text", "reply_sentiment_score")}),
        (
            "Sentiment",
            {
                "fields": (
                    "sentiment_label",
                    "interest_signal",
                    "interest_level",
                    "objection_detected",
                    "objection_type",
                    "sentiment_reasoning",
                )
            },
        ),
        ("Meeting", {"fields": ("meeting_booked", "meeting_booked_at", "meeting_completed", "meeting_no_show")}),
        (
            "Revenue",
            {
                "fields": (
                    "opportunity_created",
                    "deal_closed",
                    "deal_lost",
                    "deal_value",
                    "deal_closed_at",
                    "time_to_close_days",
                )
            },
        ),
        (
            "Lead context",
            {"fields": ("lead_industry", "lead_role", "company_size", "icp_score", "lead_context_pretty")},
        ),
        (
            "Training",
            {"fields": ("training_label", "training_weight", "included_in_training", "included_in_training_at")},
        ),
        ("Audit", {"classes": ("collapse",), "fields": ("created_at", "updated_at")}),
    )

    agent_decisions_pretty = json_display("agent_decisions")
    lead_context_pretty = json_display("lead_context")
