"""The reputation formula on constructed outcomes."""

import pytest

from agents.domains import reputation
from agents.domains.reputation import mailbox_reputation, score_from
from tests.factories import MailboxFactory, SendingDomainFactory

from .conftest import make_sends

pytestmark = pytest.mark.django_db


def test_the_score_follows_the_documented_formula():
    domain = SendingDomainFactory()
    # 200 sends: 3 hard bounces (1.5%), 10 soft = deferrals (5%), 1 complaint (0.5%), 20 replies (10%).
    make_sends(domain, 200, hard=3, soft=10, complaints=1, replies=20)

    score, inputs = reputation(domain)

    # 1 - 10×0.015 - 100×0.005 - 2×0.05 + min(0.5×0.10, 0.05) = 1 - 0.15 - 0.5 - 0.1 + 0.05
    assert score == pytest.approx(0.3)
    assert inputs | {"formula": None} == {
        "window_days": 28, "sends": 200, "bounces": 3, "deferrals": 10, "complaints": 1, "replies": 20,
        "bounce_rate": 0.015, "deferral_rate": 0.05, "complaint_rate": 0.005, "reply_rate": 0.1, "formula": None,
    }  # fmt: skip


def test_fewer_than_twenty_sends_is_neutral():
    domain = SendingDomainFactory()
    make_sends(domain, 19, hard=19)

    score, inputs = reputation(domain)

    assert score == 1.0
    assert inputs["note"] == "insufficient data: 19 sends (< 20) in 28 days"


def test_outcomes_outside_the_window_do_not_count():
    domain = SendingDomainFactory()
    make_sends(domain, 50, hard=50, days_ago=40)
    make_sends(domain, 30)

    score, inputs = reputation(domain)

    assert (score, inputs["sends"], inputs["bounces"]) == (1.0, 30, 0)
    assert reputation(domain, window_days=60)[1]["sends"] == 80


def test_another_domains_outcomes_do_not_count():
    domain, other = SendingDomainFactory(), SendingDomainFactory()
    make_sends(other, 40, hard=40)

    score, inputs = reputation(domain)

    assert (score, inputs["sends"]) == (1.0, 0)


def test_a_mailbox_has_its_own_figures():
    mailbox = MailboxFactory()
    make_sends(mailbox.sending_domain, 40, mailbox=mailbox, hard=4)
    make_sends(mailbox.sending_domain, 40)

    score, inputs = mailbox_reputation(mailbox)

    assert (inputs["sends"], inputs["bounce_rate"]) == (40, 0.1)
    assert score == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ({}, 1.0),
        ({"bounce_rate": 0.02}, 0.8),
        ({"complaint_rate": 0.001}, 0.9),
        ({"deferral_rate": 0.05}, 0.9),
        ({"reply_rate": 0.04}, 1.0),  # the bonus never lifts a clean score above 1
        ({"bounce_rate": 0.02, "reply_rate": 0.5}, 0.85),  # the bonus is capped at +0.05
        ({"bounce_rate": 0.5}, 0.0),  # clamped at 0
    ],
)
def test_score_from(rates, expected):
    stats = {"sends": 100, "bounce_rate": 0.0, "complaint_rate": 0.0, "deferral_rate": 0.0, "reply_rate": 0.0}
    assert score_from(stats | rates) == pytest.approx(expected)
