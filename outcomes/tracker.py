"""The outcome tracker: what the provider and CRM webhooks call to update an outcome row.

Every ``track_*`` function takes the OutcomeLabel (or its id), locks the row (``select_for_update``) inside a
transaction, applies the event, recomputes the training label and weight (``outcomes.labels``), saves and
returns the row.

Events arrive in any order and more than once:

* booleans only go from False to True (with the few documented exceptions: a completed meeting clears a
  no-show, a won deal clears a lost one), and timestamps keep the earliest time seen, so replaying an event
  or receiving it late changes nothing;
* an open, a click or a reply implies the message was delivered (``delivered_at`` = earliest known time);
* counters (``open_count``, ``click_count`` and their bot twins) only grow and grow by one per call: the
  tracker cannot tell a replay from a second open, so **deduplicating provider events is the caller's job**
  (the webhook layer stores one WebhookEvent per provider event id and calls the tracker once per event).

Label hygiene: opens by mail-security proxies and clicks by link scanners (known user agents, or within
``MACHINE_SECONDS`` of delivery) are counted in ``bot_open_count`` / ``bot_click_count`` only: they do not
set ``opened``/``clicked``, do not move the lead to ``engaged`` and do not reach the training label.
Apple Mail Privacy Protection opens (a plain "Mozilla/5.0" from Apple's proxies, often hours after delivery)
are flagged by the provider (SendGrid's ``sg_machine_open``): the caller passes ``machine=True``. Without that
flag they are caught only by the timing rule; the ``ip`` argument is accepted for when a range list exists. A
machine open that arrives *before* its delivered event cannot be caught by timing (the delivery time is not
known yet).
"""

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction

from agents.compliance import stop_on_reply, suppress
from agents.decisions.lifecycle import lead_can, lead_transition
from agents.models import Lead, Suppression
from outcomes.labels import training_label
from outcomes.models import OutcomeLabel

logger = logging.getLogger("rex.outcomes")

MACHINE_SECONDS = 5

# Security gateways and link scanners that fetch every URL (and pixel) before the recipient sees the email.
# Deliberately absent: "GoogleImageProxy" and "YahooMailProxy" fetch the pixel when the recipient opens the
# email (they are how Gmail and Yahoo users' real opens look), and "Microsoft Office" is Outlook desktop.
SCANNER_MARKERS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "symantec",
    "messagelabs",
    "trend micro",
    "forcepoint",
    "cisco ironport",
    "safelinks",
    "preview",  # link previews (LinkPreview, Slack/Teams unfurlers)
    "facebookexternalhit",
    "headlesschrome",
    "python-requests",
    "go-http-client",
    "curl/",
    "wget/",
)

MeetingState = str  # "booked" | "completed" | "no_show"
MEETING_STATES = ("booked", "completed", "no_show")
BOUNCE_RANK = {
    "": 0,
    OutcomeLabel.BounceType.SOFT: 1,
    OutcomeLabel.BounceType.BLOCKED: 2,
    OutcomeLabel.BounceType.HARD: 3,
}
SENTIMENT_FIELDS = (
    "sentiment_label",
    "reply_sentiment_score",
    "interest_signal",
    "interest_level",
    "objection_detected",
    "objection_type",
    "sentiment_reasoning",
)
SENTIMENT_CHOICES = {
    "sentiment_label": OutcomeLabel.SentimentLabel.values,
    "interest_level": OutcomeLabel.InterestLevel.values,
    "objection_type": OutcomeLabel.Objection.values,
}


# --- Label hygiene --------------------------------------------------------------------------------


# Crawlers name themselves "...bot" (Googlebot/2.1, bingbot, Slackbot-LinkExpanding, Twitterbot): a word ending in
# "bot" followed by a version, a dash or the end of a token, but not a phone brand like "CUBOT X30".
_BOT_AGENT = re.compile(r"(?<![a-z])(?:[a-z]+bot|bot)(?=[/\-_;)\s]|$)(?<!cubot)")


