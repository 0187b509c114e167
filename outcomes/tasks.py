"""Thin task entry points for outcomes."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from outcomes.replies_batch import replies_classify_batch
from rex_project.retry import RETRY, TRANSIENT

# Long batches also resume after the soft time limit (the retry carries on with what is still unlabelled).
BATCH_RETRY = {**RETRY, "autoretry_for": (SoftTimeLimitExceeded, *TRANSIENT), "max_retries": 50}


@shared_task(**BATCH_RETRY)
def classify_replies(organization_id: int | None = None) -> int:
    """Classify the sentiment of every reply not classified yet (one organization's, or all)."""
    return replies_classify_batch(organization_id=organization_id)
