"""A connection's recent events and their state, for the admin console.

What waits is read from the lanes themselves, so the webhook path writes nothing extra:
- `queued`: waiting in its lane;
- `received`: the head of a lane a worker is relaying right now;
- `retrying`: the head of a lane after a failed try (reason, next try).
What is finished is recorded by `on_outcome`, one of the worker's after-delivery subscribers
(app/relay/subscribers.py), in a capped record per connection (a zset by time and a hash of
entries, `KEEP` entries and `MAX_AGE` at most):
- `delivered`: done (it may also have been deliberately not relayed, e.g. an echo);
- `failed`: a dead letter (reason, its dead-letter id);
- `retrying`, as the worker last saw it.
- `dropped`: a dead letter an operator dropped (app/operations/dead_letters.py).
An id found in a lane is shown as the lane says (a replayed dead letter is queued again).
Timer lanes (a reply window's reminder, a receipts note) are the bridge's own clocks, not
events a partner sent: they are neither listed nor recorded.
The same `record` counts the messages relayed each UTC day, each way.
"""

from __future__ import annotations

import json
import logging
import re
import time

from redis import Redis
from redis.exceptions import RedisError

from app.bridge import keys
from app.bridge.keys import DEFAULT, DUE, Keys, is_timer_lane, lane_connection
from app.bridge.lanes import Item
from app.bridge.mapping import CONVERSATION_FIELDS, USER_FIELDS, first
from app.bridge.outcome import DIRECTION_OF_KIND, Outcome
from app.bridge.scripts import LuaScript
from app.integrations import events

log = logging.getLogger("journal")
RECORD = LuaScript("journal")
STATES = ("received", "queued", "delivered", "retrying", "failed", "dropped")
DIRECTIONS = ("in", "out")
KEEP = 2000
MAX_AGE = 7 * 86400
COUNTER_TTL = 2 * 86400  # today's counter outlives the day, so "today" never reads a missing key
# Trimmed to KEEP and MAX_AGE, and its TTLs renewed, on each day's first message each way and
# every TIDY_EVERY-th after it (and on every outcome that is not a counted message): between two
# tidyings it holds at most TIDY_EVERY more entries each way, and an entry older than MAX_AGE is
# not shown. The TTL is a day longer than MAX_AGE: it is renewed at least once a day it is used.
TIDY_EVERY = 64
JOURNAL_TTL = MAX_AGE + 86400
SUMMARY_CHARS = 80
REASON_CHARS = 300
MAX_LIMIT = 500
FIND_CHARS = 200
LIMIT_TEXT = f"a whole number from 1 to {MAX_LIMIT}"
ITEMS_PER_LANE = 100  # a lane longer than that shows its oldest items only


