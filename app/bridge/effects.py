"""Exactly-once effects on top of at-least-once jobs: remember each partner call's result."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from app.bridge.keys import DEFAULT_KEYS, Keys
from app.bridge.scripts import LuaScript
from app.errors import OutcomeUnknown, PartnerError, RetryableError

log = logging.getLogger("bridge.effects")
MARK_PATIENCE_SECONDS = 120
# A send's in-flight record and its result share one key (`done`): the record is written there
# marked, and the result overwrites it, so recording the result is one SET, with no DEL of a
# record kept apart. Results are JSON, which never starts with the mark. The `flight` key of
# versions up to fc5f0b4 is still read, so an upgrade misses no send left in flight.
FLIGHT_MARK = "~"
CLEAR = LuaScript("flight_clear")
Reader = Callable[[Any], Callable[[Any], Any]]  # adds a read to a pipeline; hands back its parser


class Effects:
    """`once(key, fn)` runs fn only if no earlier run recorded a result for key.

    The result is written right after the partner's success. A send whose answer never came
    (a timeout, a crash) leaves its in-flight record (`take_off`); with `reconcile`, the next
    run asks the partner's conversation before sending again (docs/delivery.md).
    """

    def __init__(
        self, redis: Redis, ttl_seconds: int, keys: Keys = DEFAULT_KEYS, replicas: int = 0, wait_ms: int = 500
    ):
        self.redis = redis
        self.ttl = ttl_seconds
        self.keys = keys
        # REDIS_WAIT_REPLICAS: a send goes only once its in-flight record is on that many
        # replicas, so a failover that loses the primary's last writes cannot lose the record
        # of a send the partner got (the replay would send again instead of looking).
        self.replicas, self.wait_ms = replicas, wait_ms
        self._flying: list[str] = []  # keys of the reconciled `once` calls running, innermost last
        self._ahead: tuple[str, tuple[Any | None, dict | None]] | None = None  # `recorded_in`'s key, pair

    def once(
        self,
        key: str,
        fn: Callable[[], Any],
        also: Callable[[Any, Any], None] | None = None,
        reconcile: Callable[[dict], Any] | None = None,
    ) -> Any:
        """`also(pipe, result)` may add writes that go in the same round trip as the record.
        `reconcile(flight)` gets the in-flight record an earlier run left and answers the
        result the partner shows for it, or None when the send is not there (then fn runs)."""
        ahead, self._ahead = self._ahead, None  # good for the `once` right after it only
        if ahead is not None and ahead[0] == key:
            cached, flight = ahead[1]
        elif reconcile is None:
            cached, flight = self.recorded(key), None
        else:  # its result and its in-flight record in one round trip
            cached, flight = _read(*self.redis.mget(self._pair(key)))
        if cached is not None:
            return cached
        if reconcile is None:
            result = fn()
        else:
            found = reconcile(flight) if flight is not None else None
            result = found if found is not None else self._flying_call(key, fn)
        self._remember(key, result, also)
        return result

    def recorded_in(self, pipe: Any, key: str) -> Callable[[Any], None]:
        """`once(key, ...)`'s read (its result and in-flight record) as part of `pipe` (with the
        sender's record: app/relay/inbound.py); hand back what takes its answer. The next `once`
        uses it when it is `once(key, ...)` (nothing else ran `once` in between), else reads anew."""
        pipe.mget(self._pair(key))

        def keep(pair: list) -> None:
            self._ahead = (key, _read(*pair))

        return keep

    def _flying_call(self, key: str, fn: Callable[[], Any]) -> Any:
        self._flying.append(key)
        try:
            return fn()
        except PartnerError as exc:
            if not isinstance(exc, OutcomeUnknown):  # the partner answered no: nothing to look for
                CLEAR(self.redis, done=self.keys.done(key), flight=self.keys.flight(key), mark=FLIGHT_MARK)
            raise
        finally:
            self._flying.pop()

    def _pair(self, key: str) -> list[str]:
        return [self.keys.done(key), self.keys.flight(key)]

    def take_off(
        self, marks: dict[str, int] | None = None, turn: Any = None, read: Reader | None = None, **what: Any
    ) -> Any:
        """Record, right before a partner send inside a reconciled `once`, what is sent, to
        whom and when; a later run that finds it without a result looks before resending.
        `marks` (key -> seconds) are set to that `once`'s key in the same round trip (what an
        echo arriving before the answer looks for), and so is the partner's rate-limit turn
        when `turn` is its limiter (RateLimiter.take_in: the send's own call then uses it),
        and what `read(pipe)` asks (it hands back how to read its answer: e.g. the recipient's
        record, Mapping.zalo_user_in). Return what `read` read; outside such a call (a send
        nobody reconciles) do nothing and return None."""
        if not self._flying:
            return None
        key, record = self._flying[-1], {"at": int(time.time() * 1000), **what}
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.keys.done(key), FLIGHT_MARK + json.dumps(record), ex=self.ttl)
        for mark, seconds in (marks or {}).items():
            pipe.set(mark, key, ex=seconds)
        reading, parse = len(pipe), (read(pipe) if read is not None else None)
        taken, keep = len(pipe), (turn.take_in(pipe) if turn is not None else None)
        if self.replicas:
            pipe.wait(self.replicas, self.wait_ms)  # its own connection's writes: this pipeline's
        answers = pipe.execute()
        if self.replicas and answers[-1] < self.replicas:
            raise RecordNotReplicated(answers[-1], self.replicas)  # `_flying_call` clears the record
        if keep is not None:
            keep(answers[taken])
        return parse(answers[reading]) if parse is not None else None

    def in_flight(self, key: str) -> dict | None:
        """The in-flight record of `key`'s last send, if its answer never got recorded."""
        cached, flight = _read(*self.redis.mget(self._pair(key)))
        return None if cached is not None else flight

    def count(self, partner: str, outcome: str) -> None:
        """How an unknown outcome of a send to `partner` was settled, for status."""
        self.redis.hincrby(self.keys.reconcile, f"{partner}:{outcome}", 1)

    def recorded(self, key: str) -> Any | None:
        """The result an earlier `once(key, ...)` stored, without running anything; None if none."""
        return _read(self.redis.get(self.keys.done(key)), None)[0]

    def _remember(self, key: str, result: Any, also=None) -> None:
        """The partner already acted: losing this write would mean a duplicate, so wait for
        Redis to come back (e.g. a restart) instead of giving up."""
        deadline = time.monotonic() + MARK_PATIENCE_SECONDS
        delay = 0.05
        while True:
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(self.keys.done(key), json.dumps(result), ex=self.ttl)  # over its in-flight record
                if also:
                    also(pipe, result)
                pipe.execute()
                return
            except RedisError:
                if time.monotonic() > deadline:
                    raise
                log.warning("effects.mark_retry", extra={"key": key})
                time.sleep(delay)
                # Stay quick: once Redis is back, this write must land before another worker
                # takes over the lane (its lease may have expired during the outage).
                delay = min(delay * 2, 0.1)

    def forget(self, key: str) -> None:
        """Drop a remembered result that turned out stale (e.g. an expired Zalo attachment_id)."""
        self.redis.delete(self.keys.done(key))


class RecordNotReplicated(RetryableError):
    """A send's in-flight record did not reach REDIS_WAIT_REPLICAS replicas in time: the send is
    not made (a failover could lose the record, and a replay would then send again blind). A
    known wait like the webhooks' 503 meanwhile, not the item's failure: no retry budget."""

    waiting = True
    partner = "redis"

    def __init__(self, acknowledged: int, wanted: int):
        super().__init__(f"in-flight record reached {acknowledged} of {wanted} replicas", retry_after=1.0)


def _read(done: bytes | str | None, legacy_flight: bytes | str | None) -> tuple[Any | None, dict | None]:
    """(recorded result, in-flight record) from the `done` key and the older `flight` one."""
    text = done.decode() if isinstance(done, bytes) else done
    if text is not None and not text.startswith(FLIGHT_MARK):
        return json.loads(text), None
    if text is not None:
        return None, json.loads(text[len(FLIGHT_MARK) :])
    return None, None if legacy_flight is None else json.loads(legacy_flight)
