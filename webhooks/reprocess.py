"""An operator's second try at a stored webhook event (API and admin action share this one service).

Kept out of services.py on purpose: receiving and processing live there; this is the manual lever.
"""

from django.db import transaction

from rex_project.exceptions import ApplicationError
from webhooks.common import enqueue_on_commit
from webhooks.models import WebhookEvent
from webhooks.tasks import process_webhook_event

# A processed event already changed its outcome (replaying it would count an open twice); received and
# processing events are on their way. Only events that ended without an effect go back to the inbox.
REPROCESSABLE_STATES = (WebhookEvent.State.FAILED, WebhookEvent.State.UNMATCHED, WebhookEvent.State.IGNORED)


def webhook_event_reprocess(*, event: WebhookEvent) -> WebhookEvent:
    """Reset a failed, unmatched or ignored event to received and enqueue its processing after commit.

    Attempts restart at zero so that, should it end unmatched again, the sweep retries it like a new event.
    """
    with transaction.atomic():
        locked = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        if locked.state not in REPROCESSABLE_STATES:
            allowed = ", ".join(REPROCESSABLE_STATES)
            raise ApplicationError(
                f"Only {allowed} events can be reprocessed; this one is {locked.state}.",
                extra={"state": [f"'{locked.state}' is not one of {allowed}."]},
            )
        locked.state = WebhookEvent.State.RECEIVED
        locked.error = ""
        locked.attempts = 0
        locked.processed_at = None
        locked.next_attempt_at = None
        # Only fixed choice values change here, so the model's full_clean would check nothing new.
        locked.save(update_fields=["state", "error", "attempts", "processed_at", "next_attempt_at"])
        enqueue_on_commit(process_webhook_event, locked.pk)
    return locked
