"""Organizations, leads, campaigns, missions, agent runs, sending domains, messages, suppressions.

Every row belongs to one organization; every API query is scoped to the caller's.
"""

import functools
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

E164 = RegexValidator(r"^\+[1-9]\d{1,14}$", "Use E.164 format, e.g. +14155550100.")
unit_interval = [MinValueValidator(0.0), MaxValueValidator(1.0)]


@functools.cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value and value not in _timezones():
        raise ValidationError(f"'{value}' is not an IANA time zone such as 'America/New_York'.")


class Organization(models.Model):
    name = models.CharField(max_length=200, unique=True)
    # CAN-SPAM: every commercial email carries the sender's postal address.
    postal_address = models.TextField(blank=True)
    # Frequency cap across channels: at most this many touches (email + SMS) per lead per 7 days.
    max_touches_per_week = models.PositiveSmallIntegerField(default=3)
    sends_per_minute = models.PositiveIntegerField(default=120, help_text="Organization-wide send rate limit.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user belongs to exactly one organization; it scopes everything they can reach."""

    class Role(models.TextChoices):
        OWNER = "owner"
        OPERATOR = "operator"
        VIEWER = "viewer"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.OPERATOR)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"


class Lead(models.Model):
    class State(models.TextChoices):
        NEW = "new"
        SCORED = "scored"
        ENRICHED = "enriched"
        QUALIFIED = "qualified"
        DISQUALIFIED = "disqualified"
        PERSONALIZED = "personalized"
        SCHEDULED = "scheduled"
        CONTACTED = "contacted"
        ENGAGED = "engaged"
        REPLIED = "replied"
        MEETING = "meeting"
        WON = "won"
        LOST = "lost"
        SUPPRESSED = "suppressed"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="leads")
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(max_length=254)
    phone = models.CharField(max_length=16, blank=True, validators=[E164])
    title = models.CharField(max_length=200, blank=True)
    company = models.CharField(max_length=200, blank=True)
    industry = models.CharField(max_length=100, blank=True)
    company_size = models.PositiveIntegerField(null=True, blank=True, help_text="Number of employees.")
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone])
    website = models.URLField(blank=True)
    linkedin_url = models.URLField(blank=True)
    lost_reason = models.CharField(max_length=200, blank=True, help_text="Why the deal died, from the CRM.")
    last_engaged_at = models.DateTimeField(null=True, blank=True, help_text="Last time the lead engaged with us.")

    state = models.CharField(max_length=16, choices=State.choices, default=State.NEW)
    icp_score = models.FloatField(null=True, blank=True, validators=unit_interval)
    reactivation_probability = models.FloatField(null=True, blank=True, validators=unit_interval)
    # {"<field>": {"value": ..., "source": "website|email_domain|firmographics", "fetched_at": iso}}
    enrichment = models.JSONField(default=dict, blank=True)
    last_contacted_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            # Case-insensitive, so a row typed into the admin cannot duplicate an imported one.
            models.UniqueConstraint("organization", Lower("email"), name="lead_unique_email_per_org"),
            models.CheckConstraint(
                condition=Q(icp_score__isnull=True) | Q(icp_score__gte=0, icp_score__lte=1),
                name="lead_icp_score_unit_interval",
            ),
            models.CheckConstraint(
                condition=Q(reactivation_probability__isnull=True)
                | Q(reactivation_probability__gte=0, reactivation_probability__lte=1),
                name="lead_reactivation_probability_unit_interval",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "state"], name="lead_org_state"),
            models.Index(fields=["organization", "company"], name="lead_org_company"),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return f"{name} <{self.email}>" if name else self.email

    @property
    def email_domain(self) -> str:
        return self.email.rsplit("@", 1)[-1].lower()


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        ARCHIVED = "archived"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    goal = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    leads = models.ManyToManyField("Lead", related_name="campaigns", blank=True)
    channels = models.JSONField(default=list, blank=True, help_text='Channels in order, e.g. ["email", "sms"].')
    send_window_start = models.TimeField(null=True, blank=True, help_text="Lead-local start; default 08:00.")
    send_window_end = models.TimeField(null=True, blank=True, help_text="Lead-local end; default 18:00.")
    stop_company_on_reply = models.BooleanField(
        default=False, help_text="A reply from one lead stops every lead at the same company."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="campaign_unique_name_per_org")]

    def __str__(self) -> str:
        return self.name


