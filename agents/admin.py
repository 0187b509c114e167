"""Operator admin for organizations, leads, campaigns, missions, agent runs, domains, messages, suppressions."""

from django.contrib import admin
from django.db import models
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html

from agents.decisions.rules import rules_install_defaults
from agents.domains import (
    domain_health_check,
    mailbox_pause,
    mailbox_pause_and_move,
    mailbox_resume,
    sending_domain_pause,
    sending_domain_pause_and_move,
    sending_domain_resume,
    warmup_stage,
)
from agents.missions import mission_cancel, mission_create, mission_retry_failed_leads
from rex_project.admin_utils import json_display

from .models import (
    AgentRun,
    Alert,
    Campaign,
    Lead,
    LinkedInTask,
    Mailbox,
    Membership,
    Message,
    Mission,
    MissionLead,
    Organization,
    PhoneNumber,
    SendingDomain,
    Suppression,
)

AUDIT = ("Audit", {"classes": ("collapse",), "fields": ("created_at", "updated_at")})


class LatestRowsFormSet(BaseInlineFormSet):
    """Only the first ``limit`` rows of the inline's (newest-first) queryset: a mission can have thousands."""

    limit = 50

    def get_queryset(self):
        if not hasattr(self, "_queryset"):
            self._queryset = super().get_queryset()[: self.limit]
        return self._queryset


class ReadOnlyTabularInline(admin.TabularInline):
    """A view-only inline: no add, change or delete; every listed field is read-only."""

    formset = LatestRowsFormSet
    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ("user",)
    readonly_fields = ("created_at",)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)
    date_hierarchy = "created_at"
    readonly_fields = ("created_at",)
    inlines = (MembershipInline,)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:  # a new organization starts with the default decision rules
            rules_install_defaults(organization=obj)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "organization", "role", "created_at")
    list_filter = ("role", "organization")
    list_select_related = ("user", "organization")
    search_fields = ("user__username", "user__email", "organization__name")
    autocomplete_fields = ("user", "organization")
    readonly_fields = ("created_at",)


@admin.register(Lead)
class LeadAdmin(admin.ModelAdmin):
    list_display = (
        "email",
        "full_name",
        "company",
        "industry",
        "state",
        "icp_score",
        "reactivation_probability",
        "last_contacted_at",
        "organization",
    )
    list_filter = ("state", "organization")
    list_select_related = ("organization",)
    search_fields = ("email", "first_name", "last_name", "company")
    date_hierarchy = "created_at"
    show_full_result_count = False
    autocomplete_fields = ("organization",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    # The lifecycle state and scores are the agents' to change, not an edit form's.
    readonly_fields = (
        "state", "icp_score", "reactivation_probability", "last_contacted_at",
        "enrichment_pretty", "created_at", "updated_at",
    )  # fmt: skip
    actions = ("launch_reactivation",)
    fieldsets = (
        (None, {"fields": ("organization", "email", "first_name", "last_name", "title", "phone", "timezone")}),
        ("Company", {"fields": ("company", "industry", "company_size", "website", "linkedin_url")}),
        (
            "Pipeline",
            {
                "fields": (
                    "state",
                    "icp_score",
                    "reactivation_probability",
                    "lost_reason",
                    "last_engaged_at",
                    "last_contacted_at",
                )
            },
        ),
        ("Enrichment", {"fields": ("enrichment_pretty",)}),
        AUDIT,
    )

    @admin.action(description="Launch a reactivation mission for the selected leads")
    def launch_reactivation(self, request, queryset):
        by_org: dict[int, list[int]] = {}
        for lead_id, org_id in queryset.values_list("pk", "organization_id"):
            by_org.setdefault(org_id, []).append(lead_id)
        for org_id, lead_ids in by_org.items():
            mission, _ = mission_create(
                organization=Organization.objects.get(pk=org_id), type=Mission.Type.LEAD_REACTIVATION,
                lead_ids=lead_ids, requested_by=request.user,
            )  # fmt: skip
            self.message_user(request, f"Mission #{mission.pk} launched for {len(lead_ids)} lead(s).")

    enrichment_pretty = json_display("enrichment")

    @admin.display(description="name", ordering="last_name")
    def full_name(self, obj: Lead) -> str:
        return f"{obj.first_name} {obj.last_name}".strip()


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "status", "channels", "stop_company_on_reply", "created_by", "created_at")
    list_filter = ("status", "stop_company_on_reply", "organization")
    list_select_related = ("organization", "created_by")
    search_fields = ("name", "goal")
    date_hierarchy = "created_at"
    autocomplete_fields = ("organization", "created_by")
    readonly_fields = ("created_at", "updated_at")


