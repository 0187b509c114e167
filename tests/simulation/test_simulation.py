"""A short simulation through REX's own API, agents, webhook receivers, trainer and promotion check (in this
process: the demo runs the same weeks against REX's web server, worker and beat)."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from agents.models import Message
from outcomes.models import OutcomeLabel
from simulation.backends import InlineBackend, Waits
from simulation.efficacy import efficacy_combine, efficacy_text
from simulation.run import RunOptions, Simulation
from simulation.summary import render_text, run_summary
from simulation.world import REGIONS, open_timezones
from training.models import ModelVersion, PromotionDecision, TrainingRun
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def working_hours(monkeypatch):
    """Lead time zones where it is working time now. At the weekend there are none anywhere: then REX's window check
    is told it is open (the windows have their own tests; this one must not depend on the day it runs)."""
    zones = open_timezones(now=timezone.now(), minutes=10)
    if not zones:
        monkeypatch.setattr("agents.pipeline.outreach.in_send_window", lambda **kwargs: True)
        zones = tuple(region.timezone for region in REGIONS[:4])
    return zones


def test_two_weeks_end_with_labels_a_trained_version_and_a_promotion_decision(working_hours):
    lines = []
    options = RunOptions(seed=3, weeks=2, leads=1600, min_messages_per_arm=20, timezones=working_hours)
    simulation = Simulation(options, backend=InlineBackend(waits=Waits(say=lines.append)), say=lines.append)

    summary = simulation.execute(then=run_summary)

    weeks = summary["weeks"]
    assert [week["week"] for week in weeks] == [1, 2] and all(week["sends"] > 0 for week in weeks)
    sent = Message.objects.filter(status=Message.Status.SENT, provider__startswith="sandbox")
    assert sent.count() == sum(week["sends"] for week in weeks)
    labels = OutcomeLabel.objects.filter(message__in=sent)
    assert labels.count() == sent.count()
    assert labels.filter(delivered=True).exists() and labels.filter(replied=True).exists()
    assert labels.exclude(training_label=OutcomeLabel.Label.NEUTRAL).exists()
    # The world's webhooks all passed REX's checks and were processed.
    assert summary["webhook_errors"] == []
    assert not WebhookEvent.objects.exclude(signature=WebhookEvent.Signature.VALID).exists()
    assert not WebhookEvent.objects.filter(state=WebhookEvent.State.RECEIVED).exists()
    # Two weekly cycles trained two policy versions; the first one's A/B test was looked at after week 2.
    runs = TrainingRun.objects.filter(kind=ModelVersion.Kind.POLICY, status=TrainingRun.Status.SUCCEEDED)
    assert runs.count() == 2, list(TrainingRun.objects.values_list("status", "error"))
    first = runs.order_by("id").first().model_version
    decision = PromotionDecision.objects.get(challenger=first)
    assert decision.outcome in PromotionDecision.Outcome.values
    assert ModelVersion.objects.filter(kind=ModelVersion.Kind.POLICY, status=ModelVersion.Status.DEPLOYED).exists()
    # The report has every part the issue asks for, and the world's grades are probabilities.
    text = render_text(summary)
    for part in ("Week", "Decision layers", "Policy versions", "Suppressions", "REX vs random vs oracle"):
        assert part in text
    for week in weeks:
        assert 0 < week["random"] <= week["oracle"] < 1
    # The efficacy is graded on the policy serving at the end: the first version when it won its A/B test.
    serving = {row["version"] for row in summary["versions"] if row["status"] == ModelVersion.Status.DEPLOYED}
    assert summary["efficacy"]["version"] in serving
    if decision.outcome == PromotionDecision.Outcome.PROMOTED:
        assert summary["efficacy"]["version"] == first.version
    assert "average over 1 seed(s)" in efficacy_text(efficacy_combine([summary]))
    json.dumps(summary, default=str)
    assert any(line.startswith("Week 2/2") for line in lines)


def test_a_quick_run_leaves_nothing_behind(working_hours, tmp_path, settings, capsys):
    """--quick runs REX in the command's process inside one transaction that is rolled back."""
    settings.VAR_DIR = tmp_path

    call_command("simulate", "--quick", "--weeks", "1", "--leads", "60", "--seed", "5")

    out = capsys.readouterr().out
    assert "REX flywheel simulation: world seed 5, 1 weeks, 60 leads" in out
    assert (tmp_path / "simulation" / "learning-curve.png").read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in (tmp_path / "simulation" / "learning-curve.html").read_text()
    assert json.loads((tmp_path / "simulation" / "summary-seed-5.json").read_text())["seed"] == 5
    assert not Message.objects.exists() and not OutcomeLabel.objects.exists()


def test_an_unmigrated_database_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [("agents.0001_initial", False)])

    with pytest.raises(CommandError, match=r"1 unapplied migration\(s\): run `manage.py migrate` first"):
        call_command("simulate", "--quick", "--weeks", "1", "--leads", "10")
