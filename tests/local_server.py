"""Helpers for tests that talk to a local HTTP server (pytest-httpserver)."""

import time


def wait_for_requests(server, count: int, *, timeout: float = 3.0) -> None:
    """The server logs a request once its answer is written; after a client timeout on a slow
    answer, wait for it so the next test does not find it in its log."""
    deadline = time.monotonic() + timeout
    while len(server.log) < count and time.monotonic() < deadline:
        time.sleep(0.05)