class MissionLeadInline(ReadOnlyTabularInline):
    model = MissionLead
    fields = ("lead", "status", "error", "updated_at")
    ordering = ("-updated_at", "-id")
    verbose_name_plural = f"mission leads (latest {LatestRowsFormSet.limit})"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("lead")


class AgentRunInline(ReadOnlyTabularInline):
    model = AgentRun
    fields = ("agent", "lead", "decision_layer", "decision", "success", "duration_ms", "error", "created_at")
    ordering = ("-created_at", "-id")
    verbose_name_plural = f"agent runs (latest {LatestRowsFormSet.limit})"

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("lead")


@admin.register(Mission)
class MissionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "type",
        "status",
        "priority",
        "progress_display",
        "organization",
        "requested_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "type", "organization")
    list_select_related = ("organization", "requested_by")
    search_fields = ("idempotency_key", "campaign__name", "organization__name", "failure_reason")
    date_hierarchy = "created_at"
    autocomplete_fields = ("organization", "campaign", "requested_by")
    readonly_fields = (
        "total",
        "processed",
        "progress_display",
        "agent_runs_link",
        "params_pretty",
        "report_pretty",
        "status",
        "failure_reason",
        "created_at",
        "started_at",
        "finished_at",
    )
    fieldsets = (
        (None, {"fields": ("organization", "campaign", "type", "priority", "status", "requested_by")}),
        ("Progress", {"fields": ("total", "processed", "progress_display", "agent_runs_link", "failure_reason")}),
        ("Report", {"fields": ("report_pretty",)}),
        ("Parameters", {"fields": ("idempotency_key", "params_pretty")}),
        ("Timeline", {"fields": ("created_at", "started_at", "finished_at")}),
    )
    inlines = (MissionLeadInline, AgentRunInline)

    params_pretty = json_display("params")
    report_pretty = json_display("report")
    actions = ("cancel_missions", "retry_failed_leads")

    def has_add_permission(self, request) -> bool:
        return False  # missions start from the API or the lead list's "launch" action

    @admin.action(description="Cancel selected missions")
    def cancel_missions(self, request, queryset):
        cancelled = 0
        for mission in queryset.filter(status__in=[Mission.Status.QUEUED, Mission.Status.RUNNING]):
            mission_cancel(mission=mission)
            cancelled += 1
        self.message_user(request, f"Cancelled {cancelled} mission(s).")

    @admin.action(description="Retry failed leads (as a new mission)")
    def retry_failed_leads(self, request, queryset):
        retried = sum(mission_retry_failed_leads(mission=mission) for mission in queryset)
        self.message_user(request, f"Retrying {retried} failed lead(s) in new missions.")

    @admin.display(description="progress", ordering="processed")
    def progress_display(self, obj: Mission) -> str:
        return f"{obj.processed}/{obj.total} ({obj.progress:.0%})"

    @admin.display(description="all agent runs")
    def agent_runs_link(self, obj: Mission):
        if obj.pk is None:
            return "—"
        url = reverse("admin:agents_agentrun_changelist")
        return format_html('<a href="{}?mission__id__exact={}">{} runs</a>', url, obj.pk, obj.agent_runs.count())


@admin.register(MissionLead)
class MissionLeadAdmin(admin.ModelAdmin):
    list_display = ("id", "mission", "lead", "status", "updated_at")
    list_filter = ("status",)
    list_select_related = ("mission", "lead")
    search_fields = ("lead__email", "lead__company", "error")
    date_hierarchy = "updated_at"
    show_full_result_count = False
    raw_id_fields = ("mission", "lead")
    readonly_fields = ("updated_at",)


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    """The agents' audit log: view-only."""

    list_display = (
        "id",
        "created_at",
        "agent",
        "mission",
        "lead",
        "decision_layer",
        "decision",
        "success",
        "duration_ms",
    )
    list_filter = ("agent", "decision_layer", "success")
    list_select_related = ("mission", "lead")
    search_fields = ("decision", "error", "lead__email")
    date_hierarchy = "created_at"
    show_full_result_count = False
    raw_id_fields = ("mission", "lead")
    fields = (
        "mission",
        "lead",
        "agent",
        "decision_layer",
        "decision",
        "success",
        "duration_ms",
        "error",
        "input_summary_pretty",
        "output_summary_pretty",
        "created_at",
    )
    readonly_fields = fields

    input_summary_pretty = json_display("input_summary")
    output_summary_pretty = json_display("output_summary")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class MailboxInline(admin.TabularInline):
    model = Mailbox
    extra = 0
    fields = ("local_part", "display_name", "daily_cap", "target_daily_cap", "sent_today", "is_paused", "pause_reason")


