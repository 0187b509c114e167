"""Install the "Frequency cap reached waits" outreach rule for every existing organization.

Copied here, not imported from agents.decisions.rules, so this migration keeps doing what it did when it was
written. Idempotent by name: an organization that already has a rule of that name keeps its own.
"""

from django.db import migrations

RULE = {
    "name": "Frequency cap reached waits",
    "stage": "outreach",
    "condition": (
        "touches_last_7_days != null and max_touches_per_week != null"
        " and touches_last_7_days >= max_touches_per_week"
    ),
    "action": "delay",
    "priority": 25,
    "parameters": {"days": 7},
}


def install_frequency_cap_rule(apps, schema_editor):
    Organization = apps.get_model("agents", "Organization")
    DecisionRule = apps.get_model("agents", "DecisionRule")
    defaults = {key: value for key, value in RULE.items() if key != "name"}
    for organization in Organization.objects.all():
        DecisionRule.objects.get_or_create(organization=organization, name=RULE["name"], defaults=defaults)


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0005_mailboxes_phone_numbers_alerts_linkedin"),
    ]

    operations = [
        # Reversing keeps the rule: operators may have edited it since.
        migrations.RunPython(install_frequency_cap_rule, migrations.RunPython.noop),
    ]
