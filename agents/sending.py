"""Sending one message: queued → sending → sent | failed, never twice, never to a suppressed contact."""

import datetime as dt
import logging
import random

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from agents.channels import ProviderError, provider_for
from agents.compliance import email_compliance, sms_compliance
from agents.decisions.lifecycle import lead_can, lead_transition
from agents.models import Lead, Mailbox, Message, PhoneNumber, SendingDomain
from agents.suppressions import lead_suppression
from outcomes.models import OutcomeLabel
from outcomes.services import outcome_record_sent

logger = logging.getLogger("rex.sending")

MAX_SEND_ATTEMPTS = 5
RETRY_BASE_SECONDS = 30  # "full jitter": a random wait up to 30 s, 60 s, 120 s, … capped below
RETRY_MAX_SECONDS = 1800


def _claim(message_id: int, *, suppression_checked: bool) -> tuple[Message, OutcomeLabel] | None:
    """Move a queued message to ``sending`` under a row lock; None if it is not ours to send."""
    with transaction.atomic():
        message = Message.objects.select_for_update().select_related("lead").get(pk=message_id)
        if message.status != Message.Status.QUEUED:
            return None  # sent, failed, cancelled or in flight elsewhere: never send twice
        suppression = None if suppression_checked else lead_suppression(message.lead)
        if suppression is not None:
            message.status = Message.Status.CANCELLED
            message.error = f"suppressed: {suppression}"
            message.save(update_fields=["status", "error", "updated_at"])
            return None
        outcome = outcome_record_sent(message=message)
        message.status = Message.Status.SENDING
        message.send_attempts += 1
        message.custom_args = {"rex_message_id": str(message.pk), "rex_outcome_id": str(outcome.pk)}
        fields = ["status", "send_attempts", "custom_args", "updated_at"]
        # After the outcome row, so the training data keeps the body the writer produced, without the footer.
        if message.channel == Message.Channel.EMAIL:
            message.body, message.headers, message.rfc_message_id = email_compliance(message)
            fields += ["body", "headers", "rfc_message_id"]
        elif message.channel == Message.Channel.SMS:
            message.body = sms_compliance(message)
            fields.append("body")
        message.save(update_fields=fields)
        return message, outcome


def message_send(*, message_id: int, suppression_checked: bool = False) -> Message:
    """Send through the channel's provider. Safe to call again: only a queued message goes out.

    ``suppression_checked``: the caller looked the contact up an instant ago (the outreach gate
    does), so the claim does not query it again.

    A worker killed between the provider call and the final commit leaves the message in
    ``sending``; it is never resent automatically (an operator decides).
    """
    claimed = _claim(message_id, suppression_checked=suppression_checked)
    if claimed is None:
        return Message.objects.get(pk=message_id)
    message, outcome = claimed
    try:
        result = provider_for(message.channel).send(message, custom_args=message.custom_args)
    except ProviderError as exc:
        _fail(message, exc)
        raise
    now = timezone.now()
    with transaction.atomic():
        message.status = Message.Status.SENT
        message.provider = result.provider
        message.provider_message_id = result.provider_message_id
        message.provider_request = result.request
        message.sent_at = now
        message.save(
            update_fields=["status", "provider", "provider_message_id", "provider_request", "sent_at", "updated_at"]
        )
        OutcomeLabel.objects.filter(pk=outcome.pk).update(sent_at=now)
        _count_send(message, now)
        lead = message.lead
        lead.last_contacted_at = now
        Lead.objects.filter(pk=lead.pk).update(last_contacted_at=now, updated_at=now)
        if lead_can(lead, "contact"):
            before = lead.state
            lead_transition(lead, "contact", save=False)
            # Only from the state we read: a reply recorded meanwhile is never overwritten.
            Lead.objects.filter(pk=lead.pk, state=before).update(state=lead.state)
    return message


def _count_send(message: Message, now) -> None:
    """Daily counts behind caps and warm-up (rate limits keep their own, shared counters)."""
    if message.sending_domain_id:
        SendingDomain.objects.filter(pk=message.sending_domain_id).update(sent_today=F("sent_today") + 1)
    if message.mailbox_id:
        Mailbox.objects.filter(pk=message.mailbox_id).update(sent_today=F("sent_today") + 1, last_sent_at=now)
    if message.phone_number_id:
        PhoneNumber.objects.filter(pk=message.phone_number_id).update(sent_today=F("sent_today") + 1)


def _fail(message: Message, exc: ProviderError) -> None:
    # Retryable errors go back to the queue with a later due time (backoff with jitter) until the
    # attempts run out; ambiguous ones stay "sending" for an operator (the provider may have sent it);
    # the rest fail for good.
    now = timezone.now()
    update = {"error": str(exc)[:2000], "updated_at": now}
    if exc.retryable and message.send_attempts >= MAX_SEND_ATTEMPTS:
        exc.retryable = False
        update["error"] = f"gave up after {message.send_attempts} attempts: {exc}"[:2000]
    if exc.ambiguous:
        update["status"] = Message.Status.SENDING
    elif exc.retryable:
        backoff = min(RETRY_BASE_SECONDS * 2 ** (message.send_attempts - 1), RETRY_MAX_SECONDS)
        update.update(
            status=Message.Status.QUEUED, scheduled_for=now + dt.timedelta(seconds=random.uniform(0, backoff))
        )
    else:
        update["status"] = Message.Status.FAILED
    Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(**update)
    logger.warning("send of message %s failed (%s): %s", message.pk, "will retry" if exc.retryable else "final", exc)