@admin.register(SendingDomain)
class SendingDomainAdmin(admin.ModelAdmin):
    list_display = (
        "domain",
        "organization",
        "reputation_score",
        "daily_cap",
        "sent_today",
        "warmup_stage",
        "is_paused",
        "pause_reason",
        "last_checked_at",
    )
    list_filter = ("is_paused", "organization")
    list_select_related = ("organization",)
    search_fields = ("domain", "pause_reason")
    date_hierarchy = "created_at"
    autocomplete_fields = ("organization",)
    readonly_fields = ("dns_checks_pretty", "reputation_inputs_pretty", "paused_at", "last_checked_at", "created_at")
    inlines = (MailboxInline,)
    fields = (
        "organization",
        "domain",
        "dkim_selector",
        "reputation_score",
        "reputation_inputs_pretty",
        "daily_cap",
        "warmup_stage",
        "sent_today",
        "is_paused",
        "pause_reason",
        "paused_at",
        "dns_checks_pretty",
        "last_checked_at",
        "created_at",
    )
    actions = ("pause_domains", "resume_domains", "rotate_domains", "check_domains_now")

    dns_checks_pretty = json_display("dns_checks", "DNS checks")
    reputation_inputs_pretty = json_display("reputation_inputs", "Reputation inputs")

    @admin.action(description="Pause selected domains")
    def pause_domains(self, request, queryset):
        for domain in queryset:
            sending_domain_pause(domain, reason=f"paused by {request.user.get_username()}")
        self.message_user(request, f"Paused {len(queryset)} domain(s).")

    @admin.action(description="Resume selected domains")
    def resume_domains(self, request, queryset):
        for domain in queryset.filter(is_paused=True):
            sending_domain_resume(domain)
        self.message_user(request, "Resumed the selected domains; open alerts stay until their condition clears.")

    @admin.action(description="Rotate: pause and move queued messages to other domains")
    def rotate_domains(self, request, queryset):
        reason = f"rotated by {request.user.get_username()}"
        moved = sum(sending_domain_pause_and_move(domain, reason=reason) for domain in queryset)
        self.message_user(request, f"Paused {len(queryset)} domain(s); moved {moved} queued message(s).")

    @admin.action(description="Check DNS and reputation now")
    def check_domains_now(self, request, queryset):
        for domain in queryset:
            domain_health_check(domain)
        self.message_user(request, f"Checked {len(queryset)} domain(s).")


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("to_address", "channel", "step", "status", "provider_message_id", "sending_domain", "sent_at")
    list_filter = ("status", "channel", "provider", "organization")
    list_select_related = ("sending_domain",)
    search_fields = ("to_address", "provider_message_id", "rfc_message_id", "subject")
    date_hierarchy = "created_at"
    show_full_result_count = False
    raw_id_fields = ("mission", "lead")
    autocomplete_fields = ("organization", "campaign", "sending_domain")
    readonly_fields = (
        "provider",
        "provider_message_id",
        "rfc_message_id",
        "sent_at",
        "custom_args_pretty",
        "headers_pretty",
        "provider_request_pretty",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("organization", "mission", "lead", "campaign", "step", "channel", "status")}),
        ("Content", {"fields": ("subject", "body", "framework", "tone", "variant")}),
        (
            "Delivery",
            {
                "fields": (
                    "sending_domain",
                    "from_address",
                    "to_address",
                    "scheduled_for",
                    "sent_at",
                    "provider",
                    "provider_message_id",
                    "rfc_message_id",
                    "error",
                )
            },
        ),
        ("Provider payloads", {"fields": ("custom_args_pretty", "headers_pretty", "provider_request_pretty")}),
        AUDIT,
    )

    custom_args_pretty = json_display("custom_args")
    headers_pretty = json_display("headers")
    provider_request_pretty = json_display("provider_request")


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("value", "kind", "reason", "organization", "note", "created_at")
    list_filter = ("kind", "reason", "organization")
    list_select_related = ("organization",)
    search_fields = ("value", "note")
    date_hierarchy = "created_at"
    show_full_result_count = False
    autocomplete_fields = ("organization",)
    readonly_fields = ("created_at",)


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin):
    list_display = (
        "address_display", "warmup_display", "sent_today", "hourly_cap", "is_paused", "pause_reason", "last_sent_at",
    )  # fmt: skip
    list_filter = ("is_paused", "sending_domain__organization")
    list_select_related = ("sending_domain",)
    search_fields = ("local_part", "sending_domain__domain")
    autocomplete_fields = ("sending_domain",)
    readonly_fields = ("warmup_display", "last_sent_at", "created_at")
    actions = ("pause_mailboxes", "resume_mailboxes", "rotate_mailboxes", "check_mailboxes_now")

    @admin.display(description="address", ordering="local_part")
    def address_display(self, obj: Mailbox) -> str:
        return obj.address

    @admin.display(description="warm-up (cap/target)", ordering="daily_cap")
    def warmup_display(self, obj: Mailbox) -> str:
        stage = warmup_stage(obj)
        if not stage["warming_up"]:
            return f"{obj.daily_cap}/{obj.target_daily_cap} warmed up"
        return f"{obj.daily_cap}/{obj.target_daily_cap} (+{obj.warmup_step}/day, {stage['days_left']} day(s) left)"

    @admin.action(description="Pause selected mailboxes (queued messages stay)")
    def pause_mailboxes(self, request, queryset):
        for mailbox in queryset:
            mailbox_pause(mailbox, reason=f"paused by {request.user.get_username()}")
        self.message_user(request, f"Paused {len(queryset)} mailbox(es); their queued messages wait.")

    @admin.action(description="Resume selected mailboxes")
    def resume_mailboxes(self, request, queryset):
        for mailbox in queryset.filter(is_paused=True):
            mailbox_resume(mailbox)
        self.message_user(request, "Resumed the selected mailboxes.")

    @admin.action(description="Rotate: pause and move queued messages to other mailboxes")
    def rotate_mailboxes(self, request, queryset):
        reason = f"rotated by {request.user.get_username()}"
        moved = sum(mailbox_pause_and_move(mailbox, reason=reason) for mailbox in queryset.select_related(
            "sending_domain__organization"
        ))  # fmt: skip
        self.message_user(request, f"Paused {len(queryset)} mailbox(es); moved {moved} queued message(s).")

    @admin.action(description="Check their domains' DNS and reputation now")
    def check_mailboxes_now(self, request, queryset):
        domains = SendingDomain.objects.filter(pk__in=queryset.values("sending_domain_id"))
        for domain in domains:
            domain_health_check(domain)
        self.message_user(request, f"Checked {len(domains)} domain(s).")


