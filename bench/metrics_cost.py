"""What metrics add to the hot paths: a signed webhook answered (the web's counter, in
prometheus_client's multiprocess mode as under gunicorn) and an item drained (the worker's
Redis counters: one pipelined round trip per relayed message): each path timed without
counting, and the counting alone, so the ratio is not lost in the noise of a shared machine.

    python -m bench.metrics_cost [--quick]

In-process, with a real Redis. The drained items' handler does nothing, so the ratio is the
worst case: a real relay adds at least one partner call per item on top."""

from __future__ import annotations

import logging
import os
import statistics
import time

from bench.common import log, main_for, redis_client, row, start_redis, tmpdir

SECTION = "metrics cost"


def _timed(fn, n: int) -> float:
    """Microseconds per call."""
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - started) / n * 1e6


def _median(fn, n: int, rounds: int) -> float:
    return statistics.median(_timed(fn, n) for _ in range(rounds))


def web_cost(url: str, n: int, rounds: int) -> tuple[float, float]:
    """(µs per signed webhook without counting, µs the counter adds to one)."""
    from app import create_app
    from app.web.metrics import WebMetrics
    from sandbox.helpers import load_fixture, make_settings, post_zalo

    app = create_app(make_settings(url, metrics_token="bench-metrics-token"))
    client, web = app.test_client(), app.extensions["metrics"]
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    counted = WebMetrics.answered
    WebMetrics.answered = lambda *args: None
    try:
        base = _median(lambda i: post_zalo(client, _fresh(event, i)), n, rounds)
    finally:
        WebMetrics.answered = counted
    return base, _median(lambda i: web.answered("default", "zalo", 200), n * 10, rounds)


def _fresh(event: dict, i: int) -> dict:
    return {**event, "message": {**event["message"], "msg_id": f"bench-{time.monotonic_ns()}-{i}"}}


def drain_cost(url: str, n: int, rounds: int) -> tuple[float, float]:
    """(µs per drained item without counting, µs the counters add to one)."""
    from app.bridge.lanes import Item, now_ms
    from app.integrations import events
    from app.operations.counters import Counters
    from sandbox.helpers import make_settings
    from workers.context import WorkerContext
    from workers.drain import Drainer

    ctx = WorkerContext(make_settings(url), redis_client(url))
    drainer = Drainer(ctx, handler_map={"zalo": lambda ctx, item, progress: None}, notes={})

    def one(i):
        lane = f"in:bench-{i % 50}"
        ctx.lanes.accept(lane, Item(f"zalo:b-{time.monotonic_ns()}", "zalo", {}, now_ms(), event=events.USER_MESSAGE))
        drainer.drain(lane)

    counted = Counters.relayed
    Counters.relayed = lambda *args: None
    try:
        base = _median(one, n, rounds)
    finally:
        Counters.relayed = counted
    return base, _median(lambda i: ctx.counters.relayed("in", 0.02), n, rounds)


def run(quick: bool = False) -> dict:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmpdir("metrics"))  # as gunicorn's master sets it
    logging.disable(logging.INFO)  # log lines cost the same either way and would drown the run
    server = start_redis()
    n, rounds = (200, 3) if quick else (1000, 7)
    try:
        log("signed webhooks, and the answer counter alone")
        web_base, web_added = web_cost(server.url, n, rounds)
        log("drained items, and the Redis counters alone")
        drain_base, drain_added = drain_cost(server.url, n, rounds)
    finally:
        server.stop()
    web_ratio, drain_ratio = 1 + web_added / web_base, 1 + drain_added / drain_base
    return {
        "name": "metrics_cost",
        "rows": [
            row(SECTION, "signed webhook / its answer counter", f"{web_base:.0f} / {web_added:.1f}", "µs"),
            row(SECTION, "webhook cost with / without metrics", round(web_ratio, 3), "", "<= 1.05", web_ratio <= 1.05),
            row(SECTION, "drained item (no-op handler) / its counters", f"{drain_base:.0f} / {drain_added:.0f}", "µs"),
            row(
                SECTION,
                "drain cost with / without metrics (worst case)",
                round(drain_ratio, 3),
                "",
                "<= 1.25",
                drain_ratio <= 1.25,
            ),
        ],
    }


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