def _scanner_agent(user_agent: str) -> bool:
    agent = (user_agent or "").lower()
    return any(marker in agent for marker in SCANNER_MARKERS) or bool(_BOT_AGENT.search(agent))


def _right_after_delivery(*, delivered_at: datetime | None, at: datetime) -> bool:
    return delivered_at is not None and abs(at - delivered_at) <= timedelta(seconds=MACHINE_SECONDS)


def is_machine_open(
    *, delivered_at: datetime | None, at: datetime, user_agent: str = "", flagged: bool = False
) -> bool:
    """An open no person made: flagged by the provider (a privacy proxy's prefetch), a known scanner/proxy user
    agent, or within MACHINE_SECONDS of delivery."""
    return flagged or _scanner_agent(user_agent) or _right_after_delivery(delivered_at=delivered_at, at=at)


def is_machine_click(*, delivered_at: datetime | None, at: datetime, user_agent: str = "") -> bool:
    """A click no person made: a link scanner's user agent, or within MACHINE_SECONDS of delivery."""
    return _scanner_agent(user_agent) or _right_after_delivery(delivered_at=delivered_at, at=at)


# --- Plumbing -------------------------------------------------------------------------------------


def _earliest(current: datetime | None, at: datetime | None) -> datetime | None:
    if current is None:
        return at
    if at is None:
        return current
    return min(current, at)


def _update(outcome: OutcomeLabel | int, apply: Callable[[OutcomeLabel], None]) -> OutcomeLabel:
    pk = outcome.pk if isinstance(outcome, OutcomeLabel) else outcome
    with transaction.atomic():
        row = OutcomeLabel.objects.select_for_update().get(pk=pk)
        apply(row)
        row.training_label, row.training_weight = training_label(row)
        row.save()
    return row


def _mark_delivered(row: OutcomeLabel, at: datetime) -> None:
    row.delivered = True
    row.delivered_at = _earliest(row.delivered_at, at)


def _lead_event(lead: Lead, event: str) -> None:
    if lead_can(lead, event):
        lead_transition(lead, event)


def _recipient(row: OutcomeLabel) -> tuple[str, str]:
    """(suppression kind, value): the number an SMS went to, else the address an email went to."""
    if row.channel == "sms":
        number = row.message.to_address if row.message_id and row.message.to_address else row.lead.phone
        return Suppression.Kind.PHONE, number
    if row.message_id and row.message.to_address:
        return Suppression.Kind.EMAIL, row.message.to_address
    return Suppression.Kind.EMAIL, row.lead.email


def _suppress_recipient(row: OutcomeLabel, *, reason: str) -> None:
    kind, address = _recipient(row)
    if not address:
        logger.warning("outcome %s: no %s to suppress (%s)", row.pk, kind, reason)
        return
    suppress(
        organization=row.organization,
        kind=kind,
        value=address,
        reason=reason,
        note=f"outcome {row.pk}",
    )


# --- Delivery -------------------------------------------------------------------------------------


def track_delivered(outcome_id: OutcomeLabel | int, *, at: datetime) -> OutcomeLabel:
    return _update(outcome_id, lambda row: _mark_delivered(row, at))


def track_bounced(outcome_id: OutcomeLabel | int, *, at: datetime, bounce_type: str, reason: str = "") -> OutcomeLabel:
    """A bounce (hard, soft or blocked). The bounce type never downgrades (hard > blocked > soft); the reason
    is that of the strongest bounce. A hard bounce suppresses the address (reason ``hard_bounce``)."""
    if bounce_type not in OutcomeLabel.BounceType.values:
        raise ValueError(f"Unknown bounce type '{bounce_type}'.")

    def apply(row: OutcomeLabel) -> None:
        row.bounced = True
        if BOUNCE_RANK[bounce_type] >= BOUNCE_RANK[row.bounce_type]:
            row.bounce_type = bounce_type
            row.bounce_reason = reason or row.bounce_reason
        if bounce_type == OutcomeLabel.BounceType.HARD:
            _suppress_recipient(row, reason=Suppression.Reason.HARD_BOUNCE)

    return _update(outcome_id, apply)


