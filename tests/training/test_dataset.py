"""The message writer's fine-tuning set: selection, redaction, the chat JSONL format, the split and marking."""

import json
import tracemalloc
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Lead, Suppression
from agents.pipeline.personalizer import WRITER_PROMPT
from outcomes.models import OutcomeLabel
from outcomes.selectors import training_ready
from tests.factories import MissionFactory, OrganizationFactory, SuppressionFactory, TrainingRunFactory
from training import dataset
from training.dataset import MIN_EXAMPLES, dataset_export, quality_expression, quality_score, run_files

pytestmark = pytest.mark.django_db

POSITIVE = OutcomeLabel.Label.POSITIVE
# Signals by quality rung: what the tracker would have set for each.
DEAL = {"replied": True, "meeting_booked": True, "deal_closed": True, "interest_signal": True}
MEETING = {"replied": True, "meeting_booked": True, "interest_signal": True}
INTERESTED = {"replied": True, "interest_signal": True}


@pytest.fixture(autouse=True)
def _training_dir(settings, tmp_path):
    settings.TRAINING_DIR = str(tmp_path / "training")


@pytest.fixture
def org():
    return OrganizationFactory(name="Acme Revenue Partners")


def plant(org, n, *, signals=DEAL, label=POSITIVE, days_ago=10, channel="email", lead_fields=None, **fields):
    """``n`` sent outcomes, each to its own lead whose name, email, phone and company appear in the message."""
    start = Lead.objects.count()
    leads = []
    for number in range(start, start + n):
        values = {
            "first_name": f"Zorawar{number}",
            "last_name": "Quillfeather",
            "email": f"zorawar.q{number}@hollowbrook-{number}.example.com",
            "phone": f"+1415555{number % 10000:04d}",
            "title": "VP Sales",
            "company": f"Hollowbrook Dynamics {number}",
            "website": f"https://www.hollowbrook-{number}.example.com",
            "industry": "SaaS",
            "company_size": 120,
            "lost_reason": "Budget freeze in Q3",
            **(lead_fields or {}),
        }
        leads.append(Lead(organization=org, **values))
    Lead.objects.bulk_create(leads)
    sent_at = timezone.now() - timedelta(days=days_ago)
    rows = []
    for lead in leads:
        host = lead.website.split("//")[1].removeprefix("www.")
        values = {
            "organization": org,
            "lead": lead,
            "channel": channel,
            "framework": "PAS",
            "tone": "friendly",
            "subject_line": f"{lead.first_name}, still fighting pipeline leaks at {lead.company}?",
            "message_body": (
                f"Hi {lead.first_name},\n\nLast year {lead.company} looked at us. Write to me at "
                f"sam@acme-revenue.example.com, or I can call you on (415) 867-{lead.pk % 10000:04d}; "
                f"I saw {host} is hiring. Cc {lead.email}.\n\nSam, Acme Revenue Partners"
            ),
            "sent_at": sent_at,
            "delivered": True,
            "lead_industry": "SaaS",
            "lead_role": "VP Sales",
            "company_size": 120,
            "lead_context": {"seniority": "vp", "lost_reason": "Budget freeze in Q3"},
            "agent_decisions": {"PersonalizerAgent": {"variant": "B"}},
            "training_label": label,
            **signals,
            **fields,
        }
        rows.append(OutcomeLabel(**values))
    return OutcomeLabel.objects.bulk_create(rows)


def read_jsonl(path):
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def exported_ids(run):
    return [int(line) for line in run_files(run)[2].read_text().split()]


# --- Quality --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "score"),
    [
        (DEAL, 1.0),
        ({"meeting_booked": True, "meeting_completed": True}, 0.85),
        (MEETING, 0.7),
        ({"meeting_booked": True, "meeting_no_show": True}, 0.7),
        (INTERESTED, 0.5),
        ({"replied": True, "sentiment_label": "positive"}, 0.5),
        ({"replied": True, "objection_detected": True}, 0.25),
        ({"replied": True}, 0.25),
        ({"opened": True, "clicked": True}, 0.0),
        ({"bounced": True}, 0.0),
        ({"interest_signal": True}, 0.0),  # interest without a reply is not a reply
    ],
)
def test_quality_score_ranks_deals_over_meetings_over_replies_and_the_database_agrees(org, fields, score):
    (outcome,) = plant(org, 1, signals={}, label=OutcomeLabel.Label.NEUTRAL, **fields)
    assert quality_score(outcome) == score
    assert quality_score(OutcomeLabel.objects.values().get(pk=outcome.pk)) == score
    annotated = OutcomeLabel.objects.annotate(q=quality_expression()).get(pk=outcome.pk)
    assert annotated.q == pytest.approx(score)


