"""The public unsubscribe page and the RFC 8058 one-click POST."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from agents.compliance import unsubscribe_token
from agents.models import Lead, Message, Suppression
from tests.factories import LeadFactory, MessageFactory, OutcomeLabelFactory

pytestmark = pytest.mark.django_db

ONE_CLICK = "List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def lead():
    return LeadFactory(state=Lead.State.SCHEDULED)


@pytest.fixture
def url(lead):
    return f"/unsubscribe/{unsubscribe_token(organization_id=lead.organization_id, email=lead.email)}"


def test_get_shows_a_confirm_page_and_unsubscribes_nobody(client, lead, url):
    response = client.get(url)

    assert response.status_code == 200
    assert lead.email in response.content.decode()
    assert b'<form method="post"' in response.content
    assert not Suppression.objects.exists()


def test_one_click_post_suppresses_and_cancels_queued_messages(lead, url):
    client = Client(enforce_csrf_checks=True)  # mail providers send no CSRF token
    queued = MessageFactory(organization=lead.organization, lead=lead, status=Message.Status.QUEUED)
    sent = MessageFactory(organization=lead.organization, lead=lead, step=2, status=Message.Status.SENT)

    response = client.post(url, data=ONE_CLICK, content_type=FORM)

    assert response.status_code == 200
    assert b"unsubscribed" in response.content
    suppression = Suppression.objects.get()
    assert (suppression.organization_id, suppression.kind, suppression.value, suppression.reason) == (
        lead.organization_id,
        Suppression.Kind.EMAIL,
        lead.email,
        Suppression.Reason.UNSUBSCRIBE,
    )
    queued.refresh_from_db()
    sent.refresh_from_db()
    assert queued.status == Message.Status.CANCELLED and queued.error.startswith("suppressed:")
    assert sent.status == Message.Status.SENT
    lead.refresh_from_db()
    assert lead.state == Lead.State.SUPPRESSED

    again = client.post(url, data=ONE_CLICK, content_type=FORM)

    assert again.status_code == 200
    assert Suppression.objects.count() == 1


def test_page_form_post_also_unsubscribes(client, lead, url):
    assert client.post(url).status_code == 200
    assert Suppression.objects.filter(value=lead.email).exists()


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("token", ["garbage", "WzEsImFAYi5jIl0:forged", ""])
def test_bad_token_is_a_400_page(client, method, token):
    response = getattr(client, method)(f"/unsubscribe/{token or 'x:y'}")

    assert response.status_code == 400
    assert b"not valid" in response.content
    assert not Suppression.objects.exists()


def test_token_for_a_deleted_organization_is_a_400(client):
    token = unsubscribe_token(organization_id=987654, email="gone@example.com")

    assert client.post(f"/unsubscribe/{token}", data=ONE_CLICK, content_type=FORM).status_code == 400


def test_unsubscribing_labels_the_latest_email_outcome(client, lead, url):
    older = OutcomeLabelFactory(
        organization=lead.organization, message__lead=lead, message__to_address=lead.email.upper(),
        sent_at=timezone.now() - timedelta(days=9),
    )  # fmt: skip
    latest = OutcomeLabelFactory(
        organization=lead.organization, message__lead=lead, message__step=2, message__to_address=lead.email,
        sent_at=timezone.now() - timedelta(days=1),
    )  # fmt: skip

    client.post(url, data=ONE_CLICK, content_type=FORM)

    latest.refresh_from_db()
    older.refresh_from_db()
    assert (latest.unsubscribed, latest.training_label) == (True, "negative")
    assert older.unsubscribed is False