class Mission(models.Model):
    class Type(models.TextChoices):
        LEAD_REACTIVATION = "lead_reactivation"
        ENRICHMENT = "enrichment"
        ICP_REFRESH = "icp_refresh"
        DOMAIN_AUDIT = "domain_audit"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="missions")
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="missions")
    type = models.CharField(max_length=32, choices=Type.choices, default=Type.LEAD_REACTIVATION)
    priority = models.PositiveSmallIntegerField(default=50, validators=[MaxValueValidator(100)])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    leads = models.ManyToManyField(Lead, through="MissionLead", related_name="missions", blank=True)
    params = models.JSONField(default=dict, blank=True)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    failure_reason = models.TextField(blank=True)
    report = models.JSONField(default=dict, blank=True, help_text="The analytics agent's funnel and A/B report.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(priority__lte=100), name="mission_priority_0_100"),
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"], name="mission_unique_idempotency_key_per_org"
            ),
        ]
        indexes = [models.Index(fields=["organization", "status"], name="mission_org_status")]

    def __str__(self) -> str:
        return f"Mission #{self.pk} {self.type} ({self.status})"

    @property
    def progress(self) -> float:
        """Share of leads processed, 0 to 1."""
        return round(self.processed / self.total, 4) if self.total else 0.0


class MissionLead(models.Model):
    """A lead's place in a mission: lets a failed lead be retried without failing the mission."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        SKIPPED = "skipped"
        FAILED = "failed"

    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="mission_leads")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="mission_leads")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mission", "lead"], name="mission_lead_unique")]
        indexes = [models.Index(fields=["mission", "status"], name="mission_lead_status")]

    def __str__(self) -> str:
        return f"{self.lead} in mission #{self.mission_id}: {self.status}"


class AgentRun(models.Model):
    class Agent(models.TextChoices):
        ICP = "icp", "ICP intelligence"
        SCRAPER = "scraper", "Scraper"
        REVIVER = "reviver", "Reviver"
        PERSONALIZER = "personalizer", "Personalizer"
        DELIVERABILITY = "deliverability", "Deliverability"
        OUTREACH = "outreach", "Outreach"
        ANALYTICS = "analytics", "Analytics"
        COORDINATOR = "coordinator", "Special-forces coordinator"

    class Layer(models.TextChoices):
        STATE_MACHINE = "state_machine", "State machine"
        RULES = "rules", "Business rules"
        LLM = "llm", "LLM reasoner"
        NONE = "none", "No decision"

    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="agent_runs")
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="agent_runs")
    agent = models.CharField(max_length=16, choices=Agent.choices)
    decision_layer = models.CharField(max_length=16, choices=Layer.choices, default=Layer.NONE)
    decision = models.CharField(max_length=64, blank=True, help_text="What was decided, e.g. 'disqualify'.")
    decision_reason = models.CharField(max_length=300, blank=True)
    decision_ms = models.FloatField(null=True, blank=True, help_text="Latency of the decision engine call.")
    rule = models.ForeignKey("DecisionRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    llm_cache_hit = models.BooleanField(null=True, blank=True, help_text="LLM layer only: answered from cache.")
    llm_tokens = models.PositiveIntegerField(default=0)
    llm_fallback = models.BooleanField(default=False, help_text="LLM layer only: no model, deterministic choice.")
    duration_ms = models.FloatField(default=0.0)
    success = models.BooleanField(default=True)
    error = models.TextField(blank=True)
    input_summary = models.JSONField(default=dict, blank=True)
    output_summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["mission", "agent"], name="agentrun_mission_agent"),
            models.Index(fields=["agent", "created_at"], name="agentrun_agent_created"),
            models.Index(fields=["decision_layer", "created_at"], name="agentrun_layer_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_agent_display()} on lead {self.lead_id} ({'ok' if self.success else 'failed'})"


class SendingDomain(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sending_domains")
    domain = models.CharField(max_length=253)
    reputation_score = models.FloatField(default=1.0, validators=unit_interval)
    daily_cap = models.PositiveIntegerField(default=50)
    warmup_stage = models.PositiveSmallIntegerField(default=0, help_text="Days into warm-up; 0 = not started.")
    sent_today = models.PositiveIntegerField(default=0)
    is_paused = models.BooleanField(default=False)
    pause_reason = models.CharField(max_length=200, blank=True)
    dns_checks = models.JSONField(default=dict, blank=True, help_text="Last SPF/DKIM/DMARC results.")
    dkim_selector = models.CharField(max_length=63, default="s1")
    reputation_inputs = models.JSONField(default=dict, blank=True, help_text="The rates the score came from.")
    paused_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "domain"], name="sending_domain_unique_per_org"),
            models.CheckConstraint(
                condition=Q(reputation_score__gte=0, reputation_score__lte=1), name="sending_domain_reputation_0_1"
            ),
        ]

    def __str__(self) -> str:
        return self.domain


class Mailbox(models.Model):
    """A sending address on a domain, with its own warm-up, caps and pause."""

    sending_domain = models.ForeignKey(SendingDomain, on_delete=models.CASCADE, related_name="mailboxes")
    local_part = models.CharField(max_length=64)
    display_name = models.CharField(max_length=100, blank=True)
    daily_cap = models.PositiveIntegerField(default=20, help_text="Today's cap; warm-up raises it to the target.")
    target_daily_cap = models.PositiveIntegerField(default=50, validators=[MaxValueValidator(500)])
    warmup_step = models.PositiveSmallIntegerField(default=5, help_text="Cap increase per day of warm-up.")
    hourly_cap = models.PositiveIntegerField(default=10)
    min_gap_seconds = models.PositiveIntegerField(default=60, help_text="Minimum time between two sends.")
    sent_today = models.PositiveIntegerField(default=0)
    is_paused = models.BooleanField(default=False)
    pause_reason = models.CharField(max_length=200, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sending_domain", "local_part"]
        constraints = [
            models.UniqueConstraint(fields=["sending_domain", "local_part"], name="mailbox_unique_per_domain"),
        ]

    def __str__(self) -> str:
        return self.address

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.sending_domain.domain}"

    @property
    def warming_up(self) -> bool:
        return self.daily_cap < self.target_daily_cap


class PhoneNumber(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="phone_numbers")
    number = models.CharField(max_length=16, validators=[E164])
    daily_cap = models.PositiveIntegerField(default=200)
    sent_today = models.PositiveIntegerField(default=0)
    is_paused = models.BooleanField(default=False)
    pause_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["organization", "number"], name="phone_number_unique_per_org")]

    def __str__(self) -> str:
        return self.number


class Message(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email"
        SMS = "sms"
        LINKEDIN = "linkedin"

    class Status(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"
        CANCELLED = "cancelled"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="messages")
    mission = models.ForeignKey(Mission, on_delete=models.CASCADE, related_name="messages")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="messages")
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    step = models.PositiveSmallIntegerField(default=1)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    subject = models.CharField(max_length=255, blank=True)
    body = models.TextField()
    framework = models.CharField(max_length=8, blank=True)
    tone = models.CharField(max_length=32, blank=True)
    variant = models.CharField(max_length=32, blank=True)
    agent_decisions = models.JSONField(default=dict, blank=True, help_text="Per agent: what it chose and why.")
    sending_domain = models.ForeignKey(
        SendingDomain, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    mailbox = models.ForeignKey(Mailbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    phone_number = models.ForeignKey(
        PhoneNumber, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    from_address = models.CharField(max_length=254, blank=True)
    to_address = models.CharField(max_length=254)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    provider = models.CharField(max_length=32, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    rfc_message_id = models.CharField(max_length=255, blank=True, help_text="Message-ID header, for reply matching.")
    custom_args = models.JSONField(default=dict, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    provider_request = models.JSONField(default=dict, blank=True, help_text="Exact request (sandbox sends).")
    error = models.TextField(blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0, help_text="Provider calls made for this message.")
    scheduled_for = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Never contacted twice for the same step.
            models.UniqueConstraint(fields=["mission", "lead", "step"], name="message_unique_mission_lead_step"),
        ]
        indexes = [
            models.Index(fields=["organization", "status"], name="message_org_status"),
            models.Index(fields=["provider_message_id"], name="message_provider_id"),
            models.Index(fields=["rfc_message_id"], name="message_rfc_id"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.to_address} (step {self.step}, {self.status})"


class Suppression(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email"
        PHONE = "phone"
        DOMAIN = "domain"

    class Reason(models.TextChoices):
        UNSUBSCRIBE = "unsubscribe"
        SMS_STOP = "sms_stop", "SMS opt-out"
        HARD_BOUNCE = "hard_bounce"
        SPAM_REPORT = "spam_report"
        CRM_DO_NOT_CONTACT = "crm_dnc", "CRM do-not-contact"
        MANUAL = "manual"
        IMPORT = "import"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="suppressions")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    value = models.CharField(max_length=254, help_text="Lower-case email, E.164 phone or bare domain.")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    note = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "value"], name="suppression_unique_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value} ({self.reason})"


class DecisionRule(models.Model):
    """An operator-editable business rule: the decision engine's second layer.

    ``condition`` is a rule-engine expression over the stage's facts (never Python eval),
    e.g. ``icp_score < 0.4`` or ``days_since_contact != null and days_since_contact < 14``.
    """

    class Stage(models.TextChoices):
        QUALIFY = "qualify", "Qualify (after ICP scoring)"
        REACTIVATE = "reactivate", "Reactivate (after reviver scoring)"
        PERSONALIZE = "personalize", "Personalize (strategy)"
        DELIVERABILITY = "deliverability", "Deliverability (sending domain)"
        OUTREACH = "outreach", "Outreach (right before sending)"

    class Action(models.TextChoices):
        PROCEED = "proceed"
        SKIP = "skip"
        DISQUALIFY = "disqualify"
        DELAY = "delay"
        ROUTE_CHANNEL = "route_channel", "Route to channel"
        ROTATE_DOMAIN = "rotate_domain", "Rotate domain"
        PAUSE = "pause"
        STOP = "stop"
        ESCALATE_LLM = "escalate_llm", "Escalate to LLM"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="decision_rules")
    name = models.CharField(max_length=200)
    stage = models.CharField(max_length=16, choices=Stage.choices)
    condition = models.TextField(help_text="rule-engine expression over the stage's facts.")
    action = models.CharField(max_length=16, choices=Action.choices)
    parameters = models.JSONField(default=dict, blank=True, help_text='e.g. {"days": 14} or {"channel": "sms"}.')
    priority = models.PositiveSmallIntegerField(default=100, help_text="Lower runs first; the first match wins.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["stage", "priority", "id"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="decision_rule_unique_name")]
        indexes = [models.Index(fields=["organization", "stage", "enabled"], name="decision_rule_lookup")]

    def __str__(self) -> str:
        return f"[{self.stage}] {self.name}: if {self.condition} then {self.action}"


class ICPProfile(models.Model):
    """What the organization's ideal customer looks like, and how much each part weighs."""

    class Source(models.TextChoices):
        MANUAL = "manual"
        DERIVED = "derived", "Derived from won deals and positive outcomes"

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="icp_profile")
    # Weights of the four parts of the score; normalised when scoring, so they need not sum to 1.
    weights = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"industry": 0.35, "seniority": 0.3, "company_size": 0.2, "geography": 0.15}',
    )
    target_industries = models.JSONField(default=list, blank=True)
    target_seniorities = models.JSONField(default=list, blank=True, help_text='e.g. ["c_level", "vp", "director"]')
    company_size_min = models.PositiveIntegerField(null=True, blank=True)
    company_size_max = models.PositiveIntegerField(null=True, blank=True)
    target_regions = models.JSONField(default=list, blank=True, help_text='Time zone areas, e.g. ["America", "Europe"]')
    qualify_threshold = models.FloatField(default=0.4, validators=unit_interval)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.MANUAL)
    sample_size = models.PositiveIntegerField(default=0, help_text="Outcomes the derived profile was built from.")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"ICP of {self.organization}"


