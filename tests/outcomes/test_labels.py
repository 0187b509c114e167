"""The training label table (seed 004) and its precedence."""

import pytest

from outcomes.labels import training_label
from outcomes.models import OutcomeLabel

P, N, U = OutcomeLabel.Label.POSITIVE, OutcomeLabel.Label.NEGATIVE, OutcomeLabel.Label.NEUTRAL


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, (U, 1.0)),
        ({"delivered": True, "opened": True, "clicked": True}, (U, 1.0)),
        ({"deal_closed": True}, (P, 10.0)),
        ({"meeting_completed": True, "meeting_booked": True}, (P, 7.0)),
        ({"meeting_booked": True}, (P, 5.0)),
        ({"meeting_booked": True, "meeting_no_show": True}, (P, 5.0)),
        ({"replied": True, "interest_signal": True}, (P, 3.0)),
        ({"replied": True, "sentiment_label": "positive"}, (P, 3.0)),
        ({"replied": True, "objection_detected": True}, (N, 2.0)),
        ({"replied": True, "objection_type": "price"}, (N, 2.0)),
        ({"replied": True, "objection_type": "none"}, (U, 1.0)),
        # seed 004: a negative reply is a negative example, like an objection
        ({"replied": True, "sentiment_label": "negative", "interest_signal": False}, (N, 2.0)),
        ({"bounced": True}, (N, 0.5)),
        ({"unsubscribed": True}, (N, 0.5)),
        ({"spam_reported": True}, (N, 0.5)),
        # precedence: the strongest signal wins
        ({"deal_closed": True, "meeting_completed": True, "replied": True, "objection_detected": True}, (P, 10.0)),
        ({"meeting_booked": True, "deal_lost": True, "unsubscribed": True}, (P, 5.0)),
        ({"replied": True, "interest_signal": True, "objection_detected": True}, (P, 3.0)),
        ({"replied": True, "unsubscribed": True}, (U, 1.0)),
        ({"bounced": True, "unsubscribed": True}, (N, 0.5)),
        ({"interest_signal": True}, (U, 1.0)),  # no reply: a stray classification is not a reply
    ],
)
def test_training_label_table(fields, expected):
    assert training_label(OutcomeLabel(**fields)) == expected


def test_training_label_is_pure():
    outcome = OutcomeLabel(replied=True, objection_type="timing", training_label="positive", training_weight=9.0)
    assert training_label(outcome) == (N, 2.0)
    assert (outcome.training_label, outcome.training_weight) == ("positive", 9.0)
