"""An operator's dead letters, per connection (the JSON API and the console): list, replay,
drop. A removed connection's dead letters stay reachable by its id; `flask bridge dead-letters`
works on the default connection's through app/bridge/deadletters.py directly."""

from __future__ import annotations

import logging

from redis import Redis

from app.bridge.deadletters import DeadLetters
from app.bridge.keys import Keys
from app.bridge.lanes import Item, Lanes
from app.connections.problem import Problem
from app.connections.store import ID_PATTERN, Connections
from app.connections.store import TEXTS as STORE_TEXTS
from app.operations.journal import Journal
from config.settings import Settings

log = logging.getLogger("connections.admin")
MAX_LIMIT = 1000
# What people read in answers and on the command line (app/wording.py says them in Vietnamese).
TEXTS = {
    "bad_limit": "limit: a whole number from 1 to 1000",
    "no_dead_letter": "no dead letter {id}",
    "replay_removed": "connection {id} was removed; add it again before replaying its dead letters",
}


class DeadLetterDesk:
    def __init__(self, redis: Redis, lanes: Lanes, settings: Settings):
        self.redis = redis
        self.lanes = lanes
        self.connections = Connections(redis, settings)

    def list(self, connection_id: str, limit: str | int) -> list[dict]:
        return self._dead(connection_id).list(limit=_limit(limit))

    def replay(self, connection_id: str, item_id: str) -> None:
        dead = self._dead(connection_id)
        if dead.get(item_id) is None:
            raise Problem(404, TEXTS["no_dead_letter"].format(id=item_id))
        if self.connections.find(connection_id) is None:
            raise Problem(409, TEXTS["replay_removed"].format(id=connection_id))
        dead.replay(item_id)
        log.info("connections.dead_letter_replayed", extra={"connection": connection_id, "item": item_id})

    def drop(self, connection_id: str, item_id: str) -> None:
        """Forget a dead letter; its event then reads `dropped`, with nothing left to link to."""
        dead = self._dead(connection_id)
        letter = dead.get(item_id)
        if letter is None or not dead.drop(item_id):
            raise Problem(404, TEXTS["no_dead_letter"].format(id=item_id))
        Journal(self.redis, connection_id).record(
            letter["lane"], Item(**letter["item"]), "dropped", reason=letter["reason"]
        )
        log.info("connections.dead_letter_dropped", extra={"connection": connection_id, "item": item_id})

    def _dead(self, connection_id: str) -> DeadLetters:
        if not ID_PATTERN.match(connection_id or ""):
            raise Problem(400, "invalid connection", {"connection": STORE_TEXTS["bad_id"]})
        k = Keys(connection_id)
        known = self.connections.find(connection_id) or self.redis.exists(k.dead_order)
        if not known:
            raise Problem(404, STORE_TEXTS["unknown"].format(id=connection_id))
        return DeadLetters(self.redis, self.lanes, keys=k)


def _limit(raw: str | int) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise Problem(400, TEXTS["bad_limit"]) from None
    if not 1 <= value <= MAX_LIMIT:
        raise Problem(400, TEXTS["bad_limit"])
    return value
