"""GET /metrics: Prometheus text behind `Authorization: Bearer $METRICS_TOKEN` (404 while unset).

Where each series comes from:
- webhooks by answer: counted by the web process that answered, in memory. A 503 is answered
  exactly when Redis is away, so Redis cannot count it. gunicorn runs several processes, so
  each writes its counts to PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode,
  set up by app/web/gunicorn_hooks.py) and a scrape adds them up: one web host, one set of values.
- what the workers did (relayed, latency, retries, dead letters, partner errors, limiter waits,
  billed replies, survey ratings): counted in Redis (app/operations/counters.py), since workers may run on other
  hosts than the web; read at scrape time.
- gauges (queue depth and age, tokens, dead letters kept, last webhooks, worker heartbeat,
  Redis replicas online against REDIS_WAIT_REPLICAS): read from Redis at scrape time.
So every web host shows the same bridge-wide values and its own webhook counts: sum the
webhooks over instances, take one instance's (max) of the rest (docs/grafana-dashboard.json).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from redis import Redis
from redis.exceptions import RedisError

from app import extensions
from app.bridge import keys
from app.bridge.keys import DUE, HEARTBEAT, Keys, lane_connection
from app.bridge.lanes import Lanes, now_ms
from app.connections.store import Registry
from app.integrations.zalo.tokens import UNREADABLE
from app.operations import counters as metrics
from app.operations.status import SOURCES, token_state
from app.web.wrong_tokens import bearer_ok

bp = Blueprint("metrics", __name__)
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
UNROUTED = "_unknown"  # a webhook no connection took (no connection id has an underscore)
DIRECTION_OF_SOURCE = {"zalo": "in", "freshchat": "out"}
# A lane's direction by its prefix; the bridge's own timers (reply windows, receipts notes) wait
# on purpose, up to two days, and are kept apart from the queues of messages.
LANE_DIRECTIONS = {"in": "in", "out": "out", "tpl": "in"}  # tpl: Zalo's template status changes
TIMER = "timer"


class WebMetrics:
    """The web process's own counter and what /metrics answers."""

    def __init__(self, redis: Redis, connections: Registry, lanes: Lanes) -> None:
        self.multiproc_dir = os.environ.get(MULTIPROC_DIR, "")
        self.own = CollectorRegistry()
        self.webhooks = Counter(
            "bridge_webhooks",
            "Webhooks answered, by HTTP status (this web host; sum over instances)",
            ("connection", "direction", "code"),
            registry=self.own,
        )
        self.bridge = BridgeCollector(redis, connections, lanes)
        self._answers: dict[tuple[str, str, int], Any] = {}  # bounded by connections x 2 x statuses

    def answered(self, connection: str, source: str, status: int) -> None:
        labels = (connection, source, status)
        counter = self._answers.get(labels)
        if counter is None:  # `labels` looks its child up under a lock: once per label set here
            counter = self._answers[labels] = self.webhooks.labels(connection, DIRECTION_OF_SOURCE[source], str(status))
        counter.inc()

    def exposition(self) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        if self.multiproc_dir:
            MultiProcessCollector(registry, self.multiproc_dir)  # every process of this host
        else:
            registry.register(self.own)
        registry.register(self.bridge)
        return generate_latest(registry)


@bp.get("/metrics")
def scrape() -> ResponseReturnValue:
    expected = extensions.settings().metrics_token
    if not expected:
        return jsonify({"error": "not found"}), 404
    if not bearer_ok(expected):
        return _no_store(jsonify({"error": "missing or wrong bearer token"}), 401, {"WWW-Authenticate": "Bearer"})
    body = web_metrics().exposition()
    return _no_store(Response(body), 200, {"Content-Type": CONTENT_TYPE_LATEST})


