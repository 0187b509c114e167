"""Admin: the outcome changelist's filters, the "What works" page, and reprocessing webhook events."""

from unittest import mock

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from outcomes.models import OutcomeLabel
from tests.factories import (
    AgentRunFactory,
    CampaignFactory,
    MembershipFactory,
    MissionFactory,
    OrganizationFactory,
    OutcomeLabelFactory,
    UserFactory,
    WebhookEventFactory,
)
from webhooks.models import WebhookEvent
from webhooks.tasks import process_webhook_event

pytestmark = pytest.mark.django_db

WHAT_WORKS = "/admin/outcomes/outcomelabel/what-works/"


@pytest.fixture
def superuser():
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def org():
    return OrganizationFactory(name="Acme")


@pytest.fixture
def data(org):
    campaign = CampaignFactory(organization=org, name="Closed-lost Q3")
    mission = MissionFactory(organization=org, campaign=campaign)
    for index in range(40):
        OutcomeLabelFactory(
            organization=org, message__mission=mission, framework="PAS", tone="direct", replied=index < 20
        )
    for _ in range(3):
        OutcomeLabelFactory(organization=org, message__mission=mission, framework="BAB", tone="friendly")
    AgentRunFactory(mission=mission, agent="personalizer", decision_layer="llm", duration_ms=42)
    return campaign


def test_outcome_changelist_links_to_what_works(staff_client):
    response = staff_client.get(reverse("admin:outcomes_outcomelabel_changelist"))

    assert response.status_code == 200
    assert WHAT_WORKS in response.content.decode()
    assert reverse("admin:outcomes_outcomelabel_what_works") == WHAT_WORKS


def test_what_works_renders_strategies_and_agent_performance_with_intervals(staff_client, org, data):
    response = staff_client.get(WHAT_WORKS, {"organization": org.pk, "metric": "reply_rate", "min_sample": 30})

    page = response.content.decode()
    assert response.status_code == 200
    ranked = page[page.index('id="winning-strategies"') : page.index('id="exploring-strategies"')]
    exploring = page[page.index('id="exploring-strategies"') : page.index('id="agent-performance"')]
    assert "PAS" in ranked and "BAB" not in ranked and "BAB" in exploring
    assert "50.0% [35.2%, 64.8%]" in ranked  # reply rate of 20 in 40 with its 95% Wilson interval
    agents = page[page.index('id="agent-performance"') :]
    assert "Closed-lost Q3" in agents and "Personalizer" in agents and "42.0" in agents


def test_what_works_defaults_to_an_organization_on_first_visit(staff_client, org, data):
    response = staff_client.get(WHAT_WORKS)

    assert response.status_code == 200
    assert "PAS" in response.content.decode()


def test_what_works_defaults_to_the_operators_own_organization(client, org, data):
    OrganizationFactory(name="Aardvark")  # sorts first: the operator's membership must win
    membership = MembershipFactory(organization=org, user=UserFactory(is_staff=True, is_superuser=True))
    client.force_login(membership.user)

    assert "Closed-lost Q3" in client.get(WHAT_WORKS).content.decode()


def test_what_works_shows_form_errors_instead_of_tables(staff_client, org):
    response = staff_client.get(WHAT_WORKS, {"organization": org.pk, "metric": "vibes", "min_sample": 0})

    page = response.content.decode()
    assert response.status_code == 200
    assert "errorlist" in page and 'id="winning-strategies"' not in page


def test_what_works_needs_view_permission_on_outcomes(client):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get(WHAT_WORKS).status_code == 403

    staff.user_permissions.add(Permission.objects.get(codename="view_outcomelabel"))
    assert client.get(WHAT_WORKS).status_code == 200


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"sentiment_score": "negative"}, "sour"),
        ({"sentiment_score": "positive"}, "keen"),
        ({"sentiment_score": "none"}, "silent"),
        ({"weight": "10.0"}, "keen"),
        ({"interest_level": "high"}, "keen"),
        ({"objection_type": "price"}, "sour"),
        ({"training_label": "negative"}, "sour"),
    ],
)
def test_outcome_changelist_filters_by_sentiment_and_training_weight(staff_client, params, shown):
    rows = {
        "sour": OutcomeLabelFactory(
            reply_sentiment_score=-0.6, sentiment_label="negative", objection_type="price",
            training_label=OutcomeLabel.Label.NEGATIVE, training_weight=2.0,
        ),
        "keen": OutcomeLabelFactory(
            reply_sentiment_score=0.8, sentiment_label="positive", interest_level="high",
            training_label=OutcomeLabel.Label.POSITIVE, training_weight=10.0,
        ),
        "silent": OutcomeLabelFactory(),
    }  # fmt: skip

    response = staff_client.get(reverse("admin:outcomes_outcomelabel_changelist"), params)

    page = response.content.decode()
    assert response.status_code == 200
    listed = {name for name, row in rows.items() if f"/admin/outcomes/outcomelabel/{row.pk}/change/" in page}
    assert listed == {shown}
    assert "reply sentiment score" in page.lower()


def test_reprocess_admin_action_resets_eligible_events_and_reports_counts(
    staff_client, django_capture_on_commit_callbacks
):
    failed = WebhookEventFactory(state=WebhookEvent.State.FAILED, error="boom")
    unmatched = WebhookEventFactory(state=WebhookEvent.State.UNMATCHED)
    processed = WebhookEventFactory(state=WebhookEvent.State.PROCESSED)
    url = reverse("admin:webhooks_webhookevent_changelist")

    with mock.patch.object(process_webhook_event, "delay") as delay, django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            url,
            {"action": "reprocess_events", "_selected_action": [failed.pk, unmatched.pk, processed.pk]},
            follow=True,
        )

    for event in (failed, unmatched, processed):
        event.refresh_from_db()
    page = response.content.decode()
    assert (failed.state, failed.error, unmatched.state) == ("received", "", "received")
    assert processed.state == "processed"
    assert sorted(call.args[0] for call in delay.call_args_list) == sorted([failed.pk, unmatched.pk])
    assert "2 events reset and queued for processing." in page
    assert "1 event skipped" in page


@pytest.mark.parametrize("params", [{"state": "failed"}, {"provider": "twilio"}])
def test_webhook_changelist_filters_by_state_and_provider(staff_client, params):
    failed = WebhookEventFactory(state=WebhookEvent.State.FAILED)
    sms = WebhookEventFactory(provider=WebhookEvent.Provider.TWILIO)
    expected = failed if "state" in params else sms

    page = staff_client.get(reverse("admin:webhooks_webhookevent_changelist"), params).content.decode()

    listed = {event.pk for event in (failed, sms) if f"/admin/webhooks/webhookevent/{event.pk}/change/" in page}
    assert listed == {expected.pk}
