"""Per-conversation FIFO lanes in Redis: the bridge's only scheduler.

A lane is one conversation in one direction: a Redis list of items plus an entry in the due
set. Only the worker holding a lane's lease touches its head, the head leaves the list only
after it is done, and a failing head keeps the lane waiting, so order holds across retries
and crashes. While a lane is leased its due time is the end of the lease: a lane whose worker
died is simply due again when the lease runs out. RQ jobs never name a lane; a drain job
claims whichever lane is due first (workers/drain.py). Why not RQ's own dependencies and
retries: docs/delivery.md, "RQ facts behind this design" 4 and 5.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, fields
from typing import cast

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError, ResponseError

from app.bridge import keys
from app.bridge.replies import text
from app.bridge.scripts import LuaScript

ACCEPT, APPEND, TAKE = LuaScript("accept"), LuaScript("append"), LuaScript("take")
POP, RELEASE, DEFER, RENEW = LuaScript("pop"), LuaScript("release"), LuaScript("defer"), LuaScript("renew")
SCHEDULE, CANCEL = LuaScript("schedule"), LuaScript("cancel")
# A lease younger than this share of its length is surely still ours (only its expiry frees a
# lane): `keep` renews it only once that much of it has passed, not before every partner call.
RENEW_AFTER_SHARE = 0.1
# The partners whose open breaker mark a take reads with the lease (app/bridge/breaker.py), in
# take.lua's order.
BREAKERS = ("zalo", "freshchat")
DUE_SEEN_SECONDS = 0.05  # how long what a pop saw due stands for the due set (the very next claim)
CANDIDATES = 8  # lanes looked at per claim: several workers claiming at once rarely collide
SHORT_KEPT = 7 * 86400  # a shortage no webhook has ended for a week is logged again
SHORT_FIX = "bring a Redis replica back, or lower REDIS_WAIT_REPLICAS"
log = logging.getLogger("bridge.lanes")

QUEUE_NAME = "lanes"  # the RQ queue of every job: drains (workers/starter.py) and catch-ups


def now_ms() -> int:
    return int(time.time() * 1000)


def lease_token() -> str:
    """`<host>:<pid>:<random>`: unique like the random part alone, and it says which process
    on which host holds a lane, so an operator (or the scale-out test) can tell whose
    conversations a dead worker host left behind."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"


def lease_holder(token: str) -> tuple[str, int]:
    """(host, pid) of a lease token."""
    host, pid, _ = token.rsplit(":", 2)
    return host, int(pid)


class NotDue(Exception):
    """A timer item reached before its time (it queued behind work in progress): the lane
    waits until `due_ms` without spending the item's retry budget."""

    def __init__(self, due_ms: int):
        super().__init__(f"due at {due_ms}")
        self.due_ms = due_ms


@dataclass
class Item:
    """One unit of work in a lane: a partner event plus its retry bookkeeping."""

    id: str
    kind: str
    payload: dict
    received_at: int
    attempts: int = 0
    first_failed_at: int = 0
    last_error: str = ""
    event: str = ""  # the event's kind (app/integrations/events.py); "" for items queued before it was kept
    connection: str = "default"  # items queued before connections existed are the default one's

    def dumps(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def loads(cls, raw: str | bytes) -> Item:
        """Fields this version does not know (an item written by a newer one) are left out, so
        an upgrade rolled back never wedges a lane behind an item nobody can read."""
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in _ITEM_FIELDS})


_ITEM_FIELDS = {f.name for f in fields(Item)}


def _head(raw: bytes | str | None) -> tuple[str, Item] | None:
    """A lane's head as the worker steps it: (its stored form, the item)."""
    return None if raw is None else (text(raw), Item.loads(raw))


class NotReplicated(RedisError):
    """The accepted write did not reach REDIS_WAIT_REPLICAS replicas in time."""

    def __init__(self, acknowledged: int, wanted: int):
        super().__init__(f"write reached {acknowledged} of {wanted} replicas")