@admin.register(PhoneNumber)
class PhoneNumberAdmin(admin.ModelAdmin):
    list_display = ("number", "organization", "daily_cap", "sent_today", "is_paused", "pause_reason")
    list_filter = ("is_paused", "organization")
    list_select_related = ("organization",)
    search_fields = ("number",)
    autocomplete_fields = ("organization",)
    readonly_fields = ("created_at",)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("kind", "message", "organization", "sending_domain", "mailbox", "raised_at", "resolved_at")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter), "organization")
    list_select_related = ("organization", "sending_domain", "mailbox__sending_domain")
    search_fields = ("message", "subject")
    date_hierarchy = "raised_at"
    readonly_fields = ("organization", "kind", "subject", "sending_domain", "mailbox", "message", "figures_pretty",
                       "raised_at")  # fmt: skip
    exclude = ("figures",)
    figures_pretty = json_display("figures")

    def has_add_permission(self, request) -> bool:
        return False  # alerts are raised by the health checks


@admin.register(LinkedInTask)
class LinkedInTaskAdmin(admin.ModelAdmin):
    list_display = ("profile_url", "status", "organization", "created_at", "handled_by", "handled_at")
    list_filter = ("status", "organization")
    list_select_related = ("organization", "handled_by")
    search_fields = ("profile_url", "text")
    date_hierarchy = "created_at"
    raw_id_fields = ("message",)
    readonly_fields = ("organization", "message", "profile_url", "text", "handled_by", "handled_at", "created_at")

    def has_add_permission(self, request) -> bool:
        return False  # created by the outreach step


# Admin pages that live beside the code they manage.
from agents import outreach_admin as _outreach_admin  # noqa: E402,F401
from agents import suppression_admin as _suppression_admin  # noqa: E402,F401
from agents.decisions import admin as _decisions_admin  # noqa: E402,F401
from agents.pipeline import admin as _pipeline_admin  # noqa: E402,F401