def _no_store(response: Response, status: int, headers: dict[str, str]) -> Response:
    response.status_code = status
    response.headers.update(headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def web_metrics() -> WebMetrics:
    """The current app's WebMetrics (init_metrics keeps it)."""
    return current_app.extensions["metrics"]


def init_metrics(app: Flask) -> None:
    ext = app.extensions
    ext["metrics"] = WebMetrics(ext["redis"], ext["connections"], ext["lanes"])
    app.register_blueprint(bp)


class BridgeCollector:
    """The bridge-wide series, read from Redis at each scrape (a few pipelined round trips)."""

    def __init__(self, redis: Redis, connections: Registry, lanes: Lanes) -> None:
        self.redis = redis
        self.connections = connections
        self.lanes = lanes

    def describe(self) -> list[Metric]:
        return []  # no Redis reads when the registry is built

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("bridge_redis_up", "1 when Redis answered this scrape")
        try:
            families = self._families([c.id for c in self.connections.all()])
        except RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self, ids: list[str]) -> list:
        counters = metrics.read(self.redis, ids)
        kept = self._per_connection(ids)
        queues = self._queues(ids)
        beat = self.redis.get(HEARTBEAT)
        families = _counter_families(counters) + _state_families(kept) + _queue_families(queues)
        heartbeat = GaugeMetricFamily("bridge_worker_heartbeat_age_seconds", "Seconds since a worker host last beat")
        if beat:
            heartbeat.add_metric([], round(time.time() - float(beat), 3))
        return families + [heartbeat, *self._replicas()]

    def _replicas(self) -> list:
        """REDIS_WAIT_REPLICAS and the replicas online at the primary now: fewer connected than
        wanted means every webhook is answered 503."""
        wanted = GaugeMetricFamily("bridge_redis_replicas_wanted", "REDIS_WAIT_REPLICAS: replicas a webhook waits for")
        connected = GaugeMetricFamily(
            "bridge_redis_replicas_connected", "Replicas online at the Redis primary (shown when any is wanted)"
        )
        wanted.add_metric([], self.lanes.replicas)
        state = self.lanes.replica_state()
        if state and state["connected"] is not None:
            connected.add_metric([], state["connected"])
        return [wanted, connected]

    def _per_connection(self, ids: list[str]) -> dict[str, dict]:
        pipe = self.redis.pipeline(transaction=False)
        for connection in ids:
            k = Keys(connection)
            pipe.zcard(k.dead_order)
            pipe.hgetall(k.zalo_token)
            for source in SOURCES:
                pipe.get(k.last_webhook(source))
        answers = iter(pipe.execute())
        kept = {}
        for connection in ids:
            dead, token = next(answers), next(answers)
            last = {source: next(answers) for source in SOURCES}
            kept[connection] = {"dead": dead, "token": {k.decode(): v.decode() for k, v in token.items()}, "last": last}
        return kept

    def _queues(self, ids: list[str]) -> dict[tuple[str, str], dict]:
        """Per (connection, direction): items waiting, and the age of the lane due longest
        (every connection's message queues shown, empty ones as 0)."""
        lanes = [(m.decode(), due) for m, due in self.redis.zscan_iter(DUE)]
        pipe = self.redis.pipeline(transaction=False)
        for lane_id, _ in lanes:
            pipe.llen(keys.lane(lane_id))
        now = now_ms()
        queues = {(c, d): {"items": 0, "age": 0.0} for c in ids for d in LANE_DIRECTIONS.values()}
        for (lane_id, due), items in zip(lanes, pipe.execute(), strict=True):
            queue = queues.setdefault((lane_connection(lane_id), _direction(lane_id)), {"items": 0, "age": 0.0})
            queue["items"] += items
            if due <= now:
                queue["age"] = max(queue["age"], (now - due) / 1000)
        return queues


def _direction(lane_id: str) -> str:
    local = lane_id.partition("/")[2] if lane_connection(lane_id) != keys.DEFAULT else lane_id
    return LANE_DIRECTIONS.get(local.partition(":")[0], TIMER)


