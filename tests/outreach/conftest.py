import uuid

import pytest

from agents import rate_limits
from agents.rate_limits import rate_limits_reset, storage

# Redis on this machine, database 2: kept apart from the cache and broker databases.
REDIS_TEST_URL = "redis://127.0.0.1:6379/2"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # The embedded store is a file shared by every process under VAR_DIR, so counters would outlive a test.
    rate_limits_reset()
    yield


@pytest.fixture(params=["embedded", "redis"])
def limit_store(request, settings, monkeypatch):
    """Run a test on both shared stores: the embedded SQLite file and Redis.

    Other test runs may use the same Redis database at the same time (and reuse the same row ids), so a Redis
    test gets a namespace of its own instead of wiping the database.
    """
    if request.param == "redis":
        settings.REDIS_URL = REDIS_TEST_URL
        if not storage().check():
            pytest.skip(f"no Redis at {REDIS_TEST_URL}")
        monkeypatch.setattr(rate_limits, "KEY_NAMESPACE", f"rex-test-{uuid.uuid4().hex}")
    return request.param
