"""Every admin page renders for a superuser; REX admin pages show their data the way operators need it."""

import itertools
from collections import defaultdict
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, User
from django.core import checks
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule
from django_celery_results.models import GroupResult, TaskResult
from rest_framework.authtoken.models import TokenProxy

from agents.models import (
    AgentRun,
    Alert,
    Campaign,
    DecisionRule,
    ICPProfile,
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
from outcomes.models import OutcomeLabel
from tests import factories as f
from training.models import ModelVersion, PromotionDecision, TrainingRun
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

REX_APPS = {"agents", "outcomes", "training", "webhooks"}
REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)
_n = itertools.count()

# REX models: filled-in foreign keys so change pages and changelists render every related widget and column.
REX_BUILDERS = {
    Organization: f.OrganizationFactory,
    Membership: f.MembershipFactory,
    Lead: lambda: f.LeadFactory(enrichment={"industry": {"value": "SaaS", "source": "website"}}),
    Campaign: lambda: f.CampaignFactory(created_by=f.UserFactory()),
    Mission: lambda: f.MissionFactory(requested_by=f.UserFactory(), total=4, processed=1, params={"limit": 10}),
    MissionLead: f.MissionLeadFactory,
    AgentRun: f.AgentRunFactory,
    SendingDomain: lambda: f.SendingDomainFactory(dns_checks={"spf": "pass"}),
    Message: lambda: f.MessageFactory(headers={"X-REX": "1"}, provider_request={"to": "x"}),
    Suppression: f.SuppressionFactory,
    OutcomeLabel: lambda: f.OutcomeLabelFactory(model_version=f.ModelVersionFactory(), agent_decisions={"a": 1}),
    WebhookEvent: lambda: f.WebhookEventFactory(organization=f.OrganizationFactory()),
    ModelVersion: lambda: f.ModelVersionFactory(metrics={"auc": 0.71}),
    PromotionDecision: f.PromotionDecisionFactory,
    DecisionRule: f.DecisionRuleFactory,
    Mailbox: f.MailboxFactory,
    PhoneNumber: f.PhoneNumberFactory,
    Alert: f.AlertFactory,
    LinkedInTask: f.LinkedInTaskFactory,
    ICPProfile: lambda: f.ICPProfileFactory(weights={"industry": 0.5}),
    TrainingRun: lambda: f.TrainingRunFactory(
        organization=f.OrganizationFactory(),
        model_version=f.ModelVersionFactory(),
        requested_by=f.UserFactory(),
        events=[{"status": "running"}],
    ),
}

# Third-party models registered in the admin that are cheap to build.
OTHER_BUILDERS = {
    User: f.UserFactory,
    Group: lambda: Group.objects.create(name=f"group-{next(_n)}"),
    TokenProxy: lambda: TokenProxy.objects.create(user=f.UserFactory()),
    IntervalSchedule: lambda: IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS),
    CrontabSchedule: lambda: CrontabSchedule.objects.create(minute="0", hour="4"),
    SolarSchedule: lambda: SolarSchedule.objects.create(event="sunrise", latitude=37.77, longitude=-122.42),
    ClockedSchedule: lambda: ClockedSchedule.objects.create(clocked_time=timezone.now()),
    PeriodicTask: lambda: PeriodicTask.objects.create(
        name=f"task-{next(_n)}",
        task="rex_project.tasks.noop",
        interval=IntervalSchedule.objects.create(every=1, period=IntervalSchedule.HOURS),
    ),
    TaskResult: lambda: TaskResult.objects.create(task_id=f"task-{next(_n)}", status="SUCCESS"),
    GroupResult: lambda: GroupResult.objects.create(group_id=f"group-{next(_n)}"),
}

# The token admin addresses a token by its user's id.
OBJECT_ID = {TokenProxy: lambda token: token.user_id}


def _label(model) -> str:
    return model._meta.label


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _build(model):
    """An instance of ``model``; every REX model must have a factory, other models are skipped without one."""
    if model in REX_BUILDERS:
        return REX_BUILDERS[model]()
    if model._meta.app_label in REX_APPS:
        pytest.fail(f"{_label(model)} is registered in the admin but has no entry in REX_BUILDERS")
    if model in OTHER_BUILDERS:
        return OTHER_BUILDERS[model]()
    return None


