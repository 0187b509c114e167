"""Broker round trip: latency of one task answered by a separate worker, and throughput of a burst."""

import time

from bench.common import Row, percentile, running_worker
from rex_project.tasks import ping

ROUND_TRIPS = 100
BURST = 500


def run() -> list[Row]:
    with running_worker(concurrency=2, name="bench-broker"):
        ping.delay("warm-up").get(timeout=120)
        latencies = []
        for i in range(ROUND_TRIPS):
            started = time.perf_counter()
            ping.delay(str(i)).get(timeout=60, interval=0.005)
            latencies.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        results = [ping.delay(str(i)) for i in range(BURST)]
        for result in results:
            result.get(timeout=300, interval=0.01)
        throughput = BURST / (time.perf_counter() - started)
    return [
        Row("broker round trip p50", percentile(latencies, 50), "ms"),
        Row("broker round trip p95", percentile(latencies, 95), "ms"),
        Row(f"burst of {BURST} tasks with results", throughput, "tasks/s"),
    ]
