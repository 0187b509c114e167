"""The DecisionRule admin refuses a condition that does not parse and makes saved edits take effect at once."""

import pytest
from django.urls import reverse

from agents.decisions import rules
from agents.decisions.rules import first_match
from agents.models import DecisionRule
from tests.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:agents_decisionrule_add")
CHANGELIST_URL = reverse("admin:agents_decisionrule_changelist")


@pytest.fixture(autouse=True)
def _fresh_rules():
    rules.forget_loaded_rules()


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def org():
    return OrganizationFactory()


def form_data(org, **overrides):
    data = {
        "organization": org.pk,
        "name": "Tiny companies are skipped",
        "stage": "qualify",
        "priority": 10,
        "enabled": "on",
        "condition": "company_size != null and company_size < 10",
        "action": "skip",
        "parameters": "{}",
    }
    return {**data, **overrides}


def test_an_invalid_condition_is_refused_with_the_parse_error(staff_client, org):
    response = staff_client.post(ADD_URL, form_data(org, condition="icp_score <"))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["condition"] == ["Invalid condition: syntax error at: EOF"]
    assert "Invalid condition: syntax error at: EOF" in response.content.decode()
    assert not DecisionRule.objects.exists()


def test_parameters_must_be_an_object(staff_client, org):
    response = staff_client.post(ADD_URL, form_data(org, parameters="[1, 2]"))
    assert response.status_code == 200
    assert "parameters" in response.context["adminform"].form.errors
    assert not DecisionRule.objects.exists()


def test_a_valid_rule_is_saved_and_used_at_once(staff_client, org):
    assert first_match(org.pk, "qualify", {"company_size": 4}) is None  # empty rules now cached in memory

    response = staff_client.post(ADD_URL, form_data(org))

    assert response.status_code == 302
    rule = DecisionRule.objects.get()
    assert (rule.organization, rule.action, rule.parameters) == (org, "skip", {})
    assert first_match(org.pk, "qualify", {"company_size": 4}).id == rule.pk


def test_list_editable_disabling_takes_effect(staff_client, org):
    rule = DecisionRule.objects.create(organization=org, name="r", stage="qualify", condition="true", action="skip")
    assert first_match(org.pk, "qualify", {}).id == rule.pk

    response = staff_client.post(
        CHANGELIST_URL,
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(rule.pk),
            "form-0-priority": "5",
            # "enabled" left out: the checkbox is unticked
            "_save": "Save",
        },
    )

    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.priority, rule.enabled) == (5, False)
    assert first_match(org.pk, "qualify", {}) is None


def test_deleting_rules_takes_effect(staff_client, org):
    rule = DecisionRule.objects.create(organization=org, name="r", stage="qualify", condition="true", action="skip")
    assert first_match(org.pk, "qualify", {}) is not None

    response = staff_client.post(
        CHANGELIST_URL, {"action": "delete_selected", "_selected_action": [rule.pk], "post": "yes"}
    )

    assert response.status_code == 302
    assert not DecisionRule.objects.exists()
    assert first_match(org.pk, "qualify", {}) is None


def test_changelist_and_change_page_render(staff_client, org):
    rule = DecisionRule.objects.create(organization=org, name="r", stage="qualify", condition="true", action="skip")
    assert staff_client.get(CHANGELIST_URL, {"q": "r"}).status_code == 200
    response = staff_client.get(reverse("admin:agents_decisionrule_change", args=[rule.pk]))
    assert response.status_code == 200