class BadQuery(ValueError):
    """A filter of `recent` that cannot be answered: which one (`field`) and why (`message`)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class Journal:
    def __init__(self, redis: Redis, connection_id: str):
        self.redis = redis
        self.connection = connection_id
        self.keys = Keys(connection_id)

    # -- the worker's side ---------------------------------------------------------------------
    def record(
        self,
        lane: str,
        item: Item,
        state: str,
        reason: str = "",
        next_try: float | None = None,
        dead_letter: str | None = None,
        pipe=None,
    ) -> None:
        """Keep the item's outcome. Best effort: the journal is a view, never a reason for an
        item to fail or be redone, so a Redis error here is logged and swallowed. With `pipe`,
        the write joins it (its owner executes it and handles its errors)."""
        if is_timer_lane(lane):
            return
        now = time.time()
        entry = _entry(lane, item, state, now, reason=reason, next_try=next_try, dead_letter=dead_letter)
        counted = state == "delivered" and item.event != events.CONVERSATION_STATE
        try:
            RECORD(
                self.redis,
                client=pipe,
                order=self.keys.journal,
                items=self.keys.journal_items,
                counter=self.keys.relayed(entry["direction"], _day(now)),
                id=item.id,
                entry=json.dumps(entry, ensure_ascii=False),
                at=now,
                cutoff=now - MAX_AGE,
                keep=KEEP,
                count=int(counted),
                counter_ttl=COUNTER_TTL,
                ttl=JOURNAL_TTL,
                tidy=int(not counted),
                every=TIDY_EVERY,
            )
        except RedisError as exc:
            log.warning("journal.not_recorded", extra={"item": item.id, "error": type(exc).__name__})

    # -- the console's side --------------------------------------------------------------------
    def relayed_today(self) -> dict[str, int]:
        return relayed_counts(self.redis.mget(self.relayed_today_keys()))

    def relayed_today_keys(self) -> list[str]:
        """Today's counters, each direction's (read together with other reads: a status's)."""
        day = _day(time.time())
        return [self.keys.relayed(d, day) for d in DIRECTIONS]

    def recent(self, direction: str | None = None, state: str | None = None, find: str | None = None, limit=100):
        """The newest events first, filtered; `find` is a Zalo user id, a FreshChat
        conversation id or an event id. BadQuery for a filter that makes no sense."""
        limit = _check(direction, state, find, limit)
        found = {e["id"]: e for e in self._recorded()}
        found.update({e["id"]: e for e in self._waiting()})
        entries = self._with_counterparts(list(found.values()))
        picked = [e for e in entries if _matches(e, direction, state, find)]
        picked.sort(key=lambda e: e["at"], reverse=True)
        return picked[:limit]

    def _recorded(self) -> list[dict]:
        """What the worker recorded, less what is older than MAX_AGE (left until the next tidying)."""
        cutoff = time.time() - MAX_AGE
        return [e for e in (json.loads(raw) for raw in self.redis.hvals(self.keys.journal_items)) if e["at"] >= cutoff]

    def _waiting(self) -> list[dict]:
        """Every item in this connection's lanes, in the state its place in the lane gives."""
        lanes = [
            (m.decode(), due)
            for m, due in self.redis.zscan_iter(DUE)
            if lane_connection(m.decode()) == self.connection and not is_timer_lane(m.decode())
        ]
        pipe = self.redis.pipeline(transaction=False)
        for lane, _ in lanes:
            pipe.lrange(keys.lane(lane), 0, ITEMS_PER_LANE - 1)
            pipe.exists(keys.lease(lane))
        answers = pipe.execute()
        now = time.time()
        entries = []
        for (lane, due), raws, leased in zip(lanes, answers[::2], answers[1::2], strict=True):
            for n, raw in enumerate(raws):
                item = Item.loads(raw)
                state, next_try = _waiting_state(item, n == 0, bool(leased), due / 1000, now)
                at = item.received_at / 1000
                entries.append(_entry(lane, item, state, at, reason=item.last_error, next_try=next_try))
        return entries

    def _with_counterparts(self, entries: list[dict]) -> list[dict]:
        """Fill the side the lane does not name: an inbound lane names the Zalo user, whose
        conversation the mapping knows, and the other way round."""
        users = sorted({e["zalo_user"] for e in entries if e["zalo_user"] and not e["conversation"]})
        conversations = sorted({e["conversation"] for e in entries if e["conversation"] and not e["zalo_user"]})
        pipe = self.redis.pipeline(transaction=False)
        for user in users:
            pipe.hmget(self.keys.zalo_user(user), *USER_FIELDS.names("fc_conversation_id"))
        for conversation in conversations:
            pipe.hmget(self.keys.conversation(conversation), *CONVERSATION_FIELDS.names("zalo_user_id"))
        answers = [first(a) or None for a in pipe.execute()]
        conversation_of = dict(zip(users, answers[: len(users)], strict=True))
        user_of = dict(zip(conversations, answers[len(users) :], strict=True))
        for e in entries:
            e["conversation"] = e["conversation"] or conversation_of.get(e["zalo_user"])
            e["zalo_user"] = e["zalo_user"] or user_of.get(e["conversation"])
        return entries


def on_outcome(outcome: Outcome, pipe) -> None:
    """Subscriber (app/relay/subscribers.py): every outcome of a partner's event, under the
    item's connection (removed or not)."""
    journal = Journal(outcome.ctx.redis, outcome.item.connection)
    journal.record(
        outcome.lane, outcome.item, outcome.state, outcome.reason, outcome.next_try, outcome.dead_letter, pipe
    )


def _waiting_state(item: Item, head: bool, leased: bool, due: float, now: float) -> tuple[str, float | None]:
    """(state, next try) of an item in a lane: only the head is ever worked on or retried."""
    if not head:
        return "queued", None
    if leased:
        return "received", None
    if due > now or item.attempts or item.last_error:
        return "retrying", due
    return "queued", None


def _entry(lane: str, item: Item, state: str, at: float, **details) -> dict:
    zalo_user, conversation = _parties(lane)
    return {
        "id": item.id,
        "direction": DIRECTION_OF_KIND.get(item.kind, ""),
        "kind": _kind(item),
        "lane": lane,
        "zalo_user": zalo_user,
        "conversation": conversation,
        "state": state,
        "reason": (details.get("reason") or "")[:REASON_CHARS],
        "at": round(at, 3),
        "attempts": item.attempts,
        "next_try": details.get("next_try"),
        "dead_letter": details.get("dead_letter"),
        "summary": summary(item),
    }


def _parties(lane: str) -> tuple[str | None, str | None]:
    """(Zalo user, FreshChat conversation) as the lane id names them: `in:<user>`, `out:<conv>`,
    after the connection's `<id>/` prefix (the default connection's lanes have none)."""
    local = lane if lane_connection(lane) == DEFAULT else lane.partition("/")[2]
    side, _, who = local.partition(":")
    if side == "in":
        return who or None, None
    if side == "out":
        return None, who or None
    return None, None


def _kind(item: Item) -> str:
    """The partner's own name for the event (user_send_image, message_create, ...)."""
    payload = item.payload if isinstance(item.payload, dict) else {}
    name = payload.get("event_name") or payload.get("action") or item.event
    return str(name)[:60]


def summary(item: Item) -> str:
    """A short preview for a person: the text and the kinds of attachments, never a link or id."""
    payload = item.payload if isinstance(item.payload, dict) else {}
    parts = _zalo_parts(payload) if item.kind == "zalo" else _freshchat_parts(payload)
    text = re.sub(r"\s+", " ", " ".join(p for p in parts if p)).strip() or _kind(item)
    return text if len(text) <= SUMMARY_CHARS else text[: SUMMARY_CHARS - 1] + "…"


def _zalo_parts(payload: dict) -> list[str]:
    message = payload.get("message")
    message = message if isinstance(message, dict) else {}
    attachments = message.get("attachments")
    attachments = attachments if isinstance(attachments, list) else []
    kinds = [f"[{a.get('type')}]" for a in attachments if isinstance(a, dict) and a.get("type")]
    text = message.get("text")
    return [*kinds, text if isinstance(text, str) else ""]


def _freshchat_parts(payload: dict) -> list[str]:
    data = payload.get("data")
    data = data if isinstance(data, dict) else {}
    message = data.get("message")
    message = message if isinstance(message, dict) else {}
    parts = message.get("message_parts")
    parts = parts if isinstance(parts, list) else []
    found = []
    for part in parts:
        if not isinstance(part, dict):
            continue
        for kind, body in part.items():
            if kind == "text" and isinstance(body, dict) and isinstance(body.get("content"), str):
                found.append(body["content"])
            elif isinstance(body, dict):
                found.append(f"[{kind}]")
    return found


def _matches(entry: dict, direction: str | None, state: str | None, find: str | None) -> bool:
    if direction and entry["direction"] != direction:
        return False
    if state and entry["state"] != state:
        return False
    return not find or find in (entry["zalo_user"], entry["conversation"], entry["id"])


def _check(direction, state, find, limit) -> int:
    if direction not in (None, "", *DIRECTIONS):
        raise BadQuery("direction", "in or out")
    if state not in (None, "", *STATES):
        raise BadQuery("state", "one of " + ", ".join(STATES))
    if find is not None and len(find) > FIND_CHARS:
        raise BadQuery("find", f"at most {FIND_CHARS} characters")
    try:
        value = int(limit)
    except (TypeError, ValueError):
        raise BadQuery("limit", LIMIT_TEXT) from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadQuery("limit", LIMIT_TEXT)
    return value


def _day(at: float) -> str:
    return time.strftime("%Y%m%d", time.gmtime(at))


def relayed_counts(counts: list) -> dict[str, int]:
    """The MGET of `Journal.relayed_today_keys` as {direction: messages}."""
    return {d: int(n or 0) for d, n in zip(DIRECTIONS, counts, strict=True)}
