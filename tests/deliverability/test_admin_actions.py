"""Operator actions on sending domains and mailboxes."""

import pytest
from django.urls import reverse

from tests.factories import MailboxFactory, MessageFactory, SendingDomainFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _act(client, model: str, action: str, pks) -> None:
    url = reverse(f"admin:agents_{model}_changelist")
    response = client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks]})
    assert response.status_code == 302


def test_rotate_a_mailbox_moves_its_queue_and_resume_lifts_the_pause(staff_client):
    domain = SendingDomainFactory()
    ana, ben = MailboxFactory(sending_domain=domain), MailboxFactory(sending_domain=domain)
    queued = MessageFactory(organization=domain.organization, mailbox=ana, sending_domain=domain)

    _act(staff_client, "mailbox", "rotate_mailboxes", [ana.pk])
    queued.refresh_from_db()
    ana.refresh_from_db()
    assert ana.is_paused and queued.mailbox_id == ben.pk

    _act(staff_client, "mailbox", "resume_mailboxes", [ana.pk])
    ana.refresh_from_db()
    assert not ana.is_paused and ana.pause_reason == ""


def test_pause_and_check_a_domain_now(staff_client, zone):
    domain = SendingDomainFactory(domain="mail.admin.example")
    zone.authenticate("mail.admin.example")

    _act(staff_client, "sendingdomain", "pause_domains", [domain.pk])
    domain.refresh_from_db()
    assert domain.is_paused and domain.pause_reason.startswith("paused by ")

    _act(staff_client, "sendingdomain", "check_domains_now", [domain.pk])
    domain.refresh_from_db()
    assert domain.last_checked_at is not None and domain.dns_checks["spf"]["ok"]
    assert domain.is_paused  # an operator's pause stands until an operator resumes
