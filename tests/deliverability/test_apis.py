"""GET /domain/health, POST /domain/rotate, POST /domain/assign and GET /api/alerts: scoped to the caller."""

import pytest
from rest_framework.test import APIClient

from tests.factories import (
    AlertFactory,
    LeadFactory,
    MailboxFactory,
    MessageFactory,
    PhoneNumberFactory,
    SendingDomainFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(membership):
    return membership.organization


@pytest.fixture
def two_mailboxes(org):
    domain = SendingDomainFactory(
        organization=org, domain="mail.ours.example", reputation_inputs={"sends": 0}, dns_checks={"spf": {"ok": True}}
    )
    return MailboxFactory(sending_domain=domain, local_part="ana"), MailboxFactory(
        sending_domain=domain, local_part="ben"
    )


def test_health_shows_each_domain_and_mailbox_of_the_organization_only(api_client, org, two_mailboxes):
    SendingDomainFactory(domain="mail.theirs.example")
    PhoneNumberFactory(organization=org, number="+14155550199")

    response = api_client.get("/domain/health")

    assert response.status_code == 200
    [domain] = response.json()["domains"]
    assert domain["domain"] == "mail.ours.example"
    assert domain["dns_checks"] == {"spf": {"ok": True}}
    assert domain["reputation_inputs"] == {"sends": 0}
    assert {"reputation_score", "daily_cap", "sent_today", "is_paused", "pause_reason"} <= set(domain)
    ana = domain["mailboxes"][0]
    assert ana["address"] == "ana@mail.ours.example"
    assert ana["warmup"]["label"] == "warming up 20/50"
    assert response.json()["phone_numbers"][0]["number"] == "+14155550199"


def test_rotate_pauses_the_mailbox_and_moves_its_queue(api_client, org, two_mailboxes, membership):
    ana, ben = two_mailboxes
    queued = MessageFactory(organization=org, mailbox=ana, sending_domain=ana.sending_domain)

    response = api_client.post("/domain/rotate", {"mailbox_id": ana.pk, "reason": "spam trap"}, format="json")

    assert response.status_code == 200
    assert response.json()["moved"] == 1
    ana.refresh_from_db()
    assert ana.is_paused and ana.pause_reason == f"rotated by {membership.user.username}: spam trap"
    queued.refresh_from_db()
    assert queued.mailbox_id == ben.pk


def test_rotate_a_whole_domain(api_client, org, two_mailboxes):
    ana, _ = two_mailboxes
    other = MailboxFactory(sending_domain=SendingDomainFactory(organization=org), local_part="cy")
    queued = MessageFactory(organization=org, mailbox=ana, sending_domain=ana.sending_domain)

    response = api_client.post("/domain/rotate/", {"domain_id": ana.sending_domain_id}, format="json")

    assert response.status_code == 200
    ana.sending_domain.refresh_from_db()
    assert ana.sending_domain.is_paused
    queued.refresh_from_db()
    assert queued.mailbox_id == other.pk


def test_another_organizations_mailbox_or_domain_is_404(api_client, two_mailboxes):
    theirs = MailboxFactory()

    assert api_client.post("/domain/rotate", {"mailbox_id": theirs.pk}, format="json").status_code == 404
    assert api_client.post("/domain/rotate", {"domain_id": theirs.sending_domain_id}, format="json").status_code == 404
    theirs.refresh_from_db()
    assert not theirs.is_paused


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "mailbox_id"), ({"mailbox_id": 1, "domain_id": 2}, "mailbox_id"), ({"mailbox_id": "x"}, "mailbox_id")],
)
def test_rotate_bad_input_is_400_with_field_errors(api_client, body, field):
    response = api_client.post("/domain/rotate", body, format="json")

    assert response.status_code == 400
    assert field in response.json()


def test_assign_allocates_a_mailbox_for_a_lead(api_client, org, two_mailboxes):
    lead = LeadFactory(organization=org)

    response = api_client.post("/domain/assign", {"lead_id": lead.pk}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["mailbox_id"] in {m.pk for m in two_mailboxes}
    assert body["address"].endswith("@mail.ours.example") and body["domain"] == "mail.ours.example"


def test_assign_scoping_validation_and_no_capacity(api_client, org):
    theirs = LeadFactory()
    assert api_client.post("/domain/assign", {"lead_id": theirs.pk}, format="json").status_code == 404
    response = api_client.post("/domain/assign", {}, format="json")
    assert response.status_code == 400 and "lead_id" in response.json()

    MailboxFactory(sending_domain=SendingDomainFactory(organization=org), sent_today=20)
    response = api_client.post("/domain/assign", {"lead_id": LeadFactory(organization=org).pk}, format="json")
    assert response.status_code == 400
    assert "capacity" in response.json()["detail"]


def test_alerts_lists_the_organizations_open_alerts(api_client, org):
    open_alert = AlertFactory(organization=org)
    AlertFactory(organization=org, kind="dns_failure", resolved_at="2026-01-01T00:00:00Z")
    AlertFactory()

    response = api_client.get("/api/alerts")

    assert response.status_code == 200
    assert [a["id"] for a in response.json()] == [open_alert.pk]
    assert response.json()[0]["subject"] == f"domain:{open_alert.sending_domain_id}"


@pytest.mark.parametrize("path", ["/domain/health", "/api/alerts"])
def test_anonymous_callers_are_refused(path):
    assert APIClient().get(path).status_code in (401, 403)
