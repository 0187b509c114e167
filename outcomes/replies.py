"""The reply path: every channel's inbound reply (inbox sync, inbound SMS) ends here."""

from datetime import datetime

from outcomes import tracker
from outcomes.models import OutcomeLabel
from outcomes.sentiment import OUT_OF_OFFICE, SentimentAnalyzer, lead_known_pii


def reply_record(*, outcome: OutcomeLabel, at: datetime, text: str) -> OutcomeLabel:
    """Classify the reply (with the original message and lead context) and record it on the outcome.
    A reply asking to be removed is also an unsubscribe (the address is suppressed). An auto-reply (out of office)
    is not a reply: nothing is recorded and the lead's next steps go on."""
    analysis = SentimentAnalyzer().analyze(
        reply_text=text,
        original_message=outcome.message_body,
        lead_context=outcome.lead_context,
        known_pii=lead_known_pii(outcome.lead),
    )
    if analysis.category == OUT_OF_OFFICE:
        return outcome
    row = tracker.track_reply(outcome, at=at, text=text, sentiment=analysis.outcome_fields())
    if analysis.category == "unsubscribe":
        row = tracker.track_unsubscribed(row, at=at)
    return row
