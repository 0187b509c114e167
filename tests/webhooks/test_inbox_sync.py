import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

import webhooks.inbox
from agents.models import Message
from outcomes.models import OutcomeLabel
from tests.factories import MessageFactory, OutcomeLabelFactory
from webhooks.inbox import inbox_date_parse, reply_text_clean, thread_ids
from webhooks.models import WebhookEvent
from webhooks.services import webhook_event_process
from webhooks.signatures import rex_hmac_signature

pytestmark = pytest.mark.django_db

SECRET = "inbox-test-secret"
INBOX_PATH = "/inbox/sync"
LEAD_EMAIL = "maya.patel@brightlane.example.com"
SENT_ID = "<rex-41-0a1b2c3d4e5f6071@mail0.rex.example.com>"
QUOTED_ORIGINAL = "it has been a while since we last spoke"


@pytest.fixture(autouse=True)
def inbox_settings(settings):
    settings.INBOX_WEBHOOK_SECRET = SECRET
    settings.DEBUG = False


def sent_outcome(**message_fields) -> OutcomeLabel:
    fields = {
        "status": Message.Status.SENT,
        "sent_at": timezone.now() - timedelta(days=2),
        "to_address": LEAD_EMAIL,
        "lead__email": LEAD_EMAIL,
        "rfc_message_id": SENT_ID,
        **message_fields,
    }
    message = MessageFactory(**fields)
    return OutcomeLabelFactory(message=message, organization=message.organization, delivered=False)


@pytest.fixture
def outcome():
    return sent_outcome()


def inbound(message_id: str = "<CAF=reply-1@mail.gmail.com>", **fields) -> dict:
    return {
        "message_id": message_id,
        "from": f"Maya Patel <{LEAD_EMAIL}>",
        "to": "sales@mail0.rex.example.com",
        "subject": "Re: Still looking at pipeline tooling?",
        "text": "Yes, let's talk on Tuesday.",
        "in_reply_to": SENT_ID,
        "references": SENT_ID,
        "date": "Mon, 06 Oct 2025 09:14:00 +0000",
        **fields,
    }


def signed_headers(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "X-Rex-Timestamp": stamp,
        "X-Rex-Signature": rex_hmac_signature(secret=secret, timestamp=stamp, raw_body=body),
    }


@pytest.fixture
def post_inbox(client, django_capture_on_commit_callbacks):
    """POSTs a signed body, runs what was enqueued on commit, then processes each new event like the task does."""

    def post(payload, headers: dict | None = None):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        before = set(WebhookEvent.objects.values_list("id", flat=True))
        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post(
                INBOX_PATH,
                data=body,
                content_type="application/json",
                headers=signed_headers(body) if headers is None else headers,
            )
        new_ids = set(WebhookEvent.objects.values_list("id", flat=True)) - before
        assert len(callbacks) == (1 if new_ids else 0)  # one task for the batch
        for event_id in sorted(new_ids):
            webhook_event_process(event_id=event_id)
        return response

    return post


def only_event() -> WebhookEvent:
    (event,) = WebhookEvent.objects.filter(provider=WebhookEvent.Provider.INBOX)
    return event


# --- Signature ------------------------------------------------------------------------------------


def test_a_signed_reply_is_stored_and_processed(post_inbox, outcome):
    response = post_inbox(inbound())

    assert response.status_code == 200
    assert response.json() == {"received": 1, "new": 1}
    event = only_event()
    assert event.provider_event_id == "<CAF=reply-1@mail.gmail.com>"
    assert event.signature == WebhookEvent.Signature.VALID
    assert event.state == WebhookEvent.State.PROCESSED
    assert event.organization_id == outcome.organization_id
    outcome.refresh_from_db()
    assert outcome.replied and outcome.delivered
    assert outcome.reply_text == "Yes, let's talk on Tuesday."
    assert outcome.replied_at.isoformat() == "2025-10-06T09:14:00+00:00"


