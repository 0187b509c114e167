"""Business rules: parsing, ordering, null facts, cache invalidation across processes, default rules."""

import importlib
import logging

import pytest
from django.apps import apps
from django.core.cache import cache
from django.core.exceptions import ValidationError

from agents.decisions import rules
from agents.decisions.rules import (
    DEFAULT_RULES,
    active_rules,
    first_match,
    rules_changed,
    rules_install_defaults,
    validate_condition,
)
from agents.models import DecisionRule
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rules():
    rules.forget_loaded_rules()
    yield
    rules.forget_loaded_rules()


@pytest.fixture
def org():
    return OrganizationFactory()


def make_rule(org, **fields):
    defaults = {"name": f"rule {DecisionRule.objects.count()}", "stage": "qualify", "action": "skip"}
    return DecisionRule.objects.create(organization=org, **{**defaults, **fields})


@pytest.fixture
def shared_cache(settings, tmp_path):
    """A cache shared between processes (like Redis): the version stamp is read only every RECHECK_SECONDS."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)}
    }


@pytest.mark.parametrize(
    "condition",
    [
        "icp_score < 0.4",
        "icp_score != null and icp_score < icp_threshold",
        "not in_send_window",
        'industry in ["SaaS", "Fintech"] and company_size >= 50',
        "title =~ '(?i).*vp.*'",
    ],
)
def test_valid_conditions_pass(condition):
    validate_condition(condition)


@pytest.mark.parametrize("condition", ["icp_score <", "1 +* 2", "(icp_score < 1", ""])
def test_invalid_conditions_give_the_parse_error(condition):
    with pytest.raises(ValidationError) as raised:
        validate_condition(condition)
    (message,) = raised.value.message_dict["condition"]
    assert "syntax error at:" in message


def test_every_default_rule_is_valid():
    for spec in DEFAULT_RULES:
        validate_condition(spec["condition"])
        DecisionRule(organization_id=1, **spec).full_clean(exclude=["organization"])


def test_the_lowest_priority_number_wins(org):
    make_rule(org, name="late", condition="icp_score < 0.5", action="skip", priority=50)
    early = make_rule(org, name="early", condition="icp_score < 0.9", action="disqualify", priority=5)

    assert first_match(org.pk, "qualify", {"icp_score": 0.3}).id == early.pk
    assert [r.name for r in active_rules(org.pk, "qualify")] == ["early", "late"]


def test_disabled_rules_and_other_stages_are_ignored(org):
    make_rule(org, name="off", condition="true", enabled=False)
    make_rule(org, name="outreach", condition="true", stage="outreach")
    assert first_match(org.pk, "qualify", {}) is None


def test_rules_of_another_organization_are_ignored(org):
    make_rule(OrganizationFactory(), condition="true")
    assert first_match(org.pk, "qualify", {}) is None


def test_missing_facts_are_null(org):
    rule = make_rule(org, condition="icp_score == null")
    guarded = make_rule(org, name="guarded", condition="icp_score != null and icp_score < 0.4", priority=1)

    assert first_match(org.pk, "qualify", {}).id == rule.pk
    assert first_match(org.pk, "qualify", {"icp_score": 0.1}).id == guarded.pk


def test_a_rule_that_errors_at_runtime_is_skipped_and_logged(org, caplog):
    broken = make_rule(org, name="compares text with a number", condition="icp_score < 0.4", priority=1)
    fallback = make_rule(org, name="catch-all", condition="true", priority=2)

    with caplog.at_level(logging.WARNING, logger="rex.rules"):
        assert first_match(org.pk, "qualify", {"icp_score": "high"}).id == fallback.pk
    assert f"Decision rule {broken.pk}" in caplog.text


def test_a_stored_rule_that_does_not_compile_is_ignored(org, caplog):
    make_rule(org, name="bad", condition="icp_score <", priority=1)  # bypassed the admin form
    good = make_rule(org, name="good", condition="true", priority=2)
    with caplog.at_level(logging.ERROR, logger="rex.rules"):
        assert first_match(org.pk, "qualify", {}).id == good.pk
    assert "does not compile" in caplog.text


def test_rules_are_served_from_memory(org, django_assert_num_queries):
    make_rule(org, condition="icp_score < 0.4")
    first_match(org.pk, "qualify", {"icp_score": 0.1})
    with django_assert_num_queries(0):
        for _ in range(5):
            assert first_match(org.pk, "qualify", {"icp_score": 0.1}) is not None


def test_an_edit_is_seen_after_rules_changed(org):
    rule = make_rule(org, condition="icp_score < 0.4")
    assert first_match(org.pk, "qualify", {"icp_score": 0.5}) is None

    DecisionRule.objects.filter(pk=rule.pk).update(condition="icp_score < 0.6")
    rules_changed(org.pk)

    assert first_match(org.pk, "qualify", {"icp_score": 0.5}).id == rule.pk


@pytest.mark.usefixtures("shared_cache")
def test_an_edit_in_another_process_is_seen_at_the_next_recheck(org, monkeypatch, django_assert_num_queries):
    rule = make_rule(org, condition="icp_score < 0.4")
    assert first_match(org.pk, "qualify", {"icp_score": 0.5}) is None

    # Another process edits the rule and stores a new stamp; this process's copy is still in memory.
    DecisionRule.objects.filter(pk=rule.pk).update(condition="icp_score < 0.6")
    cache.set(rules.VERSION_KEY.format(organization_id=org.pk), "stamp-from-another-process", timeout=None)
    with django_assert_num_queries(0):
        assert first_match(org.pk, "qualify", {"icp_score": 0.5}) is None  # not rechecked yet

    monkeypatch.setattr(rules, "RECHECK_SECONDS", 0)
    assert first_match(org.pk, "qualify", {"icp_score": 0.5}).id == rule.pk


def test_with_a_process_local_cache_rules_are_reloaded_every_recheck(org, monkeypatch, settings):
    # LocMemCache (the embedded default) cannot carry a stamp from the web process to a worker.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"}}
    rule = make_rule(org, condition="icp_score < 0.4")
    assert first_match(org.pk, "qualify", {"icp_score": 0.5}) is None
    DecisionRule.objects.filter(pk=rule.pk).update(condition="icp_score < 0.6")  # edited elsewhere, no stamp
    assert first_match(org.pk, "qualify", {"icp_score": 0.5}) is None

    monkeypatch.setattr(rules, "RECHECK_SECONDS", 0)
    assert first_match(org.pk, "qualify", {"icp_score": 0.5}).id == rule.pk


def test_a_cleared_cache_never_leaves_stale_rules(org, settings):
    # With Redis the stamp is re-read every RECHECK_SECONDS; with the process-local cache on every call.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t"}}
    make_rule(org, condition="true")
    assert first_match(org.pk, "qualify", {}) is not None
    DecisionRule.objects.all().delete()  # e.g. a test database rolled back, ids reused
    cache.clear()
    assert first_match(org.pk, "qualify", {}) is None


def test_defaults_install_idempotently(org):
    assert rules_install_defaults(organization=org) == len(DEFAULT_RULES) == 8
    DecisionRule.objects.filter(organization=org, name="Outside the send window waits").update(priority=99)

    assert rules_install_defaults(organization=org) == 0

    assert DecisionRule.objects.filter(organization=org).count() == 8
    assert DecisionRule.objects.get(organization=org, name="Outside the send window waits").priority == 99


def test_defaults_decide_as_specified(org):
    rules_install_defaults(organization=org)

    def action(stage, **facts):
        rule = first_match(org.pk, stage, facts)
        return (rule.action, rule.parameters) if rule else None

    assert action("qualify", icp_score=0.2, icp_threshold=0.4) == ("disqualify", {})
    assert action("qualify", icp_score=None, icp_threshold=0.4) is None
    assert action("outreach", suppressed=True, days_since_contact=3, in_send_window=False) == ("stop", {})
    assert action("outreach", suppressed=False, days_since_contact=3, in_send_window=True) == ("delay", {"days": 14})
    assert action("outreach", suppressed=False, days_since_contact=30, in_send_window=False) == (
        "delay",
        {"until": "next_window"},
    )
    assert action("outreach", suppressed=False, days_since_contact=None, in_send_window=True) is None
    assert action("deliverability", domain_reputation=0.5) == ("rotate_domain", {})
    assert action("reactivate", reactivation_probability=0.1) == ("skip", {})
    assert action("reactivate", reactivation_probability=0.4) == ("escalate_llm", {})
    assert action("reactivate", reactivation_probability=0.45) is None


def test_the_data_migration_installs_the_same_defaults_for_every_organization(org):
    other = OrganizationFactory()
    migration = importlib.import_module("agents.migrations.0004_default_decision_rules")

    migration.install_default_rules(apps, None)
    migration.install_default_rules(apps, None)
    importlib.import_module("agents.migrations.0006_frequency_cap_rule").install_frequency_cap_rule(apps, None)

    def stored(organization):
        fields = ("name", "stage", "condition", "action", "priority", "parameters")
        return sorted(DecisionRule.objects.filter(organization=organization).values_list(*fields))

    expected = sorted(
        tuple(spec[f] for f in ("name", "stage", "condition", "action", "priority", "parameters"))
        for spec in DEFAULT_RULES
    )
    assert stored(org) == stored(other) == expected