def _change_url(obj) -> str:
    object_id = OBJECT_ID.get(type(obj), lambda o: o.pk)(obj)
    return _url(type(obj), "change", quote(object_id))


class _FormData(HTMLParser):
    """The fields a browser would submit from the form with id ``form_id``."""

    def __init__(self, form_id: str):
        super().__init__()
        self.form_id, self.inside, self.select, self.textarea = form_id, False, None, None
        self.data = defaultdict(list)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        elif not self.inside:
            return
        elif tag == "input" and attrs.get("name") and attrs.get("type") not in {"submit", "button", "file"}:
            if attrs.get("type") not in {"checkbox", "radio"} or "checked" in attrs:
                self.data[attrs["name"]].append(attrs.get("value") or ("on" if attrs.get("type") == "checkbox" else ""))
        elif tag == "select":
            self.select = attrs.get("name")
        elif tag == "option" and self.select and "selected" in attrs:
            self.data[self.select].append(attrs.get("value", ""))
        elif tag == "textarea":
            self.textarea = [attrs["name"], ""]

    def handle_data(self, data):
        if self.textarea:
            self.textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None
        elif tag == "textarea" and self.textarea:
            name, text = self.textarea
            self.data[name].append(text.removeprefix("\n"))  # Browsers drop the newline after <textarea>.
            self.textarea = None


def _submitted(response, model) -> dict:
    parser = _FormData(f"{model._meta.model_name}_form")
    parser.feed(response.content.decode())
    return dict(parser.data)


@pytest.fixture
def superuser():
    return f.UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client, superuser):
    client.force_login(superuser)
    return client


def test_every_rex_model_is_registered():
    registered = {_label(model) for model in admin.site._registry}
    assert {_label(model) for model in REX_BUILDERS} <= registered


def test_admin_system_checks_pass():
    assert checks.run_checks(tags=[checks.Tags.admin]) == []


@pytest.mark.parametrize("model", REGISTERED, ids=_label)
def test_changelist_renders(staff_client, model):
    obj = _build(model)
    response = staff_client.get(_url(model, "changelist"))
    assert response.status_code == 200
    if obj is not None:
        assert _change_url(obj) in response.content.decode()


@pytest.mark.parametrize("model", REGISTERED, ids=_label)
def test_add_page_renders(staff_client, superuser, model):
    request = RequestFactory().get("/")
    request.user = superuser
    allowed = admin.site._registry[model].has_add_permission(request)
    response = staff_client.get(_url(model, "add"))
    assert response.status_code == (200 if allowed else 403)


@pytest.mark.parametrize("model", REGISTERED, ids=_label)
def test_change_page_renders(staff_client, model):
    obj = _build(model)
    if obj is None:
        pytest.skip(f"no builder for third-party model {_label(model)}")
    response = staff_client.get(_change_url(obj))
    assert response.status_code == 200


@pytest.mark.parametrize("model", list(REX_BUILDERS), ids=_label)
def test_change_page_saves_unchanged(staff_client, superuser, model):
    """Saving a change page as rendered succeeds: read-only fields and inlines do not break the form."""
    obj = _build(model)
    request = RequestFactory().get("/")
    request.user = superuser
    if not admin.site._registry[model].has_change_permission(request, obj):
        pytest.skip(f"{_label(model)} is view-only")
    url = _change_url(obj)
    response = staff_client.post(url, _submitted(staff_client.get(url), model))
    assert response.status_code == 302, response.context["errors"]


@pytest.mark.parametrize("model", [m for m in REGISTERED if admin.site._registry[m].search_fields], ids=_label)
def test_changelist_search_runs(staff_client, model):
    _build(model)
    response = staff_client.get(_url(model, "changelist"), {"q": "acme 42"})
    assert response.status_code == 200


