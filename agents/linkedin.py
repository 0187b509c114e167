"""The LinkedIn operator queue: LinkedIn has no public messaging API, so an operator sends and says so."""

from django.db import transaction
from django.utils import timezone

from agents.decisions.lifecycle import lead_can, lead_transition
from agents.models import Lead, LinkedInTask, Message
from outcomes.models import OutcomeLabel
from outcomes.services import outcome_record_sent
from rex_project.exceptions import ApplicationError

MANUAL_PROVIDER = "linkedin-manual"


def _mark_sent(message: Message, now) -> None:
    message.status = Message.Status.SENT
    message.provider = MANUAL_PROVIDER
    message.sent_at = now
    message.save(update_fields=["status", "provider", "sent_at", "updated_at"])
    outcome = outcome_record_sent(message=message)
    OutcomeLabel.objects.filter(pk=outcome.pk).update(sent_at=now)
    lead = message.lead
    Lead.objects.filter(pk=lead.pk).update(last_contacted_at=now, updated_at=now)
    lead.last_contacted_at = now
    if lead_can(lead, "contact"):
        before = lead.state
        lead_transition(lead, "contact", save=False)
        # Only from the state we read: a reply recorded meanwhile is never overwritten.
        Lead.objects.filter(pk=lead.pk, state=before).update(state=lead.state)


@transaction.atomic
def linkedin_task_complete(*, task: LinkedInTask, user, sent: bool) -> LinkedInTask:
    """The operator sent the LinkedIn message (it counts as the send) or skipped it (the message is cancelled).

    Only a pending task can be completed; a second click is refused, so a message is never counted twice.
    """
    task = LinkedInTask.objects.select_for_update().get(pk=task.pk)
    if task.status != LinkedInTask.Status.PENDING:
        raise ApplicationError(f"This LinkedIn task is already {task.status}.")
    message = Message.objects.select_for_update().select_related("lead").get(pk=task.message_id)
    now = timezone.now()
    if message.status == Message.Status.QUEUED:
        if sent:
            _mark_sent(message, now)
        else:
            message.status = Message.Status.CANCELLED
            message.error = f"LinkedIn task skipped by {user}"[:2000]
            message.save(update_fields=["status", "error", "updated_at"])
    task.status = LinkedInTask.Status.SENT if sent else LinkedInTask.Status.SKIPPED
    task.handled_by = user
    task.handled_at = now
    task.full_clean(exclude=["profile_url"])  # a lead without a profile URL still gets a task to skip
    task.save(update_fields=["status", "handled_by", "handled_at"])
    return task
