"""What an operator reads of the connections (the JSON API, the console, `flask bridge`): every
connection shown with its status, the whole bridge's status, and a connection's recent events.
One status implementation, app/operations/status.py, shared with /readyz and /admin/status; a
connection is shown as app/connections/service.py `view` shows it."""

from __future__ import annotations

import builtins
import time

from redis import Redis

from app.bridge.keys import DUE, HEARTBEAT
from app.bridge.lanes import Lanes, now_ms
from app.connections.problem import Problem
from app.connections.service import view
from app.connections.store import Connection, Connections
from app.operations import problems
from app.operations.journal import BadQuery, Journal
from app.operations.status import connection_status, queue_depths
from config.settings import Settings


class Overview:
    def __init__(self, redis: Redis, lanes: Lanes, settings: Settings):
        self.redis = redis
        self.lanes = lanes
        self.base_url = settings.public_base_url
        self.connections = Connections(redis, settings)

    def list(self) -> list[dict]:
        depths = queue_depths(self.redis)
        return [self._shown(c, depths) for c in self.connections.all()]

    def show(self, connection_id: str) -> dict:
        return self._shown(self.connections.get(connection_id), queue_depths(self.redis))

    def status(self) -> dict:
        beat = self.redis.get(HEARTBEAT)
        depths = queue_depths(self.redis)
        replicas = self.lanes.replica_state()  # None while REDIS_WAIT_REPLICAS is 0
        return {
            "redis": "ok",
            "redis_replicas": replicas,
            "problems": problems.bridge_problems(replicas),  # the whole bridge's, not a connection's
            "worker_heartbeat_age": round(time.time() - float(beat), 1) if beat else None,
            "lanes_pending": sum(d["lanes_pending"] for d in depths.values()),  # as the cards count, no timers
            "lanes_due_now": self.redis.zcount(DUE, "-inf", now_ms()),
            "connections": {c.id: self._status(c, depths) for c in self.connections.all()},
        }

    def events(
        self,
        connection_id: str,
        direction: str | None = None,
        state: str | None = None,
        find: str | None = None,
        limit: int | str | None = 100,
    ) -> builtins.list[dict]:  # `list` alone here names the method above
        """The connection's recent events (app/operations/journal.py), newest first; the filters
        and `limit` as a query string gives them, checked by the journal."""
        self.connections.get(connection_id)
        try:
            return Journal(self.redis, connection_id).recent(direction or None, state or None, find or None, limit)
        except BadQuery as exc:
            raise Problem(400, "invalid query", {exc.field: exc.message}) from None

    def _shown(self, conn: Connection, depths: dict[str, dict]) -> dict:
        return {**view(conn, self.base_url), "status": self._status(conn, depths)}

    def _status(self, conn: Connection, depths: dict[str, dict]) -> dict:
        shown = connection_status(self.redis, conn.id, depths.get(conn.id), connection=conn)
        return dict(shown, enabled=conn.enabled, queue_depth=shown["lanes_pending"])