@pytest.mark.parametrize("model", list(REX_BUILDERS), ids=_label)
def test_changelist_query_count_does_not_grow_with_rows(staff_client, model):
    url = _url(model, "changelist")
    _build(model)
    with CaptureQueriesContext(connection) as one_row:
        assert staff_client.get(url).status_code == 200
    for _ in range(3):
        _build(model)
    with CaptureQueriesContext(connection) as four_rows:
        assert staff_client.get(url).status_code == 200
    assert len(four_rows) == len(one_row), [q["sql"] for q in four_rows.captured_queries]


def test_mission_change_page_shows_agent_runs_and_leads(staff_client):
    run = f.AgentRunFactory(agent=AgentRun.Agent.COORDINATOR, decision="escalate-to-human")
    response = staff_client.get(_change_url(run.mission))
    content = response.content.decode()
    assert response.status_code == 200
    assert "Special-forces coordinator" in content
    assert "escalate-to-human" in content
    assert run.lead.email in content
    assert f"?mission__id__exact={run.mission.pk}" in content


def test_mission_inline_shows_only_the_latest_runs(staff_client):
    mission = f.MissionFactory()
    lead = f.LeadFactory(organization=mission.organization)
    runs = f.AgentRunFactory.create_batch(55, mission=mission, lead=lead)
    response = staff_client.get(_change_url(mission))
    assert response.status_code == 200
    (inline,) = [i for i in response.context["inline_admin_formsets"] if i.formset.model is AgentRun]
    shown = [form.instance for form in inline.formset.forms]
    assert len(shown) == 50
    assert shown[0] == runs[-1]


def test_operator_cancels_a_mission_with_the_admin_action(staff_client):
    run = f.AgentRunFactory(mission=f.MissionFactory(status=Mission.Status.RUNNING))
    response = staff_client.post(
        _url(Mission, "changelist"), {"action": "cancel_missions", "_selected_action": [run.mission.pk]}
    )
    assert response.status_code == 302
    run.mission.refresh_from_db()
    assert run.mission.status == Mission.Status.CANCELLED
    assert run.mission.agent_runs.count() == 1


def test_mission_changelist_shows_progress(staff_client):
    f.MissionFactory(total=8, processed=2)
    response = staff_client.get(_url(Mission, "changelist"))
    assert "2/8 (25%)" in response.content.decode()


def test_agent_run_changelist_filters_by_mission(staff_client):
    mine, other = f.AgentRunFactory(), f.AgentRunFactory()
    response = staff_client.get(_url(AgentRun, "changelist"), {"mission__id__exact": mine.mission_id})
    content = response.content.decode()
    assert response.status_code == 200
    assert _change_url(mine) in content
    assert _change_url(other) not in content


def test_json_field_renders_pretty_printed(staff_client):
    lead = f.LeadFactory(enrichment={"industry": {"value": "SaaS"}})
    response = staff_client.get(_change_url(lead))
    content = response.content.decode()
    assert response.status_code == 200
    assert "<pre" in content
    assert "{\n  &quot;industry&quot;: {\n    &quot;value&quot;: &quot;SaaS&quot;\n  }\n}" in content


def test_json_field_is_html_escaped(staff_client):
    lead = f.LeadFactory(enrichment={"note": "<script>alert(1)</script>"})
    content = staff_client.get(_change_url(lead)).content.decode()
    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_webhook_event_hides_credentials_and_pretty_prints_body(staff_client):
    event = f.WebhookEventFactory(
        headers={"Authorization": "Basic c2VjcmV0OnNlY3JldA==", "Content-Type": "application/json"},
        raw_body='{"event": "delivered"}',
    )
    content = staff_client.get(_change_url(event)).content.decode()
    assert "c2VjcmV0OnNlY3JldA==" not in content
    assert "[redacted]" in content
    assert "{\n  &quot;event&quot;: &quot;delivered&quot;\n}" in content


def test_lead_search_finds_the_lead_by_email(staff_client):
    lead, other = f.LeadFactory(), f.LeadFactory()
    response = staff_client.get(_url(Lead, "changelist"), {"q": lead.email})
    content = response.content.decode()
    assert response.status_code == 200
    assert lead.email in content
    assert other.email not in content
