"""Operator admin for outcome labels: what each message did, grouped like the seed's outcome_labels.

Also the "What works" page: winning strategies and agent performance with Wilson intervals, per organization.
"""

from datetime import datetime, time

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from agents.models import AgentRun, Message, Organization
from outcomes import labels
from outcomes.selectors import DEFAULT_MIN_SAMPLE, METRICS, RATE_COUNTS, agent_performance, strategy_leaderboard
from rex_project.admin_utils import json_display

from .models import OutcomeLabel

# The weights seed 004's table can give (outcomes.labels); a weight set by hand shows under none of them.
TRAINING_WEIGHTS = sorted({weight for _, weight in (
    labels.DEAL_CLOSED, labels.MEETING_COMPLETED, labels.MEETING_BOOKED, labels.INTERESTED_REPLY,
    labels.OBJECTION_REPLY, labels.NEUTRAL_REPLY, labels.BOUNCE, labels.OPT_OUT, labels.NO_SIGNAL,
)})  # fmt: skip


class ReplySentimentScoreFilter(admin.SimpleListFilter):
    title = "reply sentiment score"
    parameter_name = "sentiment_score"
    BANDS = {
        "negative": ("Negative (below 0)", {"reply_sentiment_score__lt": 0}),
        "zero": ("Neutral (0)", {"reply_sentiment_score": 0}),
        "positive": ("Positive (above 0)", {"reply_sentiment_score__gt": 0}),
        "none": ("Not scored", {"reply_sentiment_score__isnull": True}),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.BANDS.items()]

    def queryset(self, request, queryset):
        band = self.BANDS.get(self.value())
        return queryset.filter(**band[1]) if band else queryset


class TrainingWeightFilter(admin.SimpleListFilter):
    title = "training weight"
    parameter_name = "weight"

    def lookups(self, request, model_admin):
        return [(str(weight), f"{weight:g}") for weight in TRAINING_WEIGHTS]

    def queryset(self, request, queryset):
        try:
            return queryset.filter(training_weight=float(self.value())) if self.value() else queryset
        except ValueError:
            return queryset.none()


class WhatWorksForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=Organization.objects.order_by("name"))
    channel = forms.ChoiceField(choices=[("", "All channels"), *Message.Channel.choices], required=False)
    metric = forms.ChoiceField(choices=[(metric, metric.replace("_", " ")) for metric in METRICS])
    min_sample = forms.IntegerField(
        min_value=1, label="Minimum sends", help_text="Arms with fewer sends are listed to explore, not ranked."
    )
    since = forms.DateField(required=False, help_text="Only messages (and agent runs) from this day on.")
    agent = forms.ChoiceField(
        choices=[("", "All agents"), *AgentRun.Agent.choices],
        required=False,
        help_text="Agent performance: only this agent's runs (each campaign's strategies stay the same).",
    )

    @classmethod
    def for_request(cls, request) -> "WhatWorksForm":
        """Bound to the query string; on a first visit, to defaults (the operator's own organization)."""
        if request.GET:
            return cls(request.GET)
        membership = getattr(request.user, "membership", None)
        if membership is not None:
            organization_id = membership.organization_id
        else:
            organization_id = Organization.objects.order_by("name").values_list("pk", flat=True).first()
        return cls({"organization": organization_id, "metric": "reply_rate", "min_sample": DEFAULT_MIN_SAMPLE})

    def since_datetime(self) -> datetime | None:
        day = self.cleaned_data.get("since")
        return timezone.make_aware(datetime.combine(day, time.min)) if day else None


def _rate_cells(row: dict) -> dict[str, str]:
    """Each rate as a percentage with its 95% Wilson interval, ready to print."""
    return {rate: f"{row[rate]:.1%} [{row['ci95'][rate][0]:.1%}, {row['ci95'][rate][1]:.1%}]" for rate in RATE_COUNTS}


def _what_works(form: WhatWorksForm) -> dict:
    organization, since = form.cleaned_data["organization"], form.since_datetime()
    board = strategy_leaderboard(
        organization_id=organization.pk,
        metric=form.cleaned_data["metric"],
        min_sample=form.cleaned_data["min_sample"],
        channel=form.cleaned_data["channel"] or None,
        since=since,
    )
    campaigns = agent_performance(
        organization=organization,
        since=since,
        agent=form.cleaned_data["agent"] or None,
        metric=form.cleaned_data["metric"],
        min_sample=form.cleaned_data["min_sample"],
    )
    per_campaign = [row for campaign in campaigns for row in (campaign["outcomes"], *campaign["strategies"])]
    for row in [*board["ranked"], *board["exploring"], *per_campaign]:
        row["cells"] = _rate_cells(row)
    for campaign in campaigns:
        for agent in campaign["agents"]:
            low, high = agent["success_rate_ci95"]
            agent["success_cell"] = f"{agent['success_rate']:.1%} [{low:.1%}, {high:.1%}]"
    metric = form.cleaned_data["metric"].replace("_", " ")
    return {"ranked": board["ranked"], "exploring": board["exploring"], "campaigns": campaigns, "metric": metric}


@admin.register(OutcomeLabel)
class OutcomeLabelAdmin(admin.ModelAdmin):
    change_list_template = "admin/outcomes/outcomelabel/change_list.html"
    list_display = (
        "lead",
        "channel",
        "framework",
        "tone",
        "delivered",
        "opened",
        "replied",
        "sentiment_label",
        "reply_sentiment_score",
        "meeting_booked",
        "deal_closed",
        "training_label",
        "training_weight",
    )
    list_filter = (
        "training_label",
        TrainingWeightFilter,
        "included_in_training",
        "channel",
        "sentiment_label",
        ReplySentimentScoreFilter,
        "interest_level",
        "objection_type",
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
    # The label and weight follow from the outcome fields (seed 004's table): never typed in.
    readonly_fields = (
        "agent_decisions_pretty",
        "lead_context_pretty",
        "training_label",
        "training_weight",
        "created_at",
        "updated_at",
    )
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

    def save_model(self, request, obj, form, change):
        """An operator's correction (a deal the CRM missed) relabels the row, as a webhook update does."""
        obj.training_label, obj.training_weight = labels.training_label(obj)
        super().save_model(request, obj, form, change)

    def get_urls(self):
        what_works = self.admin_site.admin_view(self.what_works_view)
        return [path("what-works/", what_works, name="outcomes_outcomelabel_what_works"), *super().get_urls()]

    def what_works_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = WhatWorksForm.for_request(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "What works",
            "form": form,
            **(_what_works(form) if form.is_valid() else {}),
        }
        return TemplateResponse(request, "admin/outcomes/outcomelabel/what_works.html", context)
