"""Install the default decision rules for every existing organization.

The rules are copied here, not imported: a migration must keep doing what it did when it was written,
whatever agents.decisions.rules.DEFAULT_RULES becomes later. Rules that already exist by name are kept.
"""

from django.db import migrations

DEFAULT_RULES = [
    {
        "name": "ICP below threshold disqualifies",
        "stage": "qualify",
        "condition": "icp_score != null and icp_score < icp_threshold",
        "action": "disqualify",
        "priority": 100,
        "parameters": {},
    },
    {
        "name": "Suppressed contacts are never contacted",
        "stage": "outreach",
        "condition": "suppressed",
        "action": "stop",
        "priority": 10,
        "parameters": {},
    },
    {
        "name": "Contacted in the last 14 days waits",
        "stage": "outreach",
        "condition": "days_since_contact != null and days_since_contact < 14",
        "action": "delay",
        "priority": 20,
        "parameters": {"days": 14},
    },
    {
        "name": "Outside the send window waits",
        "stage": "outreach",
        "condition": "not in_send_window",
        "action": "delay",
        "priority": 30,
        "parameters": {"until": "next_window"},
    },
    {
        "name": "Domain reputation below 0.7 rotates",
        "stage": "deliverability",
        "condition": "domain_reputation != null and domain_reputation < 0.7",
        "action": "rotate_domain",
        "priority": 100,
        "parameters": {},
    },
    {
        "name": "Very unlikely to revive is skipped",
        "stage": "reactivate",
        "condition": "reactivation_probability != null and reactivation_probability < 0.15",
        "action": "skip",
        "priority": 10,
        "parameters": {},
    },
    {
        "name": "Borderline revival goes to the LLM",
        "stage": "reactivate",
        "condition": (
            "reactivation_probability != null and reactivation_probability >= 0.35 and reactivation_probability < 0.45"
        ),
        "action": "escalate_llm",
        "priority": 20,
        "parameters": {},
    },
]


def install_default_rules(apps, schema_editor):
    Organization = apps.get_model("agents", "Organization")
    DecisionRule = apps.get_model("agents", "DecisionRule")
    for organization in Organization.objects.all():
        for spec in DEFAULT_RULES:
            defaults = {key: value for key, value in spec.items() if key != "name"}
            DecisionRule.objects.get_or_create(organization=organization, name=spec["name"], defaults=defaults)


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0004_campaign_leads"),
    ]

    operations = [
        # Reversing keeps the rules: operators may have edited them since.
        migrations.RunPython(install_default_rules, migrations.RunPython.noop),
    ]
