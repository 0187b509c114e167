"""GET /health: database, cache and broker reachability for load balancers and operators."""

import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from kombu import Connection

BROKER_TIMEOUT_SECONDS = 2


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _cache() -> None:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "ok", 10)
    if cache.get(key) != "ok":
        raise RuntimeError("cache did not return what was written")
    cache.delete(key)


def _broker() -> None:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    with Connection(
        settings.CELERY_BROKER_URL, transport_options=options, connect_timeout=BROKER_TIMEOUT_SECONDS
    ) as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)


CHECKS = {"database": _database, "cache": _cache, "broker": _broker}


@require_GET
def health(request):
    results, down = {}, []
    for name, check in CHECKS.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "down"; the message says why
            results[name] = f"down: {type(exc).__name__}: {exc}"[:300]
            down.append(name)
    status = "ok" if not down else "degraded"
    return JsonResponse({"status": status, "down": down, "checks": results}, status=503 if down else 200)
