import datetime as dt
import os
import subprocess
import sys
import textwrap
import time

import pytest
from django.utils import timezone

from agents import rate_limits
from agents.rate_limits import _window, consume, message_limits, send_allowed
from tests.factories import MailboxFactory, MessageFactory, OrganizationFactory, SendingDomainFactory

pytestmark = pytest.mark.django_db


def _messages(n: int, *, organization=None, mailbox=None, channel="email") -> list:
    organization = organization or OrganizationFactory()
    return [MessageFactory(organization=organization, mailbox=mailbox, channel=channel) for _ in range(n)]


def _mailbox(organization, **caps):
    domain = SendingDomainFactory(organization=organization)
    return MailboxFactory(sending_domain=domain, **{"min_gap_seconds": 0, **caps})


def _allowed(messages) -> list[bool]:
    return [send_allowed(message=message, now=timezone.now())[0] for message in messages]


def test_organization_per_minute(limit_store):
    organization = OrganizationFactory(sends_per_minute=3)
    messages = _messages(4, organization=organization)
    assert _allowed(messages[:3]) == [True, True, True]
    now = timezone.now()
    allowed, retry_at, reason = send_allowed(message=messages[3], now=now)
    assert not allowed and f"{rate_limits.KEY_NAMESPACE}:org:{organization.pk}:minute" in reason
    assert now < retry_at <= now + dt.timedelta(seconds=61)
    # Another organization has its own budget.
    assert _allowed(_messages(1)) == [True]


@pytest.mark.parametrize(("caps", "window"), [({"hourly_cap": 2}, "hour"), ({"daily_cap": 2, "hourly_cap": 10}, "day")])
def test_mailbox_hourly_and_daily_caps(limit_store, caps, window):
    organization = OrganizationFactory()
    mailbox = _mailbox(organization, **caps)
    messages = _messages(3, organization=organization, mailbox=mailbox)
    assert _allowed(messages[:2]) == [True, True]
    allowed, _, reason = send_allowed(message=messages[2], now=timezone.now())
    assert not allowed and reason.startswith(f"{rate_limits.KEY_NAMESPACE}:mailbox:{mailbox.pk}:{window}")
    # A mailbox on another domain is not held back.
    assert _allowed(_messages(1, organization=organization, mailbox=_mailbox(organization))) == [True]


def test_minimum_gap_between_two_sends_of_a_mailbox(limit_store):
    organization = OrganizationFactory()
    mailbox = _mailbox(organization, min_gap_seconds=60)
    first, second = _messages(2, organization=organization, mailbox=mailbox)
    sent_at = timezone.now()
    assert send_allowed(message=first, now=sent_at)[0]
    allowed, retry_at, reason = send_allowed(message=second, now=timezone.now())
    assert not allowed and reason == f"{rate_limits.KEY_NAMESPACE}:mailbox:{mailbox.pk}:gap over 1/60 seconds"
    assert abs((retry_at - (sent_at + dt.timedelta(seconds=60))).total_seconds()) < 2


def test_a_refused_send_takes_no_slot_from_the_other_limits(limit_store):
    organization = OrganizationFactory(sends_per_minute=1)
    mailbox = _mailbox(organization, hourly_cap=5)
    first, second = _messages(2, organization=organization, mailbox=mailbox)
    assert _allowed([first, second]) == [True, False]
    assert _window(f"{rate_limits.KEY_NAMESPACE}:mailbox:{mailbox.pk}:hour", "5/hour")[3] == 1


def test_forgotten_counters_start_a_mailbox_and_an_organization_at_zero(limit_store):
    # What a rolled-back or recreated database needs: its new rows get old ids, whose counters still hold sends.
    organization = OrganizationFactory(sends_per_minute=1)
    mailbox = _mailbox(organization, daily_cap=1, hourly_cap=1)
    first, second = _messages(2, organization=organization, mailbox=mailbox)
    assert _allowed([first, second]) == [True, False]

    rate_limits.counters_forget(mailbox_ids=[mailbox.pk], organization_ids=[organization.pk])

    assert _allowed([second]) == [True]
    other = _mailbox(organization, daily_cap=1, hourly_cap=1)
    rate_limits.counters_forget(mailbox_ids=[other.pk])  # the organization's minute is still used
    assert _allowed(_messages(1, organization=organization, mailbox=other)) == [False]


def test_the_limits_of_one_send():
    organization = OrganizationFactory(sends_per_minute=90)
    mailbox = _mailbox(organization, min_gap_seconds=30, hourly_cap=7, daily_cap=40)
    (message,) = _messages(1, organization=organization, mailbox=mailbox, channel="sms")
    key = f"rex:mailbox:{mailbox.pk}"
    assert message_limits(message) == [
        (f"{key}:gap", "1/30 seconds"),
        (f"{key}:hour", "7/hour"),
        (f"{key}:day", "40/day"),
        (f"rex:org:{organization.pk}:minute", "90/minute"),
        ("rex:channel:sms:minute", "60/minute"),
    ]


def test_consume_needs_no_database():
    assert consume([("rex:test:plain", "2/minute")], now=timezone.now())[0]


WORKER = textwrap.dedent(
    """
    import os, sys, time
    import django
    django.setup()
    from django.utils import timezone
    from agents.rate_limits import consume
    start_at = float(sys.argv[1])
    time.sleep(max(0.0, start_at - time.time()))  # both processes start hitting together
    key = sys.argv[2]
    allowed = sum(consume([(key, "25/minute")], now=timezone.now())[0] for _ in range(20))
    print(allowed)
    """
)


def test_caps_are_shared_between_two_worker_processes(limit_store, settings):
    """Two separate processes, 20 sends each, one limit of 25/minute: exactly 25 go out in total."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "rex_project.settings", "VAR_DIR": str(settings.VAR_DIR),
           "REDIS_URL": settings.REDIS_URL}  # fmt: skip
    start_at, key = f"{time.time() + 2.0:.3f}", f"{rate_limits.KEY_NAMESPACE}:test:shared"
    processes = [
        subprocess.Popen([sys.executable, "-c", WORKER, start_at, key], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    counts = [int(process.communicate(timeout=60)[0].strip()) for process in processes]
    assert all(process.returncode == 0 for process in processes)
    assert sum(counts) == 25, counts
    assert all(count > 0 for count in counts), counts  # both processes really took part