@pytest.mark.parametrize(
    ("make_headers", "status"),
    [
        (lambda body: signed_headers(body, secret="another-secret"), 403),
        (lambda body: signed_headers(body, timestamp=int(time.time()) - 3600), 403),
        (lambda body: {"X-Rex-Timestamp": str(int(time.time()))}, 401),
        (lambda body: {**signed_headers(body), "X-Rex-Signature": "sha256=" + "0" * 64}, 403),
    ],
    ids=["wrong-secret", "stale-timestamp", "missing-signature", "forged-digest"],
)
def test_a_badly_signed_request_is_refused_and_nothing_is_stored(client, outcome, make_headers, status):
    body = json.dumps(inbound()).encode()
    response = client.post(INBOX_PATH, data=body, content_type="application/json", headers=make_headers(body))

    assert response.status_code == status
    assert not WebhookEvent.objects.exists()


def test_an_unset_secret_is_refused_when_debug_is_off(client, settings, outcome):
    settings.INBOX_WEBHOOK_SECRET = ""
    body = json.dumps(inbound()).encode()
    response = client.post(INBOX_PATH, data=body, content_type="application/json", headers=signed_headers(body))

    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()


def test_the_signature_covers_the_exact_bytes(client, outcome):
    body = json.dumps(inbound()).encode()
    headers = signed_headers(body)
    response = client.post(INBOX_PATH, data=body + b" ", content_type="application/json", headers=headers)

    assert response.status_code == 403


# --- Matching -------------------------------------------------------------------------------------


def test_matched_by_in_reply_to_even_from_another_address(post_inbox, outcome):
    post_inbox(inbound(**{"from": "assistant@brightlane.example.com", "references": None}))

    outcome.refresh_from_db()
    assert outcome.replied


def test_matched_by_the_newest_references_id(post_inbox, outcome):
    older = sent_outcome(
        rfc_message_id="<rex-7-older@mail0.rex.example.com>", to_address="other@x.example.com", lead__email="o@x.com"
    )
    references = f"<unknown@elsewhere.example.com> {older.message.rfc_message_id}\r\n {SENT_ID} <not-ours@x.com>"
    post_inbox(inbound(**{"in_reply_to": None, "from": "someone@else.example.com", "references": references}))

    outcome.refresh_from_db()
    older.refresh_from_db()
    assert outcome.replied
    assert not older.replied


def test_thread_ids_take_in_reply_to_then_references_newest_first_with_or_without_brackets():
    payload = {"in_reply_to": " <c@x> ", "references": ["<a@x> <b@x>", "c@x"]}
    assert thread_ids(payload) == ["c@x", "b@x", "a@x"]


def test_a_stored_message_id_without_brackets_still_matches(post_inbox):
    outcome = sent_outcome(rfc_message_id="rex-9-bare@mail0.rex.example.com")
    post_inbox(inbound(in_reply_to="<rex-9-bare@mail0.rex.example.com>", references=None, **{"from": "x@y.com"}))

    outcome.refresh_from_db()
    assert outcome.replied


def test_matched_by_address_to_the_most_recent_sent_email(post_inbox):
    earlier = sent_outcome(rfc_message_id="<a@rex>", sent_at=timezone.now() - timedelta(days=9), step=1)
    latest = sent_outcome(rfc_message_id="<b@rex>", sent_at=timezone.now() - timedelta(days=1), step=2)
    queued = sent_outcome(rfc_message_id="", status=Message.Status.QUEUED, sent_at=None, step=3)

    post_inbox(inbound(in_reply_to=None, references=None, **{"from": f"MAYA <{LEAD_EMAIL.upper()}>"}))

    for row in (earlier, latest, queued):
        row.refresh_from_db()
    assert latest.replied
    assert not earlier.replied and not queued.replied
    assert only_event().organization_id == latest.organization_id


def test_a_from_header_with_an_unquoted_comma_in_the_name_is_still_read(post_inbox):
    """ "Maya Patel, PhD <maya@…>" is not RFC 5322 (the comma needs quotes) but mail clients send it."""
    latest = sent_outcome(rfc_message_id="<b@rex>")

    response = post_inbox(inbound(in_reply_to=None, references=None, **{"from": f"Maya Patel, PhD <{LEAD_EMAIL}>"}))

    assert response.status_code == 200
    latest.refresh_from_db()
    assert latest.replied


def test_by_address_the_email_sent_from_the_mailbox_replied_to_wins(post_inbox):
    ours = sent_outcome(rfc_message_id="<a@rex>", sent_at=timezone.now() - timedelta(days=9))
    other_org = sent_outcome(rfc_message_id="<b@rex>", sent_at=timezone.now() - timedelta(days=1))

    post_inbox(inbound(in_reply_to=None, references=None, to=[f"Sales <{ours.message.from_address}>"]))

    ours.refresh_from_db()
    other_org.refresh_from_db()
    assert ours.replied and not other_org.replied