# --- training_ready -------------------------------------------------------------------------------------------


def test_training_ready_is_complete_clean_and_unused(org):
    (old_silence,) = plant(org, 1, signals={}, label="neutral", days_ago=8)
    (fresh_silence,) = plant(org, 1, signals={}, label="neutral", days_ago=2)
    (fresh_bounce,) = plant(org, 1, signals={}, label="negative", days_ago=1, bounced=True)
    (fresh_reply,) = plant(org, 1, signals=INTERESTED, days_ago=1)
    (unsent,) = plant(org, 1, signals={}, label="neutral", sent_at=None)
    (no_body,) = plant(org, 1, message_body="")
    (used,) = plant(org, 1, included_in_training=True)
    ready = set(training_ready().values_list("id", flat=True))
    assert {old_silence.pk, fresh_bounce.pk, fresh_reply.pk} <= ready
    assert not {fresh_silence.pk, unsent.pk, no_body.pk, used.pk} & ready


def test_training_ready_excludes_every_kind_of_opt_out(org):
    (kept,) = plant(org, 1)
    (unsubscribed,) = plant(org, 1, unsubscribed=True)
    (spam,) = plant(org, 1, spam_reported=True)
    (suppressed_state,) = plant(org, 1, lead_fields={"state": Lead.State.SUPPRESSED})
    (email_entry,) = plant(org, 1, lead_fields={"email": "Mixed.Case@optout-one.example.com"})
    (domain_entry,) = plant(org, 1, lead_fields={"email": "anyone@optout-two.example.com"})
    (phone_entry,) = plant(org, 1, lead_fields={"phone": "+14155559876"})
    (earlier_message,) = plant(org, 1)
    later = {"sent_at": timezone.now(), "message_body": "Following up.", "unsubscribed": True}
    OutcomeLabel.objects.create(organization=org, lead=earlier_message.lead, **later)  # opted out from a later one
    SuppressionFactory(organization=org, kind=Suppression.Kind.EMAIL, value="mixed.case@optout-one.example.com")
    SuppressionFactory(organization=org, kind=Suppression.Kind.DOMAIN, value="optout-two.example.com")
    SuppressionFactory(organization=org, kind=Suppression.Kind.PHONE, value="+14155559876")
    SuppressionFactory(organization=OrganizationFactory(), kind=Suppression.Kind.EMAIL, value=kept.lead.email.lower())

    ready = set(training_ready(organization_id=org.pk).values_list("id", flat=True))

    assert ready == {kept.pk}
    opted_out = (unsubscribed, spam, suppressed_state, email_entry, domain_entry, phone_entry, earlier_message)
    assert not {o.pk for o in opted_out} & ready


def test_training_ready_filters_by_organization_and_sent_window(org):
    other = plant(OrganizationFactory(), 2)
    early = plant(org, 2, days_ago=30)
    late = plant(org, 2, days_ago=10)
    since, until = timezone.now() - timedelta(days=20), timezone.now() - timedelta(days=5)
    assert set(training_ready(organization_id=org.pk, since=since, until=until).values_list("id", flat=True)) == {
        o.pk for o in late
    }
    assert set(training_ready().values_list("id", flat=True)) == {o.pk for o in [*other, *early, *late]}


# --- Export ---------------------------------------------------------------------------------------------------


