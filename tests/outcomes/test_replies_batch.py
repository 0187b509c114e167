"""Classifying recorded replies in bulk: the service, the Celery task and the management command."""

import io
import json
from datetime import timedelta
from unittest import mock

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import Suppression
from outcomes import tasks
from outcomes.models import OutcomeLabel
from outcomes.replies_batch import replies_classify_batch, replies_to_classify
from tests.factories import OrganizationFactory, OutcomeLabelFactory
from tests.openai_api import chat_completion

pytestmark = pytest.mark.django_db

REPLIES = {
    "price": "Thanks, but it's too expensive for a team our size.",
    "meeting": "Sure, send over some times for next week.",
    "unsubscribe": "Please remove me from your mailing list.",
    "ooo": "I am out of the office until Monday with limited access to email.",
}


@pytest.fixture(autouse=True)
def _rules_only(settings):
    settings.OPENAI_API_KEY = ""


@pytest.fixture
def replied_at():
    return timezone.now().replace(microsecond=0) - timedelta(days=30)


def _replied(organization, text: str, at, **fields) -> OutcomeLabel:
    return OutcomeLabelFactory(
        organization=organization, replied=True, replied_at=at, reply_text=text, delivered_at=at, **fields
    )


@pytest.fixture
def org():
    return OrganizationFactory()


@pytest.fixture
def history(org, replied_at):
    times = (replied_at + timedelta(minutes=minutes) for minutes in range(len(REPLIES)))
    return {key: _replied(org, text, at) for (key, text), at in zip(REPLIES.items(), times, strict=False)}


def test_unclassified_replies_get_their_sentiment_in_place(history, replied_at):
    assert replies_classify_batch() == 4

    rows = {key: OutcomeLabel.objects.get(pk=row.pk) for key, row in history.items()}
    price, meeting = rows["price"], rows["meeting"]
    assert (price.sentiment_label, price.objection_type, price.objection_detected) == ("negative", "price", True)
    assert price.interest_signal is False and price.reply_sentiment_score < 0
    assert "too expensive" in price.sentiment_reasoning
    assert (meeting.sentiment_label, meeting.interest_level, meeting.interest_signal) == ("positive", "high", True)
    assert rows["ooo"].sentiment_label == "neutral" and rows["ooo"].interest_level == "none"
    # The reply itself is untouched: same time, same text; the training label follows the new sentiment.
    assert price.replied_at == replied_at and price.reply_text == REPLIES["price"]
    assert (price.training_label, meeting.training_label) == ("negative", "positive")


def test_a_reply_asking_to_be_removed_is_also_an_unsubscribe(history, org):
    replies_classify_batch()

    row = OutcomeLabel.objects.get(pk=history["unsubscribe"].pk)
    assert row.unsubscribed and row.sentiment_label == "negative"
    suppression = Suppression.objects.get(organization=org, kind="email")
    assert (suppression.value, suppression.reason) == (row.message.to_address.lower(), Suppression.Reason.UNSUBSCRIBE)
    assert not OutcomeLabel.objects.get(pk=history["price"].pk).unsubscribed


def test_only_unclassified_skips_labelled_rows_and_a_rerun_does_nothing(org, replied_at):
    labelled = _replied(
        org, REPLIES["price"], replied_at, sentiment_label="positive", interest_level="high", interest_signal=True
    )
    fresh = _replied(org, REPLIES["meeting"], replied_at)
    _replied(org, "", replied_at)  # a reply without text: nothing to classify
    OutcomeLabelFactory(organization=org, reply_text="Not interested.")  # text, but not marked replied

    assert replies_classify_batch() == 1
    assert replies_classify_batch() == 0
    labelled.refresh_from_db()
    fresh.refresh_from_db()
    assert labelled.sentiment_label == "positive" and fresh.sentiment_label == "positive"

    # Everything again (the analyzer changed): the labelled row is corrected.
    assert replies_classify_batch(only_unclassified=False) == 2
    labelled.refresh_from_db()
    assert (labelled.sentiment_label, labelled.objection_type, labelled.interest_level) == ("negative", "price", "none")


def test_one_organization_at_a_time(history, replied_at):
    other = _replied(OrganizationFactory(), REPLIES["price"], replied_at)

    assert replies_classify_batch(organization_id=other.organization_id) == 1
    other.refresh_from_db()
    assert other.sentiment_label == "negative"
    assert replies_to_classify().count() == 4


def test_batches_are_pages_of_the_primary_key_with_progress(history):
    seen = []
    with CaptureQueriesContext(connection) as queries:
        assert replies_classify_batch(batch_size=3, progress=seen.append) == 4
    assert seen == [3, 4]
    sql = [query["sql"] for query in queries]
    pages = [query for query in sql if 'FROM "outcomes_outcomelabel"' in query and "LIMIT 3" in query]
    assert len(pages) == 3  # two full or partial pages, then an empty one that ends the loop


def test_a_bad_batch_size_is_refused():
    with pytest.raises(ValueError, match="batch_size"):
        replies_classify_batch(batch_size=0)


def test_the_model_is_asked_with_the_leads_pii_redacted(org, replied_at, openai_server):
    row = _replied(org, "(set below, once the lead exists)", replied_at)
    lead = row.lead
    OutcomeLabel.objects.filter(pk=row.pk).update(reply_text=f"Sounds good, call me at {lead.phone}. {lead.first_name}")
    answer = {
        "sentiment_score": 0.8,
        "sentiment_label": "positive",
        "interest_signal": True,
        "interest_level": "high",
        "objection_detected": False,
        "objection_type": "none",
        "category": "interested",
        "reasoning": "[NAME_1] asks for a call.",
    }
    openai_server.expect_request("/v1/chat/completions", method="POST").respond_with_json(chat_completion(answer))

    assert replies_classify_batch() == 1

    row.refresh_from_db()
    assert row.sentiment_reasoning == f"{lead.first_name} asks for a call."
    body = json.loads(openai_server.log[0][0].get_data(as_text=True))
    user = body["messages"][1]["content"]
    assert lead.first_name not in user and lead.phone not in user and "[PHONE_1]" in user


# --- Task and command -----------------------------------------------------------------------------


def test_the_task_calls_the_service_for_the_organization():
    with mock.patch.object(tasks, "replies_classify_batch", return_value=7) as service:
        assert tasks.classify_replies.run(organization_id=42) == 7
    service.assert_called_once_with(organization_id=42)


def test_the_task_retries_when_it_runs_out_of_time():
    # A retry carries on with the replies still unlabelled (the service only takes unclassified ones by default).
    assert SoftTimeLimitExceeded in tasks.classify_replies.autoretry_for
    assert tasks.classify_replies.max_retries >= 10


def test_the_command_classifies_with_progress(history, org):
    out = io.StringIO()
    call_command("classify_replies", "--organization", str(org.pk), "--batch-size", "2", stdout=out)
    output = out.getvalue()
    assert "4 replies to classify with rules (OPENAI_API_KEY is not set)." in output
    assert "  2/4" in output and "  4/4" in output
    assert "Classified 4 replies." in output
    assert not replies_to_classify(organization_id=org.pk).exists()

    out = io.StringIO()
    call_command("classify_replies", "--all", stdout=out)
    assert "Classified 4 replies." in out.getvalue()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--organization", "999999"], "No organization with id 999999"), (["--batch-size", "0"], "at least 1")],
)
def test_the_command_refuses_bad_arguments(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("classify_replies", *arguments, stdout=io.StringIO())
