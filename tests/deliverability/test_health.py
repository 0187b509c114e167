"""The health check: auto-pause on a crossing, one alert per crossing, resume once the condition clears."""

import pytest

from agents.domains import domain_health_check, sending_domain_resume
from agents.models import Alert, Message
from tests.factories import MailboxFactory, MessageFactory, SendingDomainFactory

from .conftest import make_sends

pytestmark = pytest.mark.django_db


def _alerts(domain, kind=None):
    alerts = Alert.objects.filter(subject=f"domain:{domain.pk}")
    return alerts.filter(kind=kind) if kind else alerts


def test_a_dns_failure_pauses_once_alerts_once_and_clears_when_fixed(zone):
    domain = SendingDomainFactory(domain="mail.broken.example")
    zone.authenticate("mail.broken.example")
    del zone.txt["s1._domainkey.mail.broken.example"]

    domain = domain_health_check(domain)

    assert domain.is_paused and domain.paused_at is not None
    assert domain.pause_reason.startswith("auto: DNS authentication failed: DKIM: NXDOMAIN")
    assert domain.dns_checks["dkim"]["ok"] is False and domain.last_checked_at is not None
    alert = _alerts(domain).get()
    assert alert.kind == Alert.Kind.DNS_FAILURE and alert.resolved_at is None
    assert alert.organization_id == domain.organization_id and alert.sending_domain_id == domain.pk

    domain = domain_health_check(domain)
    assert domain.is_paused
    assert _alerts(domain).count() == 1

    zone.authenticate("mail.broken.example")
    domain = domain_health_check(domain)

    assert not domain.is_paused and domain.pause_reason == "" and domain.paused_at is None
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert _alerts(domain).count() == 1


def test_a_new_failure_after_recovery_is_a_new_crossing(zone):
    domain = SendingDomainFactory(domain="mail.flaky.example")
    zone.txt["mail.flaky.example"] = []
    domain_health_check(domain)
    zone.authenticate("mail.flaky.example")
    domain_health_check(domain)
    zone.txt["mail.flaky.example"] = []

    domain = domain_health_check(domain)

    assert domain.is_paused
    assert _alerts(domain, Alert.Kind.DNS_FAILURE).count() == 2
    assert _alerts(domain).filter(resolved_at__isnull=True).count() == 1


def test_an_operator_pause_is_never_lifted_by_the_check(zone):
    domain = SendingDomainFactory(domain="mail.held.example", is_paused=True, pause_reason="legal review")
    zone.authenticate("mail.held.example")

    domain = domain_health_check(domain)

    assert domain.is_paused and domain.pause_reason == "legal review"


def test_an_operator_resume_holds_while_the_same_condition_persists(zone):
    domain = SendingDomainFactory(domain="mail.override.example")
    zone.txt["mail.override.example"] = []
    domain = domain_health_check(domain)
    sending_domain_resume(domain)

    domain = domain_health_check(domain)

    assert not domain.is_paused
    assert _alerts(domain).count() == 1


def test_under_twenty_sends_no_bounce_threshold_applies(zone):
    domain = SendingDomainFactory(domain="mail.new.example")
    zone.authenticate("mail.new.example")
    make_sends(domain, 19, hard=10)

    domain = domain_health_check(domain)

    assert not domain.is_paused
    assert not _alerts(domain).exists()
    assert domain.reputation_score == 1.0
    assert domain.reputation_inputs["note"].startswith("insufficient data: 19 sends")


def test_a_two_percent_bounce_rate_is_still_fine(zone):
    domain = SendingDomainFactory(domain="mail.edge.example")
    zone.authenticate("mail.edge.example")
    make_sends(domain, 100, hard=2)

    assert not domain_health_check(domain).is_paused