def test_export_writes_chat_jsonl_in_the_writers_request_shape_and_keeps_it_with_the_run(org):
    plant(org, 55)
    plant(org, 5, channel="sms")
    run = TrainingRunFactory()

    result = dataset_export(run=run, validation_share=0.2)

    assert result.ok and result.outcome_count == 60
    assert result.train_examples + result.validation_examples == 60
    assert 0 < result.validation_examples < 30
    run.refresh_from_db()
    assert run.dataset_path == str(result.train_path)
    assert (run.train_examples, run.validation_examples) == (result.train_examples, result.validation_examples)
    assert run.params["dataset"]["validation_share"] == 0.2
    assert run.params["epochs"] == 3  # what the run already held is kept
    examples = read_jsonl(result.train_path) + read_jsonl(result.validation_path)
    assert len(examples) == 60
    channels = []
    for example in examples:
        assert list(example) == ["messages"]
        assert [m["role"] for m in example["messages"]] == ["system", "user", "assistant"]
        system, user, assistant = (m["content"] for m in example["messages"])
        assert system == WRITER_PROMPT
        request, answer = json.loads(user), json.loads(assistant)
        assert request["framework"] == "PAS (Problem-Agitate-Solution)"
        assert (request["tone"], request["variant"]) == ("friendly", "B")
        assert request["lead"]["seniority"] == "vp" and request["lead"]["company_size"] == 120
        assert request["lead"]["lost_reason"] == "Budget freeze in Q3"
        assert set(answer) == {"subject", "body"} and answer["body"]
        channels.append(request["channel"])
        if request["channel"] == "sms":
            assert answer["subject"] == ""
        else:
            assert answer["subject"].startswith("[NAME_1], still fighting")
    assert channels.count("sms") == 5


def test_the_split_is_stable_per_outcome(org):
    plant(org, 80)
    first, second = TrainingRunFactory(), TrainingRunFactory()
    dataset_export(run=first, seed="s1")
    OutcomeLabel.objects.update(included_in_training=False)
    dataset_export(run=second, seed="s1")
    assert run_files(first)[1].read_text() == run_files(second)[1].read_text()
    validation = {o for o in exported_ids(first) if dataset.in_validation(o, share=0.1, seed="s1")}
    assert len(read_jsonl(run_files(first)[1])) == len(validation)


def test_no_personal_data_reaches_the_file(org):
    outcomes = plant(org, 60)
    mission = MissionFactory(organization=org, params={"sender_name": "Samwise Thornbury"})
    OutcomeLabel.objects.filter(pk__in=[o.pk for o in outcomes]).update(mission=mission)
    run = TrainingRunFactory()

    result = dataset_export(run=run)

    text = (result.train_path.read_text() + result.validation_path.read_text()).lower()
    for outcome in outcomes:
        lead = outcome.lead
        for value in (lead.first_name, lead.company, lead.email, lead.phone, lead.email.split("@")[1]):
            assert value.lower() not in text, value
    for value in ("quillfeather", "hollowbrook", "555-", "4155", "acme", "sam@", "samwise thornbury", "@"):
        assert value not in text, value
    example = read_jsonl(result.train_path)[0]["messages"]
    assert '"first_name": "[NAME_1]"' in example[1]["content"]
    assert "Hi [NAME_1]," in json.loads(example[2]["content"])["body"]


def test_only_positive_rows_above_the_quality_bar_are_exported(org):
    deals = plant(org, 30, signals=DEAL)
    meetings = plant(org, 30, signals=MEETING)
    replies = plant(org, 30, signals=INTERESTED)
    negatives = plant(org, 30, signals={"replied": True, "objection_detected": True}, label="negative")
    neutral = plant(org, 30, signals={}, label="neutral")
    run = TrainingRunFactory()

    result = dataset_export(run=run, min_quality_score=0.6)

    assert result.ok and set(exported_ids(run)) == {o.pk for o in deals + meetings}
    used = set(OutcomeLabel.objects.filter(included_in_training=True).values_list("id", flat=True))
    assert used == {o.pk for o in deals + meetings}
    assert not used & {o.pk for o in replies + negatives + neutral}


def test_date_window_and_organization_select_rows(org):
    plant(org, 60, days_ago=40)
    recent = plant(org, 55, days_ago=10)
    plant(OrganizationFactory(), 60, days_ago=10)
    run = TrainingRunFactory()

    result = dataset_export(
        run=run, organization_id=org.pk, since=timezone.now() - timedelta(days=20), until=timezone.now()
    )

    assert result.ok and sorted(exported_ids(run)) == sorted(o.pk for o in recent)


