"""The one retry policy of REX's tasks: only transient database failures retry (a lost connection, a failover);
every task is idempotent, so running it again is safe. Errors in the data itself do not get better on retry."""

from django.db import InterfaceError, OperationalError

TRANSIENT = (OperationalError, InterfaceError)
RETRY = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}