@pytest.mark.parametrize(("bounces", "paused"), [(1, False), (2, True)])
def test_one_bounce_is_one_recipient_not_a_rate(zone, bounces, paused):
    domain = SendingDomainFactory(domain="mail.young.example")
    zone.authenticate("mail.young.example")
    make_sends(domain, 46, hard=bounces)  # 1 of 46 is "2.2%", above the 2% threshold

    domain = domain_health_check(domain)

    assert _alerts(domain, Alert.Kind.BOUNCE_RATE).count() == int(paused)
    assert ("bounce rate" in domain.pause_reason) is paused


def test_three_hard_bounces_in_a_hundred_sends_pause_and_alert_once(zone):
    domain = SendingDomainFactory(domain="mail.bouncy.example")
    zone.authenticate("mail.bouncy.example")
    make_sends(domain, 100, hard=3)

    domain = domain_health_check(domain)
    domain_health_check(domain)

    assert domain.is_paused
    assert "bounce rate 3.0% (3 of 100 sends in 28 days) exceeds 2%" in domain.pause_reason
    alert = _alerts(domain, Alert.Kind.BOUNCE_RATE).get()
    assert alert.figures["bounces"] == 3 and alert.figures["sends"] == 100
    assert domain.reputation_inputs["bounce_rate"] == 0.03


@pytest.mark.parametrize(("complaints", "paused"), [(1, False), (2, True)])
def test_complaints_above_one_in_a_thousand_pause(zone, complaints, paused):
    domain = SendingDomainFactory(domain="mail.spammy.example")
    zone.authenticate("mail.spammy.example")
    make_sends(domain, 1000, complaints=complaints)

    domain = domain_health_check(domain)

    assert domain.is_paused is paused
    assert _alerts(domain, Alert.Kind.COMPLAINT_RATE).count() == int(paused)


def test_a_low_reputation_pauses_with_its_own_alert(zone):
    domain = SendingDomainFactory(domain="mail.deferred.example")
    zone.authenticate("mail.deferred.example")
    make_sends(domain, 100, soft=20)  # deferrals alone: 1 - 2 × 0.2 = 0.6

    domain = domain_health_check(domain)

    assert domain.reputation_score == 0.6
    assert domain.is_paused
    assert list(_alerts(domain).values_list("kind", flat=True)) == [Alert.Kind.LOW_REPUTATION]


def test_an_auto_paused_domain_moves_its_queue_to_another_domain(zone):
    broken = SendingDomainFactory(domain="mail.down.example")
    healthy = SendingDomainFactory(organization=broken.organization, domain="mail.up.example")
    MailboxFactory(sending_domain=broken, local_part="ana")
    target = MailboxFactory(sending_domain=healthy, local_part="ben")
    queued = MessageFactory(organization=broken.organization, sending_domain=broken, status=Message.Status.QUEUED)
    zone.authenticate("mail.up.example")

    domain_health_check(broken)

    queued.refresh_from_db()
    assert (queued.mailbox_id, queued.sending_domain_id, queued.from_address) == (
        target.pk, healthy.pk, "ben@mail.up.example"
    )  # fmt: skip


def test_a_mailbox_with_its_own_bounces_is_paused_alone(zone):
    domain = SendingDomainFactory(domain="mail.shared.example")
    zone.authenticate("mail.shared.example")
    bad = MailboxFactory(sending_domain=domain, local_part="bad")
    good = MailboxFactory(sending_domain=domain, local_part="good")
    make_sends(domain, 100, mailbox=bad, hard=3)
    make_sends(domain, 100, mailbox=good)
    queued = MessageFactory(organization=domain.organization, sending_domain=domain, mailbox=bad, status="queued")

    domain = domain_health_check(domain)

    bad.refresh_from_db()
    good.refresh_from_db()
    assert not domain.is_paused  # 3 of 200 = 1.5% for the domain
    assert bad.is_paused and bad.pause_reason.startswith("auto: bounce rate 3.0%")
    assert not good.is_paused
    alert = Alert.objects.get(subject=f"mailbox:{bad.pk}")
    assert (alert.kind, alert.mailbox_id) == (Alert.Kind.BOUNCE_RATE, bad.pk)
    queued.refresh_from_db()
    assert queued.mailbox_id == good.pk