class Lanes:
    """Accept, claim, pop, defer and release items of per-conversation lanes."""

    def __init__(self, redis: Redis, lease_ms: int = 30000, replicas: int = 0, wait_ms: int = 500):
        self.redis = redis
        self.lease_ms = lease_ms
        self.replicas = replicas  # REDIS_WAIT_REPLICAS: an accepted item is on that many replicas
        self.wait_ms = wait_ms
        self._held: dict[str, float] = {}  # lease token -> monotonic time before its last (re)new
        self._due_seen: tuple[float, list[str]] | None = None  # when a pop last emptied its lane, the lanes due
        self._marks_seen: tuple[str, float, dict[str, int]] | None = None  # the last take's breaker marks

    def accept(self, lane: str, item: Item, dedupe_key: str = "", dedupe_ttl: int = 0, received: str = "") -> bool:
        """Queue `item`; with `dedupe_key`, only if that key was not seen (False: a duplicate).
        With `received` (a connection's last-webhook key, keys.Keys.last_webhook), the same step
        sets it to now, duplicate or not: a webhook costs one round trip, not two.

        With `replicas`, the write must also reach that many replicas (WAIT) or NotReplicated is
        raised, so the webhook answers 503 and the partner redelivers. WAIT counts the writes of
        its own connection, hence one pipeline. A duplicate waits too: its first delivery may have
        been refused for the same reason."""
        if self.replicas and dedupe_key:
            pipe = self.redis.pipeline(transaction=False)
            self._accept(lane, item, dedupe_key, dedupe_ttl, received, client=pipe)
            pipe.wait(self.replicas, self.wait_ms)
            pipe.exists(keys.REPLICAS_SHORT)
            fresh, acknowledged, short = pipe.execute()
            if acknowledged < self.replicas:
                self._short(acknowledged)
                raise NotReplicated(acknowledged, self.replicas)
            if short and self.redis.delete(keys.REPLICAS_SHORT):
                log.warning("redis.replicas_short_ended", extra={"wanted": self.replicas})
            return bool(fresh)
        return self._accept(lane, item, dedupe_key, dedupe_ttl, received)

    def _short(self, acknowledged: int) -> None:
        """One log line when webhooks start being refused for want of replicas, not one per
        webhook: the first refusal, whichever web process answers it, marks the shortage."""
        if self.redis.set(keys.REPLICAS_SHORT, time.time(), nx=True, ex=SHORT_KEPT):
            log.error(
                "redis.replicas_short_started",
                extra={"wanted": self.replicas, "acknowledged": acknowledged, "fix": SHORT_FIX},
            )

    def replica_state(self) -> dict | None:
        """REDIS_WAIT_REPLICAS against the replicas online at the primary now (`INFO
        replication`, one round trip), so a status tells of a shortage before any webhook is
        refused; None when no replica is wanted. A Redis refusing INFO (some hosted ones):
        whether the last webhook was refused for it."""
        if not self.replicas:
            return None
        try:
            info = self.redis.info("replication")
        except ResponseError:
            return {"wanted": self.replicas, "connected": None, "short": bool(self.redis.exists(keys.REPLICAS_SHORT))}
        online = sum(
            1
            for name, replica in info.items()
            if name.startswith("slave") and isinstance(replica, dict) and replica.get("state") == "online"
        )
        return {"wanted": self.replicas, "connected": online, "short": online < self.replicas}

    def _accept(self, lane: str, item: Item, dedupe_key: str, dedupe_ttl: int, received: str, client=None) -> bool:
        if not dedupe_key:
            return bool(
                APPEND(
                    self.redis,
                    lane=keys.lane(lane),
                    due=keys.DUE,
                    wake=keys.WAKE,
                    item=item.dumps(),
                    lane_id=lane,
                    now=now_ms(),
                )
            )
        return bool(
            ACCEPT(
                self.redis,
                client,
                seen=dedupe_key,
                lane=keys.lane(lane),
                due=keys.DUE,
                wake=keys.WAKE,
                received=received or dedupe_key,  # unused when received_at is ""
                ttl=dedupe_ttl,
                item=item.dumps(),
                lane_id=lane,
                now=now_ms(),
                received_at=repr(time.time()) if received else "",
            )
        )

    def accept_event(self, event, connection: str, dedupe_ttl: int, received_by: str = "") -> bool:
        """Queue a classified event (app/integrations/events.py) on its connection's lane, once per dedupe id:
        the one path of webhooks and catch-up alike, so the two never both queue a message. A
        webhook names the connection that `received_by` it (its URL's or its OA's, not always the
        lane's owner), marked as having heard from the event's partner now; a catch-up names none
        (the quiet check that starts one reads that time)."""
        item = Item(
            id=f"{event.provider}:{event.dedupe_id}",
            kind=event.provider,
            payload=event.payload,
            received_at=now_ms(),
            event=event.kind,
            connection=connection,
        )
        seen = keys.Keys(connection).seen(event.provider, event.dedupe_id)
        received = keys.Keys(received_by).last_webhook(event.provider) if received_by else ""
        return self.accept(keys.lane_for(connection, event.lane), item, seen, dedupe_ttl, received)

    def claim(self, lanes: list[str] | None = None) -> tuple[str, str, tuple[str, Item] | None] | None:
        """(lane, lease token, its head as `head` gives it) for the earliest due lane nobody
        holds, or None: among `lanes` when given, else the due set's first."""
        if lanes is None:
            due = self.redis.zrangebyscore(keys.DUE, "-inf", now_ms(), start=0, num=CANDIDATES)
            lanes = [raw.decode() for raw in cast("list[bytes]", due)]  # members, no scores
        for lane in lanes:
            taken = self.take(lane)
            if taken:
                return lane, *taken
        return None

    def due_seen(self) -> list[str] | None:
        """The lanes that were due when our last pop emptied its lane, told once and only right
        after it (DUE_SEEN_SECONDS; else None): a claim can look there without asking the due
        set. Older, it may miss a lane due since (a dead worker's, whose lease ran out)."""
        seen, self._due_seen = self._due_seen, None
        if seen is None or time.monotonic() - seen[0] > DUE_SEEN_SECONDS:
            return None
        return seen[1]

    def acquire(self, lane: str) -> str | None:
        """A lease token when this caller may drain `lane` now, else None."""
        taken = self.take(lane)
        return taken[0] if taken else None

    def take(self, lane: str) -> tuple[str, tuple[str, Item] | None] | None:
        """(lease token, head) when this caller may drain `lane` now, else None: the lease and
        the head in one round trip."""
        token, since = lease_token(), time.monotonic()
        marks = [keys.Keys(keys.lane_connection(lane)).breaker_open(partner) for partner in BREAKERS]
        got = TAKE(
            self.redis,
            lease=keys.lease(lane),
            due=keys.DUE,
            lane=keys.lane(lane),
            zalo_open=marks[0],
            freshchat_open=marks[1],
            lane_id=lane,
            now=now_ms(),
            token=token,
            lease_ms=self.lease_ms,
        )
        if not got:
            return None
        self._held[token] = since
        self._marks_seen = (lane, since, dict(zip(marks, got[2:], strict=True)))
        return token, _head(got[1])

    def marks_seen(self, lane: str) -> tuple[float, dict[str, int]] | None:
        """What the take of `lane` read of its connection's open breaker marks: (monotonic time
        before the read, {key: PTTL}), told once and only for the lane taken last (else None)."""
        seen, self._marks_seen = self._marks_seen, None
        return seen[1:] if seen is not None and seen[0] == lane else None

    def head(self, lane: str) -> tuple[str, Item] | None:
        return _head(self.redis.lindex(keys.lane(lane), 0))

    def pop(self, lane: str, token: str, raw: str, pipe=None):
        """Drop the processed head: (1, next head) when work is left, (0, None) when the lane
        was given up; <0 means we lost the lease (someone else owns the lane) and nothing changed.
        With `pipe`, the pop joins it and what is returned reads that answer out of the
        pipeline's first answer: `pop(..., pipe)(answers[0])`."""
        since = time.monotonic()
        got = POP(
            self.redis,
            client=pipe,
            lease=keys.lease(lane),
            lane=keys.lane(lane),
            due=keys.DUE,
            token=token,
            raw=raw,
            lane_id=lane,
            now=now_ms(),
            lease_ms=self.lease_ms,
            candidates=CANDIDATES,
        )
        if pipe is not None:
            return lambda answer: self._popped(token, since, answer)
        return self._popped(token, since, got)

    def _popped(self, token: str, since: float, got: list) -> tuple[int, str | None]:
        left = int(got[0])
        self._held_until(token, since if left > 0 else None)  # a lane left is still ours, renewed
        if left == 0:  # the lane is given up: the lanes due now, for the next claim
            self._due_seen = (time.monotonic(), [lane.decode() for lane in got[1:]])
            return 0, None
        nxt = got[1] if len(got) > 1 else None
        return left, nxt.decode() if isinstance(nxt, bytes) else nxt

    def _held_until(self, token: str, since: float | None) -> None:
        if since is None:
            self._held.pop(token, None)
        else:
            self._held[token] = since

    def release(self, lane: str, token: str) -> int:
        """Give up the lease: 1 when work is left (the lane is due now), 0 when empty, -1 when
        the lease was not ours."""
        self._held.pop(token, None)
        return int(
            RELEASE(
                self.redis,
                lease=keys.lease(lane),
                lane=keys.lane(lane),
                due=keys.DUE,
                token=token,
                lane_id=lane,
                now=now_ms(),
            )
        )

    def defer(self, lane: str, token: str, raw: str, updated: Item, due_ms: int) -> int:
        """Rewrite the head with its retry bookkeeping and make the lane due at `due_ms`."""
        self._held.pop(token, None)
        return int(
            DEFER(
                self.redis,
                lease=keys.lease(lane),
                lane=keys.lane(lane),
                due=keys.DUE,
                token=token,
                raw=raw,
                updated=updated.dumps(),
                due_ms=due_ms,
                lane_id=lane,
            )
        )

    def keep(self, lane: str, token: str) -> bool:
        """Whether our lease on `lane` holds, before a partner call: surely while it is young
        (RENEW_AFTER_SHARE, no round trip), else as `renew` finds it (and then renewed)."""
        since = self._held.get(token)
        if since is not None and time.monotonic() - since < self.lease_ms * RENEW_AFTER_SHARE / 1000:
            return True
        return self.renew(lane, token)

    def renew(self, lane: str, token: str) -> bool:
        since = time.monotonic()
        renewed = bool(
            RENEW(
                self.redis,
                lease=keys.lease(lane),
                due=keys.DUE,
                token=token,
                lease_ms=self.lease_ms,
                lane_id=lane,
                now=now_ms(),
            )
        )
        self._held_until(token, since if renewed else None)
        return renewed

    def schedule(self, lane: str, item: Item, due_ms: int, replace: bool, pipe=None) -> int | None:
        """A timer: `item` waits in `lane` until `due_ms` (see schedule.lua for `replace`).
        With `pipe`, it joins that pipeline (None here; the answer comes with its execute)."""
        got = SCHEDULE(
            self.redis,
            client=pipe,
            lane=keys.lane(lane),
            due=keys.DUE,
            lease=keys.lease(lane),
            item=item.dumps(),
            lane_id=lane,
            due_ms=due_ms,
            replace=1 if replace else 0,
        )
        return None if pipe is not None else int(got)

    def cancel(self, lane: str, pipe=None) -> bool | None:
        """Drop a timer lane's waiting item, unless a worker holds the lane (with `pipe`, as
        part of it: None here)."""
        got = CANCEL(self.redis, client=pipe, lane=keys.lane(lane), due=keys.DUE, lease=keys.lease(lane), lane_id=lane)
        return None if pipe is not None else bool(got)

    def due_lanes(self, limit: int = 500) -> list[str]:
        """Lanes waiting for a worker now, earliest first."""
        found = self.redis.zrangebyscore(keys.DUE, "-inf", now_ms(), start=0, num=limit)
        return [x.decode() for x in cast("list[bytes]", found)]  # members, no scores

    def due_count(self) -> int:
        """Lanes waiting for a worker now (leased lanes are due only when their lease ends)."""
        pipe = self.redis.pipeline(transaction=False)
        self.count_due(pipe)
        return pipe.execute()[0]

    def count_due(self, pipe: Pipeline) -> None:
        """`due_count`'s read, added to the caller's pipeline (the starter's one round trip)."""
        pipe.zcount(keys.DUE, "-inf", now_ms())
