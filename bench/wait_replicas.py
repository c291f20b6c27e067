"""What REDIS_WAIT_REPLICAS=1 costs a webhook: the same signed webhooks answered with the write
acknowledged by a replica (WAIT) and without, on one primary with one replica, in one run.

    python -m bench.wait_replicas [--quick]

In-process (Flask's test client), so the figure is the bridge's own cost; the replica is a
local process, so the WAIT round trip here is the floor of what a replica on another machine
adds (add the network's round trip between primary and replica)."""

from __future__ import annotations

import logging
import statistics
import time

from bench.common import log, main_for, row
from sandbox.redis_cluster import Cluster

SECTION = "replicated acknowledgement"


def _per_webhook(client, event: dict, n: int) -> float:
    """Microseconds per signed webhook."""
    from sandbox.helpers import post_zalo

    started = time.perf_counter()
    for i in range(n):
        fresh = {**event, "message": {**event["message"], "msg_id": f"bench-{time.monotonic_ns()}-{i}"}}
        assert post_zalo(client, fresh).status_code == 200
    return (time.perf_counter() - started) / n * 1e6


def run(quick: bool = False) -> dict:
    from app import create_app
    from sandbox.helpers import load_fixture, make_settings

    logging.disable(logging.INFO)
    cluster = Cluster().start()
    n, rounds = (200, 3) if quick else (1000, 7)
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    try:
        clients = {
            replicas: create_app(make_settings(cluster.sentinels.url, redis_wait_replicas=replicas)).test_client()
            for replicas in (0, 1)
        }
        log("signed webhooks, alternating rounds without and with WAIT 1")
        took = {0: [], 1: []}
        for _ in range(rounds):
            for replicas, client in clients.items():
                took[replicas].append(_per_webhook(client, event, n))
    finally:
        cluster.stop()
    without, with_wait = statistics.median(took[0]), statistics.median(took[1])
    ratio = with_wait / without
    return {
        "name": "wait_replicas",
        "rows": [
            row(SECTION, "signed webhook without / with WAIT 1", f"{without:.0f} / {with_wait:.0f}", "µs"),
            row(SECTION, "webhook cost with / without WAIT 1", round(ratio, 3), "", "<= 1.5", ratio <= 1.5),
        ],
    }


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