def track_deferred(outcome_id: OutcomeLabel | int, *, at: datetime, reason: str = "") -> OutcomeLabel:
    """A temporary failure the provider is still retrying: noted as a soft bounce type and reason on a row
    that has no bounce yet, but not a bounce (``bounced`` stays False; the message may still be delivered)."""

    def apply(row: OutcomeLabel) -> None:
        if not row.bounced and not row.bounce_type:
            row.bounce_type = OutcomeLabel.BounceType.SOFT
            row.bounce_reason = reason

    return _update(outcome_id, apply)


# --- Engagement -----------------------------------------------------------------------------------


def track_opened(
    outcome_id: OutcomeLabel | int, *, at: datetime, user_agent: str = "", ip: str = "", machine: bool = False
) -> OutcomeLabel:
    """An open (implies delivered). Machine opens (``machine``: the provider says so) count in ``bot_open_count``
    only; see the module docstring."""

    def apply(row: OutcomeLabel) -> None:
        machine_open = is_machine_open(delivered_at=row.delivered_at, at=at, user_agent=user_agent, flagged=machine)
        _mark_delivered(row, at)
        if machine_open:
            row.bot_open_count += 1
            return
        row.opened = True
        row.open_count += 1
        row.first_opened_at = _earliest(row.first_opened_at, at)
        _lead_event(row.lead, "engage")

    return _update(outcome_id, apply)


def track_clicked(outcome_id: OutcomeLabel | int, *, at: datetime, url: str = "", user_agent: str = "") -> OutcomeLabel:
    """A click (implies delivered; a human click also implies opened, for clients that block the pixel,
    without adding to ``open_count``). Machine clicks count in ``bot_click_count`` only."""

    def apply(row: OutcomeLabel) -> None:
        machine = is_machine_click(delivered_at=row.delivered_at, at=at, user_agent=user_agent)
        _mark_delivered(row, at)
        if machine:
            row.bot_click_count += 1
            return
        row.clicked = True
        row.click_count += 1
        row.first_clicked_at = _earliest(row.first_clicked_at, at)
        row.opened = True
        row.first_opened_at = _earliest(row.first_opened_at, at)
        _lead_event(row.lead, "engage")

    return _update(outcome_id, apply)


def track_unsubscribed(outcome_id: OutcomeLabel | int, *, at: datetime) -> OutcomeLabel:
    """The recipient unsubscribed: flag the row and suppress the address (reason ``unsubscribe``)."""

    def apply(row: OutcomeLabel) -> None:
        row.unsubscribed = True
        _suppress_recipient(row, reason=Suppression.Reason.UNSUBSCRIBE)

    return _update(outcome_id, apply)


def track_spam_report(outcome_id: OutcomeLabel | int, *, at: datetime) -> OutcomeLabel:
    """The recipient reported the message as spam: flag the row and suppress the address (``spam_report``)."""

    def apply(row: OutcomeLabel) -> None:
        row.spam_reported = True
        _suppress_recipient(row, reason=Suppression.Reason.SPAM_REPORT)

    return _update(outcome_id, apply)


# --- Reply ----------------------------------------------------------------------------------------


def _clean_sentiment(sentiment: dict) -> dict:
    values = {field: sentiment[field] for field in SENTIMENT_FIELDS if field in sentiment}
    for field, choices in SENTIMENT_CHOICES.items():
        if values.get(field, "") not in ("", *choices):
            raise ValueError(f"Invalid {field} '{values[field]}'.")
    score = values.get("reply_sentiment_score")
    if score is not None and not -1.0 <= score <= 1.0:
        raise ValueError(f"reply_sentiment_score {score} is outside [-1, 1].")
    return values


