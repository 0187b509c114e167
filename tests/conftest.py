import os
import time
from urllib.parse import quote

import pytest
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from agents.decisions.rules import forget_loaded_rules
from agents.rate_limits import rate_limits_reset
from rex_project.celery import app as celery_app
from rex_project.worker import start_worker, stop_worker
from tests.factories import MembershipFactory
from training.policy import PolicyModel
from training.split import split_cache_clear


def _database_url(settings_dict: dict) -> str:
    """The URL of the database the tests run on, for the worker process to use too."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = quote(settings_dict.get("USER") or "")
    password = f":{quote(settings_dict['PASSWORD'])}" if settings_dict.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = settings_dict.get("HOST") or "localhost"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{settings_dict['NAME']}"


@pytest.fixture(scope="session")
def live_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real Celery worker process on the configured broker, using the test database."""
    with django_db_blocker.unblock():
        database_url = _database_url(connection.settings_dict)
        celery_app.control.purge()
    logfile = tmp_path_factory.mktemp("worker") / "worker.log"
    process = start_worker(logfile=logfile, env={"DATABASE_URL": database_url}, hostname=f"test-{os.getpid()}@%h")
    time.sleep(0.5)
    if process.poll() is not None:
        pytest.fail(f"worker exited at start:\n{logfile.read_text()}")
    yield process
    stop_worker(process)


@pytest.fixture(autouse=True)
def _clear_cache():
    # Throttle counters, cached lookups and rules loaded in this process must not leak between tests.
    cache.clear()
    forget_loaded_rules()
    rate_limits_reset()
    split_cache_clear()
    PolicyModel.forget()
    yield


@pytest.fixture
def membership(db):
    return MembershipFactory()


@pytest.fixture
def api_client(membership):
    client = APIClient()
    client.force_authenticate(membership.user)
    return client


@pytest.fixture
def openai_server(settings, httpserver):
    """A local HTTP server the real openai SDK is pointed at (no retries, short timeout)."""
    settings.OPENAI_API_KEY = "test"
    settings.OPENAI_BASE_URL = httpserver.url_for("/v1")
    settings.OPENAI_MAX_RETRIES = 0
    settings.OPENAI_TIMEOUT = 5.0
    return httpserver


# --- Measured figures --------------------------------------------------------------------------------------

FIGURES = pytest.StashKey[list]()


@pytest.fixture
def report_figure(request):
    """``report_figure("AUC 0.71")``: a figure a test measured, printed in the run's summary (pytest hides a passing
    test's output, and these are worth seeing in every CI log)."""
    figures = request.config.stash.setdefault(FIGURES, [])
    return lambda line: figures.append(f"{request.node.nodeid}: {line}")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    figures = config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("measured figures")
        for line in figures:
            terminalreporter.write_line(line)