def test_fewer_than_50_usable_examples_is_a_result_and_marks_nothing(org):
    plant(org, MIN_EXAMPLES - 1)
    plant(org, 20, unsubscribed=True)  # opted out: not usable
    run = TrainingRunFactory()

    result = dataset_export(run=run)

    assert result.status == "not_enough_data" and result.outcome_count == MIN_EXAMPLES - 1
    assert f"{MIN_EXAMPLES - 1} usable examples" in result.reason and f"at least {MIN_EXAMPLES}" in result.reason
    assert not dataset.run_dir(run).exists()
    assert not OutcomeLabel.objects.filter(included_in_training=True).exists()
    run.refresh_from_db()
    assert run.dataset_path == "" and run.train_examples == 0


def test_used_rows_are_marked_once_and_never_exported_twice(org):
    plant(org, 70)
    before = timezone.now()
    first = dataset_export(run=TrainingRunFactory())
    second = dataset_export(run=TrainingRunFactory())

    assert first.ok and first.outcome_count == 70
    assert second.status == "not_enough_data" and second.outcome_count == 0
    marked = OutcomeLabel.objects.filter(included_in_training=True)
    assert marked.count() == 70
    assert all(at >= before for at in marked.values_list("included_in_training_at", flat=True))


def test_rows_are_marked_with_one_update_per_chunk(org, monkeypatch):
    plant(org, 60)
    monkeypatch.setattr(dataset, "CHUNK_SIZE", 25)
    with CaptureQueriesContext(connection) as queries:
        result = dataset_export(run=TrainingRunFactory())
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "outcomes_outcomelabel"')]
    assert result.ok and len(updates) == 3  # 25 + 25 + 10


def test_a_failed_export_leaves_no_file_and_marks_nothing(org, monkeypatch):
    plant(org, 60)
    real, calls = dataset.training_example, []

    def breaks_midway(row):
        calls.append(row["id"])
        if len(calls) == 30:
            raise RuntimeError("disk full")
        return real(row)

    monkeypatch.setattr(dataset, "training_example", breaks_midway)
    run = TrainingRunFactory()
    with pytest.raises(RuntimeError, match="disk full"):
        dataset_export(run=run)
    assert not dataset.run_dir(run).exists()
    assert not OutcomeLabel.objects.filter(included_in_training=True).exists()


@pytest.mark.parametrize(("field", "value"), [("min_quality_score", 1.5), ("validation_share", 0.9)])
def test_bad_parameters_are_field_errors(org, field, value):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        dataset_export(run=TrainingRunFactory(), **{field: value})
    assert field in error.value.message_dict


def test_release_gives_the_rows_back(org):
    plant(org, 60)
    run = TrainingRunFactory()
    dataset_export(run=run)
    run.refresh_from_db()
    assert dataset.dataset_release(run=run) == 60
    assert not OutcomeLabel.objects.filter(included_in_training=True).exists()


def test_rows_stream_so_memory_stays_constant(org, monkeypatch):
    """Mid-export, the rows Django holds are one chunk's worth, not the result set (tracemalloc snapshot of what
    django.db allocated and still holds, taken while the file is being written)."""
    plant(org, 300)
    monkeypatch.setattr(dataset, "CHUNK_SIZE", 20)
    real, calls, held = dataset.training_example, [], []

    def measuring(row):
        calls.append(row["id"])
        if len(calls) == 150:
            snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, "*/django/db/*")])
            held.append(sum(stat.size for stat in snapshot.statistics("filename")))
        return real(row)

    monkeypatch.setattr(dataset, "training_example", measuring)
    tracemalloc.start()
    try:
        result = dataset_export(run=TrainingRunFactory())
    finally:
        tracemalloc.stop()

    assert result.ok and result.outcome_count == 300
    row_bytes = (result.train_path.stat().st_size + result.validation_path.stat().st_size) / 300
    # Materialising the 300 rows holds ~450 × row_bytes here; streaming holds ~85 (one chunk and the ORM's own).
    assert held[0] < 150 * row_bytes, (held, row_bytes)