def track_reply(
    outcome_id: OutcomeLabel | int, *, at: datetime, text: str, sentiment: dict | None = None
) -> OutcomeLabel:
    """A reply (implies delivered). The row describes the *first* reply: its text and sentiment are taken
    from the earliest reply seen (a replay or a re-classification of that reply, same ``at``, updates them;
    a later reply does not). ``sentiment`` holds any of SENTIMENT_FIELDS. Moves the lead to ``replied`` when
    the lifecycle allows and stops the lead's queued messages."""
    values = _clean_sentiment(sentiment or {})

    def apply(row: OutcomeLabel) -> None:
        _mark_delivered(row, at)
        first = row.replied_at is None or at <= row.replied_at
        row.replied = True
        row.replied_at = _earliest(row.replied_at, at)
        if first:
            row.reply_text = text
            for field, value in values.items():
                setattr(row, field, value)
        _lead_event(row.lead, "reply")
        stop_on_reply(lead=row.lead)

    return _update(outcome_id, apply)


def track_sentiment(outcome_id: OutcomeLabel | int, *, sentiment: dict) -> OutcomeLabel:
    """Re-label the recorded first reply's sentiment only (a batch re-classification of history): unlike
    ``track_reply`` it moves no lead and stops no queued message, since the reply was handled when it arrived."""
    values = _clean_sentiment(sentiment)

    def apply(row: OutcomeLabel) -> None:
        if not row.replied:
            raise ValueError(f"Outcome {row.pk} has no reply to classify.")
        for field, value in values.items():
            setattr(row, field, value)

    return _update(outcome_id, apply)


# --- Meeting and deal -----------------------------------------------------------------------------


def track_meeting(outcome_id: OutcomeLabel | int, *, at: datetime, state: MeetingState) -> OutcomeLabel:
    """``booked``, ``completed`` or ``no_show``. Completed and no-show imply booked (``meeting_booked_at`` is
    set by a booked event only); a completed meeting wins over a no-show whatever the order (a rescheduled
    meeting that happened). Moves the lead to ``meeting`` when the lifecycle allows."""
    if state not in MEETING_STATES:
        raise ValueError(f"Unknown meeting state '{state}'.")

    def apply(row: OutcomeLabel) -> None:
        row.meeting_booked = True
        if state == "booked":
            row.meeting_booked_at = _earliest(row.meeting_booked_at, at)
        elif state == "completed":
            row.meeting_completed = True
            row.meeting_no_show = False
        else:
            row.meeting_no_show = not row.meeting_completed
        _lead_event(row.lead, "book_meeting")

    return _update(outcome_id, apply)


def track_opportunity(
    outcome_id: OutcomeLabel | int, *, at: datetime, value: Decimal | int | str | None = None
) -> OutcomeLabel:
    """The CRM opened an opportunity (deal) for the lead: ``opportunity_created``. ``value`` (the CRM's amount,
    if given) sets ``deal_value`` unless a won deal already recorded one: the closing value wins over an opening
    estimate whatever the order. ``at`` is accepted for symmetry (the row keeps no opportunity time)."""

    def apply(row: OutcomeLabel) -> None:
        row.opportunity_created = True
        if value is not None and not (row.deal_closed and row.deal_value is not None):
            row.deal_value = Decimal(str(value))

    return _update(outcome_id, apply)


def track_deal(
    outcome_id: OutcomeLabel | int, *, at: datetime, won: bool, value: Decimal | int | str | None = None
) -> OutcomeLabel:
    """A deal closed won or lost, possibly weeks after the row was labelled. Won: ``deal_closed``,
        ``deal_closed_at`` (earliest) and ``time_to_close_days`` from ``sent_at``; won wins over lost whatever the
        order. ``value`` (if given) replaces the deal value, except that a "lost" event never overwrites a won deal's
    value. Moves the lead to ``won``/``lost`` when allowed."""

    def apply(row: OutcomeLabel) -> None:
        row.opportunity_created = True
        if value is not None and (won or not row.deal_closed):
            row.deal_value = Decimal(str(value))
        if won:
            row.deal_closed = True
            row.deal_lost = False
            row.deal_closed_at = _earliest(row.deal_closed_at, at)
            if row.sent_at is not None:
                row.time_to_close_days = max(0, (row.deal_closed_at - row.sent_at).days)
        else:
            row.deal_lost = not row.deal_closed
        _lead_event(row.lead, "win" if won else "lose")

    return _update(outcome_id, apply)