def _counter_families(counters: dict[str, dict]) -> list:
    relayed = _counter("bridge_messages_relayed", "Messages the partner accepted", ("connection", "direction"))
    retries = _counter("bridge_retries", "Tries that failed and were scheduled again", ("connection", "direction"))
    dead = _counter("bridge_dead_letters", "Items that became dead letters", ("connection", "direction"))
    errors = _counter("bridge_partner_errors", "Failed partner calls", ("connection", "partner", "code"))
    waits = _counter("bridge_limiter_waits", "Calls that waited for the rate limiter", ("connection", "partner"))
    waited = _counter("bridge_limiter_wait_seconds", "Time calls slept for the rate limiter", ("connection", "partner"))
    billed = _counter("bridge_billed_replies", "Replies Zalo bills: held or sent", ("connection", "outcome"))
    ratings = _counter("bridge_satisfaction_ratings", "Customers' survey ratings, 1 to 5", ("connection", "rating"))
    latency = HistogramMetricFamily(
        "bridge_relay_latency_seconds",
        "Webhook accepted to partner accepted, per relayed message",
        labels=("connection", "direction"),
    )
    simple = {metrics.RELAYED: relayed, metrics.RETRIES: retries, metrics.DEAD_LETTERS: dead}
    simple |= {metrics.PARTNER_ERRORS: errors, metrics.LIMITER_WAITS: waits, metrics.BILLED: billed}
    simple[metrics.RATINGS] = ratings
    for connection, values in sorted(counters.items()):
        for (family, *labels), value in sorted(values.items()):
            if family in simple:
                simple[family].add_metric([connection, *labels], value)
            elif family == metrics.LIMITER_WAIT_MS:
                waited.add_metric([connection, *labels], value / 1000)
        for direction in sorted({labels[0] for family, *labels in values if family == metrics.RELAYED}):
            buckets, total_ms = _buckets(values, direction)
            latency.add_metric([connection, direction], buckets, total_ms / 1000)
    return [relayed, latency, retries, dead, errors, waits, waited, billed, ratings]


def _counter(name: str, documentation: str, labels: tuple[str, ...]) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, labels=labels)


def _buckets(values: dict, direction: str) -> tuple[list[tuple[str, int]], int]:
    """Cumulative buckets from the per-bucket counts, and the latency sum in ms."""
    running, buckets = 0, []
    for le in [repr(b) for b in metrics.LATENCY_BUCKETS] + [metrics.INF]:
        running += values.get((metrics.LATENCY, direction, le), 0)
        buckets.append((le, running))
    return buckets, values.get((metrics.LATENCY_SUM_MS, direction), 0)


def _state_families(kept: dict[str, dict]) -> list:
    dead = GaugeMetricFamily("bridge_dead_letters_kept", "Dead letters waiting for an operator", labels=("connection",))
    access = GaugeMetricFamily(
        "bridge_zalo_access_token_expires_in_seconds", "Seconds left on the Zalo access token", labels=("connection",)
    )
    refresh = GaugeMetricFamily(
        "bridge_zalo_refresh_token_expires_in_seconds", "Seconds left on the Zalo refresh token", labels=("connection",)
    )
    token_dead = GaugeMetricFamily(
        "bridge_zalo_token_dead", "1 while the Zalo pair is dead or unreadable: replies wait", labels=("connection",)
    )
    last = GaugeMetricFamily(
        "bridge_last_webhook_timestamp_seconds",
        "When a verified webhook last reached the connection",
        labels=("connection", "direction"),
    )
    for connection, state in sorted(kept.items()):
        dead.add_metric([connection], state["dead"])
        pair = state["token"]
        token = token_state(pair)
        if token["access_expires_in"] is not None:
            access.add_metric([connection], token["access_expires_in"])
        if token["refresh_expires_in"] is not None:
            refresh.add_metric([connection], token["refresh_expires_in"])
        if pair:
            token_dead.add_metric([connection], int(bool(pair.get("dead") or pair.get(UNREADABLE))))
        for source, at in state["last"].items():
            if at:
                last.add_metric([connection, DIRECTION_OF_SOURCE[source]], float(at))
    return [dead, access, refresh, token_dead, last]


def _queue_families(queues: dict[tuple[str, str], dict]) -> list:
    items = GaugeMetricFamily(
        "bridge_queue_items",
        "Items waiting in lanes (timer: the bridge's own timers)",
        labels=("connection", "direction"),
    )
    age = GaugeMetricFamily(
        "bridge_queue_oldest_due_age_seconds",
        "How long the lane due longest has waited for a worker (0: none is overdue)",
        labels=("connection", "direction"),
    )
    for (connection, direction), queue in sorted(queues.items()):
        items.add_metric([connection, direction], queue["items"])
        age.add_metric([connection, direction], round(queue["age"], 3))
    return [items, age]
