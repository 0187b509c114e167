"""Suppression entries: normalised, idempotent, checked right before every send, reversible by START."""

import pytest
from django.core.exceptions import ValidationError

from agents.compliance import sms_keyword, suppress, unsuppress
from agents.models import Lead, Message, Suppression
from agents.sending import message_send
from tests.factories import LeadFactory, MessageFactory, OrganizationFactory, SuppressionFactory

pytestmark = pytest.mark.django_db


def test_suppressed_right_before_send_is_cancelled_and_never_reaches_the_provider():
    message = MessageFactory(status=Message.Status.QUEUED)
    SuppressionFactory(organization=message.organization, value=message.lead.email)  # after it was queued

    result = message_send(message_id=message.pk)

    assert result.status == Message.Status.CANCELLED
    assert result.error.startswith("suppressed:")
    assert result.provider_request == {}
    assert not hasattr(result, "outcome") or result.outcome is None


@pytest.mark.parametrize(
    ("kind", "raw", "stored"),
    [
        ("email", "  Maya@Brightlane.Example.COM ", "maya@brightlane.example.com"),
        ("domain", "@Brightlane.Example.com", "brightlane.example.com"),
        ("phone", "(415) 555-0123", "+14155550123"),
    ],
)
def test_values_are_normalised_and_entries_idempotent(kind, raw, stored):
    organization = OrganizationFactory()

    first = suppress(organization=organization, kind=kind, value=raw, reason=Suppression.Reason.MANUAL)
    second = suppress(organization=organization, kind=kind, value=stored, reason=Suppression.Reason.HARD_BOUNCE)

    assert first.pk == second.pk and first.value == stored
    assert second.reason == Suppression.Reason.MANUAL  # the first reason stands


@pytest.mark.parametrize(("kind", "value"), [("email", "not-an-email"), ("phone", "12"), ("domain", "no spaces.com")])
def test_invalid_values_are_refused(kind, value):
    with pytest.raises(ValidationError):
        suppress(organization=OrganizationFactory(), kind=kind, value=value, reason=Suppression.Reason.MANUAL)


def test_domain_suppression_cancels_every_lead_at_the_domain_and_nobody_else():
    organization = OrganizationFactory()
    inside = MessageFactory(organization=organization, lead__email="a@blocked.example", status=Message.Status.QUEUED)
    outside = MessageFactory(organization=organization, lead__email="b@fine.example", status=Message.Status.QUEUED)
    elsewhere = MessageFactory(lead__email="c@blocked.example", status=Message.Status.QUEUED)  # other organization

    suppress(organization=organization, kind="domain", value="blocked.example", reason=Suppression.Reason.MANUAL)

    statuses = {m.pk: Message.objects.get(pk=m.pk).status for m in (inside, outside, elsewhere)}
    assert statuses == {inside.pk: "cancelled", outside.pk: "queued", elsewhere.pk: "queued"}
    assert Lead.objects.get(pk=inside.lead_id).state == Lead.State.SUPPRESSED


def test_sms_stop_then_start():
    lead = LeadFactory(state=Lead.State.NEW)
    queued_sms = MessageFactory(
        organization=lead.organization, lead=lead, channel="sms", to_address=lead.phone, from_address="+15005550006",
        sending_domain=None, status=Message.Status.QUEUED,
    )  # fmt: skip

    assert sms_keyword("STOP") == "stop"
    suppress(organization=lead.organization, kind="phone", value=lead.phone, reason=Suppression.Reason.SMS_STOP)
    lead.refresh_from_db()
    queued_sms.refresh_from_db()
    assert lead.state == Lead.State.SUPPRESSED
    assert queued_sms.status == Message.Status.CANCELLED

    assert sms_keyword("start") == "start"
    assert unsuppress(organization=lead.organization, kind="phone", value=lead.phone) is True
    lead.refresh_from_db()
    assert lead.state == Lead.State.NEW
    assert not Suppression.objects.exists()


def test_resubscribing_one_channel_keeps_a_lead_another_entry_still_blocks():
    lead = LeadFactory()
    suppress(organization=lead.organization, kind="phone", value=lead.phone, reason=Suppression.Reason.SMS_STOP)
    suppress(organization=lead.organization, kind="email", value=lead.email, reason=Suppression.Reason.UNSUBSCRIBE)

    unsuppress(organization=lead.organization, kind="phone", value=lead.phone)

    lead.refresh_from_db()
    assert lead.state == Lead.State.SUPPRESSED


STOP_WORDS = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        *[(word, "stop") for word in STOP_WORDS],
        *[(word.lower(), "stop") for word in STOP_WORDS],
        (" stop ", "stop"),
        ("Stop\n", "stop"),
        ("START", "start"),
        ("unstop", "start"),
        ("Yes", "start"),
        ("Stop please", None),
        ("please stop", None),
        ("HELP", None),
        ("", None),
    ],
)
def test_sms_keyword(body, expected):
    assert sms_keyword(body) == expected
