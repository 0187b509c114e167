"""Project-level tasks that belong to no app."""

import os
import socket

from celery import shared_task
from django.db import connection


@shared_task(name="rex.ping", ignore_result=False)
def ping(token: str) -> dict:
    """Round trip through the broker: proves a separate worker process picked it up."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        database_ok = cursor.fetchone()[0] == 1
    return {"pong": token, "worker_pid": os.getpid(), "worker_host": socket.gethostname(), "database": database_ok}


@shared_task(name="rex.noop")  # ignores its result unless a caller asks for it
def noop(payload=None, *args, **kwargs):
    """Does nothing: the reference for how fast the broker and worker alone move work."""
    return payload
