"""The training label and weight of an outcome: seed 004's weight table, as a pure function of the row.

Precedence, strongest signal first (the first rule that matches decides):

===  ===========================================================  ========  ======
 #   The row shows                                                label     weight
===  ===========================================================  ========  ======
 1   ``deal_closed``                                              positive  10.0
 2   ``meeting_completed``                                        positive   7.0
 3   ``meeting_booked`` (also after a no-show: it earned a slot)  positive   5.0
 4   ``replied`` with interest (``interest_signal`` is True or    positive   3.0
     ``sentiment_label`` is positive)
 5   ``replied`` with an objection (``objection_detected``, a     negative   2.0
     real ``objection_type``, or a negative ``sentiment_label``)
 6   ``replied``, anything else                                   neutral    1.0
 7   ``bounced``                                                  negative   0.5
 8   ``unsubscribed`` or ``spam_reported``                        negative   0.5
 9   anything else (sent, delivered, opened, clicked)             neutral    1.0
===  ===========================================================  ========  ======

A lost deal has no row of its own: the meeting or reply that led to it still taught the writer something.
"""

from outcomes.models import OutcomeLabel

Label = OutcomeLabel.Label

DEAL_CLOSED = (Label.POSITIVE, 10.0)
MEETING_COMPLETED = (Label.POSITIVE, 7.0)
MEETING_BOOKED = (Label.POSITIVE, 5.0)
INTERESTED_REPLY = (Label.POSITIVE, 3.0)
OBJECTION_REPLY = (Label.NEGATIVE, 2.0)
NEUTRAL_REPLY = (Label.NEUTRAL, 1.0)
BOUNCE = (Label.NEGATIVE, 0.5)
# The seed's table has no row for opt-outs. An unsubscribe or a spam complaint is the recipient's clearest
# "this message was unwelcome", so it is a negative example; it gets the bounce weight (the table's lowest)
# because, like a bounce, it says little about *which* part of the message failed, so it must not outweigh
# a reply that names the objection (2.0).
OPT_OUT = (Label.NEGATIVE, 0.5)
NO_SIGNAL = (Label.NEUTRAL, 1.0)


def _has_objection(outcome: OutcomeLabel) -> bool:
    return (
        outcome.objection_detected
        or outcome.objection_type not in ("", OutcomeLabel.Objection.NONE)
        or outcome.sentiment_label == OutcomeLabel.SentimentLabel.NEGATIVE
    )


def _has_interest(outcome: OutcomeLabel) -> bool:
    return outcome.interest_signal is True or outcome.sentiment_label == OutcomeLabel.SentimentLabel.POSITIVE


def _reply_label(outcome: OutcomeLabel) -> tuple[str, float]:
    if _has_interest(outcome):
        return INTERESTED_REPLY
    if _has_objection(outcome):
        return OBJECTION_REPLY
    return NEUTRAL_REPLY


def training_label(outcome: OutcomeLabel) -> tuple[str, float]:
    """``(label, weight)`` of the row, by the precedence in the module docstring. Reads only the row's fields."""
    if outcome.deal_closed:
        return DEAL_CLOSED
    if outcome.meeting_completed:
        return MEETING_COMPLETED
    if outcome.meeting_booked:
        return MEETING_BOOKED
    if outcome.replied:
        return _reply_label(outcome)
    if outcome.bounced:
        return BOUNCE
    if outcome.unsubscribed or outcome.spam_reported:
        return OPT_OUT
    return NO_SIGNAL