class Alert(models.Model):
    """Something an operator must look at; raised once per crossing, resolved when it clears."""

    class Kind(models.TextChoices):
        BOUNCE_RATE = "bounce_rate"
        COMPLAINT_RATE = "complaint_rate"
        DNS_FAILURE = "dns_failure", "DNS authentication failure"
        LOW_REPUTATION = "low_reputation"
        STUCK_SENDING = "stuck_sending", "Messages stuck in sending"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    sending_domain = models.ForeignKey(SendingDomain, null=True, blank=True, on_delete=models.CASCADE)
    mailbox = models.ForeignKey(Mailbox, null=True, blank=True, on_delete=models.CASCADE)
    subject = models.CharField(max_length=64, help_text='What it is about, e.g. "domain:5" or "mailbox:9".')
    message = models.CharField(max_length=500)
    figures = models.JSONField(default=dict, blank=True)
    raised_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            # At most one open alert per condition and subject: a crossing alerts once.
            models.UniqueConstraint(
                fields=["organization", "kind", "subject"],
                condition=Q(resolved_at__isnull=True),
                name="alert_one_open_per_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message}"


class LinkedInTask(models.Model):
    """LinkedIn has no public messaging API: an operator sends the message by hand and says so."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        SKIPPED = "skipped"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="linkedin_tasks")
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="linkedin_task")
    profile_url = models.URLField()
    text = models.TextField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    handled_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    handled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["organization", "status"], name="linkedin_task_queue")]

    def __str__(self) -> str:
        return f"LinkedIn to {self.profile_url} ({self.status})"