# --- Reply text -----------------------------------------------------------------------------------


GMAIL_REPLY = (
    "Yes, Tuesday at 10 works for me.\r\n\r\nBest regards,\r\nMaya Patel\r\nVP Sales | Brightlane\r\n\r\n"
    "On Mon, Oct 6, 2025 at 9:14 AM Sam <sales@mail0.rex.example.com> wrote:\r\n"
    f"> Hi Maya, {QUOTED_ORIGINAL}.\r\n> Would a short call make sense?\r\n"
)


def test_quoted_history_and_signature_are_stripped_from_the_reply(post_inbox, outcome):
    post_inbox(inbound(text=GMAIL_REPLY))

    outcome.refresh_from_db()
    assert outcome.reply_text == "Yes, Tuesday at 10 works for me."
    assert QUOTED_ORIGINAL not in outcome.reply_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Interested.\n\nFrom: Sam <sales@x.com>\nSent: Monday, October 6, 2025 9:14 AM\nTo: Maya <maya@x.com>\n"
            f"Subject: Still looking?\n\nHi Maya, {QUOTED_ORIGINAL}",
            "Interested.",
        ),
        (
            "Klingt gut, gerne.\n\nMit freundlichen Grüßen\nHans\n\n"
            f"Am 06.10.2025 um 09:14 schrieb Sam:\n> {QUOTED_ORIGINAL}",
            "Klingt gut, gerne.",
        ),
        (
            f"Sí, hablemos.\n\nEl lun, 6 oct 2025 a las 9:14, Sam (<s@x.com>) escribió:\n> {QUOTED_ORIGINAL}",
            "Sí, hablemos.",
        ),
        (f"> {QUOTED_ORIGINAL}\n\nBottom-posted: yes please.", "Bottom-posted: yes please."),
        (
            "Two questions:\n- price?\n- timeline?\n\n-- \nMaya\nSent from my iPhone",
            "Two questions:\n- price?\n- timeline?",
        ),
        ("", ""),
    ],
    ids=["outlook", "german", "spanish-gmail", "bottom-posted", "hyphen-list-and-sig-dash", "empty"],
)
def test_reply_text_clean(text, expected):
    assert reply_text_clean(text=text) == expected


def test_the_html_part_is_used_when_the_text_part_is_empty(post_inbox, outcome):
    html = f"<div>Happy to chat&nbsp;Thursday.</div><blockquote><p>{QUOTED_ORIGINAL}</p></blockquote>"
    post_inbox(inbound(text="", html=html))

    outcome.refresh_from_db()
    assert outcome.replied
    assert outcome.reply_text == "Happy to chat\xa0Thursday."


# --- Not replies ----------------------------------------------------------------------------------


def test_an_out_of_office_is_not_counted(post_inbox, outcome):
    post_inbox(
        inbound(
            subject="Automatic reply: Still looking at pipeline tooling?",
            text="I am out of the office until 14 October with limited access to email.",
            headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
        )
    )

    event = only_event()
    outcome.refresh_from_db()
    assert event.state == WebhookEvent.State.PROCESSED
    assert event.error == "auto-reply: not counted"
    assert event.organization_id == outcome.organization_id
    assert not outcome.replied and outcome.reply_text == ""


def test_the_original_subject_does_not_make_a_human_reply_an_auto_reply(post_inbox):
    outcome = sent_outcome(subject="Out of office season is coming: is your pipeline ready?")
    post_inbox(inbound(subject="Re: Out of office season is coming: is your pipeline ready?"))

    outcome.refresh_from_db()
    assert outcome.replied


def test_a_delivery_failure_notice_is_ignored(post_inbox, outcome):
    post_inbox(
        inbound(
            **{"from": "Mail Delivery Subsystem <MAILER-DAEMON@googlemail.com>"},
            subject="Delivery Status Notification (Failure)",
            text="Address not found",
        )
    )

    event = only_event()
    outcome.refresh_from_db()
    assert event.state == WebhookEvent.State.IGNORED
    assert "mailer-daemon@googlemail.com" in event.error
    assert not outcome.replied


# --- Idempotency and ordering ---------------------------------------------------------------------


