"""Settings are chosen by the environment: run a fresh interpreter for each environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICE_VARS = ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS")
PROBE = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "broker": settings.CELERY_BROKER_URL,
    "cache": settings.CACHES["default"]["BACKEND"],
    "secret": settings.SECRET_KEY,
    "debug": settings.DEBUG,
    "eager": getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False),
}))
"""


def _run(tmp_path, args, **overrides):
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARS}
    env.update(
        VAR_DIR=str(tmp_path), ENV_FILE=str(tmp_path / "absent.env"), DJANGO_SETTINGS_MODULE="rex_project.settings"
    )
    env.update(overrides)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def _probe(tmp_path, **overrides) -> dict:
    done = _run(tmp_path, ["-c", PROBE], **overrides)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_embedded_default_needs_no_server(tmp_path):
    first = _probe(tmp_path)
    assert first["engine"] == "django.db.backends.sqlite3"
    assert first["db_name"] == str(tmp_path / "rex.sqlite3")
    assert first["broker"].startswith("filesystem://")
    assert (tmp_path / "broker" / "queue").is_dir()
    assert first["cache"].endswith("LocMemCache")
    assert first["eager"] is False
    # The generated secret key is kept under VAR_DIR and reused by the next process.
    assert (tmp_path / "secret_key").read_text().strip() == first["secret"]
    assert _probe(tmp_path)["secret"] == first["secret"]


def test_services_come_from_the_environment(tmp_path):
    chosen = _probe(
        tmp_path,
        DATABASE_URL="postgres://rex:pw@db.internal:5432/rex",
        CELERY_BROKER_URL="redis://broker.internal:6379/0",
        REDIS_URL="redis://cache.internal:6379/1",
    )
    assert chosen["engine"] == "django.db.backends.postgresql"
    assert chosen["db_name"] == "rex"
    assert chosen["broker"] == "redis://broker.internal:6379/0"
    assert chosen["cache"].endswith("RedisCache")


def test_secret_key_required_when_debug_is_off(tmp_path):
    done = _run(tmp_path, ["-c", PROBE], DEBUG="false")
    assert done.returncode != 0
    assert "SECRET_KEY must be set" in done.stderr


def test_production_settings_pass_check_deploy(tmp_path):
    done = _run(
        tmp_path,
        ["manage.py", "check", "--deploy", "--fail-level", "DEBUG"],
        DEBUG="false",
        SECRET_KEY="x7Kq2v9LmN4pR8sT1wY6zB3cF5hJ0dG-aE_uI9oP2kM7nV4bX1qW8rT5yZ3",
        ALLOWED_HOSTS="rex.example.com",
        PUBLIC_BASE_URL="https://rex.example.com",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_check_deploy_warns_about_a_loopback_public_base_url(tmp_path):
    done = _run(
        tmp_path,
        ["manage.py", "check", "--deploy"],
        DEBUG="false",
        SECRET_KEY="x7Kq2v9LmN4pR8sT1wY6zB3cF5hJ0dG-aE_uI9oP2kM7nV4bX1qW8rT5yZ3",
        ALLOWED_HOSTS="rex.example.com",
        PUBLIC_BASE_URL="http://127.0.0.1:8000",
    )
    assert "webhooks.W001" in done.stderr + done.stdout
