"""Round trip through the configured broker, answered by a separate worker process."""

import os

import pytest

from rex_project.tasks import ping

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_task_round_trip_through_a_real_worker(live_worker):
    answer = ping.delay("hello").get(timeout=60)
    assert answer["pong"] == "hello"
    assert answer["worker_pid"] != os.getpid()
    assert answer["worker_pid"] != live_worker.pid  # a pool child of the worker ran it
    assert answer["database"] is True


def test_tasks_are_never_eager(settings):
    from rex_project.celery import app

    assert app.conf.task_always_eager is False
    assert app.conf.task_serializer == "json" and app.conf.accept_content == ["json"]
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