def test_the_same_email_posted_twice_counts_once(post_inbox, outcome, monkeypatch):
    calls = []
    real = webhooks.inbox.reply_record
    monkeypatch.setattr(webhooks.inbox, "reply_record", lambda **kwargs: calls.append(kwargs) or real(**kwargs))

    first = post_inbox(inbound())
    second = post_inbox(inbound(message_id="CAF=reply-1@mail.gmail.com"))  # same id, without brackets

    assert first.json() == {"received": 1, "new": 1}
    assert second.status_code == 200 and second.json() == {"received": 1, "new": 0}
    assert WebhookEvent.objects.count() == 1
    assert len(calls) == 1


def test_a_batch_stores_one_event_per_email_and_a_single_message_object_is_accepted(post_inbox, outcome):
    batch = {"messages": [inbound("<one@x>"), inbound("<two@x>"), inbound("<one@x>")]}
    assert post_inbox(batch).json() == {"received": 3, "new": 2}
    assert post_inbox(inbound("<three@x>")).json() == {"received": 1, "new": 1}
    assert set(WebhookEvent.objects.values_list("provider_event_id", flat=True)) == {"<one@x>", "<two@x>", "<three@x>"}


def test_an_unmatched_email_is_kept_then_matched_once_the_message_exists(post_inbox):
    post_inbox(inbound())
    event = only_event()
    assert event.state == WebhookEvent.State.UNMATCHED
    assert event.organization is None

    outcome = sent_outcome()
    webhook_event_process(event_id=event.pk)  # what the sweep re-enqueues

    event.refresh_from_db()
    outcome.refresh_from_db()
    assert event.state == WebhookEvent.State.PROCESSED
    assert event.attempts == 2
    assert outcome.replied


def test_a_future_date_is_clamped_to_the_arrival_time(post_inbox, outcome):
    post_inbox(inbound(date="2099-01-01T00:00:00Z"))

    outcome.refresh_from_db()
    assert outcome.replied_at <= only_event().received_at


# --- Malformed bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "Body is not JSON"),
        (b"[]", "Body is not a JSON object"),
        (json.dumps({"messages": {"message_id": "<a@x>"}}).encode(), "'messages' is not a list"),
        (json.dumps({k: v for k, v in inbound().items() if k != "from"}).encode(), "Message 0: 'from' is required"),
        (json.dumps(inbound(**{"from": "not an address"})).encode(), "Message 0: 'from' is not an email address"),
        (json.dumps(inbound(text=None)).encode(), "Message 0: 'text' is required"),
        (json.dumps(inbound(message_id="<>")).encode(), "Message 0: 'message_id' is required"),
        (json.dumps(inbound(date="next tuesday")).encode(), "Message 0: 'date' is not an RFC 2822 or ISO 8601"),
        (json.dumps(inbound(references={"a": 1})).encode(), "Message 0: 'references' is not a string or a list"),
        (json.dumps(inbound(headers={"Precedence": {"x": 1}})).encode(), "Message 0: 'headers' is not an object"),
        (
            json.dumps({"messages": [inbound("<a@x>"), inbound("<b@x>"), inbound("<c@x>", to=7)]}).encode(),
            "Message 2: 'to' is not a string or a list",
        ),
        (json.dumps({"messages": [inbound("<a@x>"), "hello"]}).encode(), "Message 1 is not an object"),
    ],
    ids=[
        "not-json",
        "array",
        "messages-not-a-list",
        "missing-from",
        "bad-from",
        "missing-text",
        "empty-message-id",
        "bad-date",
        "bad-references",
        "bad-headers",
        "message-2-bad",
        "message-not-object",
    ],
)
def test_a_malformed_body_is_refused_and_nothing_is_stored(post_inbox, outcome, body, reason):
    response = post_inbox(body)

    assert response.status_code == 400
    assert reason in response.json()["detail"]
    assert not WebhookEvent.objects.exists()
    outcome.refresh_from_db()
    assert not outcome.replied


@pytest.mark.parametrize(
    "value",
    ["Mon, 06 Oct 2025 11:14:00 +0200", "2025-10-06T09:14:00Z", "2025-10-06T11:14:00+02:00", "2025-10-06 09:14:00"],
)
def test_dates_parse_as_rfc_2822_or_iso_8601_and_a_missing_zone_is_utc(value):
    assert inbox_date_parse(value) == datetime(2025, 10, 6, 9, 14, tzinfo=UTC)
