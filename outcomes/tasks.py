"""Thin task entry points for outcomes."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError

from outcomes.replies_batch import replies_classify_batch

# Classifying history can outlast the soft time limit (an LLM call per reply). The run keeps every row it wrote,
# so hitting the limit is retried like a transient error: the retry carries on with the replies still unlabelled.
RETRY = {
    "autoretry_for": (SoftTimeLimitExceeded, OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 50,
}


@shared_task(**RETRY)
def classify_replies(organization_id: int | None = None) -> int:
    """Classify the sentiment of every reply not classified yet (one organization's, or all)."""
    return replies_classify_batch(organization_id=organization_id)
