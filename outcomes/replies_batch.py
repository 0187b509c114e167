"""Classify the sentiment of replies already recorded: history from before the analyzer existed, or after it
changed (a new model, new rules).

Each reply goes through the same analyzer as a live one and is applied with ``tracker.track_sentiment``, which
re-labels the first reply in place and, unlike a live reply, moves no lead and cancels no queued message. A reply
that asks to be removed is also an unsubscribe, as on the live path (``outcomes.replies``): history classified
before the analyzer could tell is suppressed now.
"""

from collections.abc import Callable

from django.db.models import QuerySet

from outcomes import tracker
from outcomes.models import OutcomeLabel
from outcomes.sentiment import SentimentAnalyzer, lead_known_pii


def replies_to_classify(*, organization_id: int | None = None, only_unclassified: bool = True) -> QuerySet:
    """Replied outcomes with a reply text, oldest row first; without a label yet when ``only_unclassified``."""
    rows = OutcomeLabel.objects.filter(replied=True).exclude(reply_text="")
    if organization_id is not None:
        rows = rows.filter(organization_id=organization_id)
    if only_unclassified:
        rows = rows.filter(sentiment_label="")
    return rows.order_by("pk")


def reply_classify(*, outcome: OutcomeLabel, analyzer: SentimentAnalyzer | None = None) -> OutcomeLabel:
    """Classify one recorded reply and write its sentiment onto the row."""
    analysis = (analyzer or SentimentAnalyzer()).analyze(
        reply_text=outcome.reply_text,
        original_message=outcome.message_body,
        lead_context=outcome.lead_context,
        known_pii=lead_known_pii(outcome.lead),
    )
    row = tracker.track_sentiment(outcome, sentiment=analysis.outcome_fields())
    if analysis.category == "unsubscribe" and not row.unsubscribed:
        row = tracker.track_unsubscribed(row, at=outcome.replied_at)
    return row


def replies_classify_batch(
    *,
    organization_id: int | None = None,
    only_unclassified: bool = True,
    batch_size: int = 200,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Classify every matching reply, ``batch_size`` rows per query (keyset on the primary key, so rows that
    get their label meanwhile neither shift the pages nor come back), and return how many were classified.
    Every row is written in its own transaction: an interrupted run keeps what it did, and a rerun with
    ``only_unclassified`` carries on where it stopped. ``progress`` is called with the running count per batch."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    rows = replies_to_classify(organization_id=organization_id, only_unclassified=only_unclassified)
    analyzer, done, last_pk = SentimentAnalyzer(), 0, 0
    while batch := list(rows.filter(pk__gt=last_pk).select_related("lead")[:batch_size]):
        for outcome in batch:
            reply_classify(outcome=outcome, analyzer=analyzer)
        done += len(batch)
        last_pk = batch[-1].pk
        if progress is not None:
            progress(done)
    return done
