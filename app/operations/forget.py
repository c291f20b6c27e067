"""Forget a person on request (CONTRACT §7, `DELETE /api/connections/<id>/users/<zalo_user_id>`):
every record the bridge keeps of one Zalo user in one connection is deleted and counted.

The records are found from the person outwards: their mapping names their FreshChat user and
conversation (and every conversation whose mapping names them back); their lanes, the journal
and the dead letters name the items they sent or were sent; the items, the receipts lists and
the message maps name the messages. Then every family that `app/bridge/keys.py` lists in
PERSONAL is deleted for those names, the effects whose names hold one of them (found by SCAN),
their lanes and queued items, their journal entries, dead letters and last errors, and their
media copies:
the person's own folder (copies made since copies were filed by person), and the folders of the
messages still known (older copies; a copy of a message no longer named anywhere above cannot be
told from anyone else's).

The FreshChat user is remembered as forgotten (`Keys.forgotten`: its id only), so the person's
next message creates a new FreshChat user rather than finding the old one by reference id.
FreshChat's own copy (the user, their conversations) is FreshChat's to delete.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

from redis import Redis

from app.bridge import keys
from app.bridge.keys import (
    CONVERSATION,
    CONVERSATION_LANES,
    EFFECT,
    EVENT,
    FRESHCHAT_MESSAGE,
    PERSONAL,
    USER,
    USER_LANES,
    ZALO_MESSAGE,
    Keys,
    lane_for,
    person_folder,
)
from app.bridge.lanes import Item
from app.bridge.mapping import CONVERSATION_FIELDS, USER_FIELDS, first
from app.bridge.replies import text
from app.connections.problem import Problem
from app.connections.store import ID_PATTERN
from app.connections.store import TEXTS as STORE_TEXTS
from app.integrations.zalo.schemas import message_ids
from app.logs import audit
from app.media.store import LocalMediaStore, S3MediaStore

log = logging.getLogger("operations.forget")
USER_ID_CHARS = 200
SCAN_BATCH = 1000
# What people read in answers and on the command line (app/wording.py says them in Vietnamese).
TEXTS = {
    "unknown_user": "the bridge knows no Zalo user {user} in connection {id}",
    "bad_user": "a Zalo user id: 1 to 200 characters, no spaces",
    "freshchat": "FreshChat keeps its own copy of this person (user {fc_user}): delete it in FreshChat",
    "freshchat_none": "the bridge never made a FreshChat user for this person",
}
# The answer's families besides PERSONAL's: the person's lanes, the items queued in them, their
# journal entries, dead letters, conversation owners and media copies.
OTHER_FAMILIES = (
    "lanes",
    "queued_items",
    "journal_entries",
    "dead_letters",
    "last_errors",
    "conversation_owner",
    "media",
)
_SPLIT = re.compile(r"[:/]")


@dataclass
class Footprint:
    """The names a person's records are kept under, in one connection."""

    user: str
    fc_user: str = ""
    conversations: set[str] = field(default_factory=set)
    lanes: set[str] = field(default_factory=set)
    items: set[str] = field(default_factory=set)  # item ids: "<source>:<event id>"
    zalo_messages: set[str] = field(default_factory=set)
    freshchat_messages: set[str] = field(default_factory=set)
    known: bool = False  # a record names the person (their mapping, a conversation, an item...)

    def names(self, attribution: str) -> set[str]:
        return {
            USER: {self.user},
            CONVERSATION: self.conversations,
            ZALO_MESSAGE: self.zalo_messages,
            FRESHCHAT_MESSAGE: self.freshchat_messages,
        }[attribution]

    def tokens(self) -> set[str]:
        """What an effect's name may hold of this person (each a whole `:` or `/` part)."""
        folder = person_folder(self.user).partition("/")[2]
        return {self.user, folder} | self.conversations | self.zalo_messages | self.freshchat_messages


class Forgetting:
    """The job: `person(connection, zalo_user)` -> the answer, or Problem 400/404."""

    def __init__(self, redis: Redis, media: LocalMediaStore | S3MediaStore):
        self.redis = redis
        self.media = media

    def person(self, connection_id: str, zalo_user: str) -> dict:
        k = self._keys(connection_id, zalo_user)
        footprint = Tracer(self.redis, k).trace(zalo_user)
        counts = dict.fromkeys([*PERSONAL, *OTHER_FAMILIES], 0)
        counts["media"] = self._media(k, footprint)
        if footprint.known:  # else the id named nothing: effects holding it as a word are others'
            counts.update(Eraser(self.redis, k).erase(footprint))
        if not any(counts.values()):
            raise Problem(404, TEXTS["unknown_user"].format(user=zalo_user, id=connection_id))
        if footprint.fc_user:
            self.redis.sadd(k.forgotten, footprint.fc_user)
        audit("person_forgotten", connection=connection_id, zalo_user=zalo_user, deleted=counts)
        note = TEXTS["freshchat"].format(fc_user=footprint.fc_user) if footprint.fc_user else TEXTS["freshchat_none"]
        return {
            "connection": connection_id,
            "zalo_user": zalo_user,
            "deleted": counts,
            "freshchat": {"user": footprint.fc_user, "conversations": sorted(footprint.conversations), "note": note},
        }

    def _keys(self, connection_id: str, zalo_user: str) -> Keys:
        if not ID_PATTERN.match(connection_id or ""):
            raise Problem(400, "invalid connection", {"connection": STORE_TEXTS["bad_id"]})
        if not zalo_user or len(zalo_user) > USER_ID_CHARS or not zalo_user.isprintable() or " " in zalo_user:
            raise Problem(400, "invalid Zalo user", {"zalo_user_id": TEXTS["bad_user"]})
        return Keys(connection_id)  # a removed connection's records stay, and can be forgotten too

    def _media(self, k: Keys, footprint: Footprint) -> int:
        """First, so a store that fails leaves the Redis records to find everything again."""
        folders = [k.media("", person=footprint.user)]
        folders += [k.media(f"zalo/{m}/") for m in sorted(footprint.zalo_messages)]
        folders += [k.media(f"fc/{m}/") for m in sorted(footprint.freshchat_messages)]
        return sum(self._delete_under(folder) for folder in folders)

    def _delete_under(self, folder: str) -> int:
        try:
            return self.media.delete_under(folder)
        except ValueError:  # an id no copy could have been named by (app/media/store.py KEY_RE)
            return 0


class Tracer:
    """Finds a person's footprint; reads only."""

    def __init__(self, redis: Redis, k: Keys):
        self.redis = redis
        self.k = k

    def trace(self, zalo_user: str) -> Footprint:
        found = Footprint(zalo_user)
        known = USER_FIELDS.read(self.redis.hgetall(self.k.zalo_user(zalo_user)))
        found.fc_user = known.get("fc_user_id", "")
        found.conversations = {known["fc_conversation_id"]} if known.get("fc_conversation_id") else set()
        found.conversations |= self._conversations_naming(zalo_user)
        found.lanes = self._lanes(found)
        for item in self._items(found):
            self._add_item(found, item)
        for conversation in found.conversations:
            found.zalo_messages |= {text(m) for m in self.redis.lrange(self.k.receipts_of(conversation), 0, -1)}
            found.zalo_messages |= {text(m) for m in self.redis.hkeys(self.k.replies(conversation))}
        self._follow_message_maps(found)
        found.known = self._known(found)
        return found

    def _known(self, found: Footprint) -> bool:
        if found.fc_user or found.conversations or found.items or found.zalo_messages or found.freshchat_messages:
            return True
        build = [getattr(self.k, family) for family, attribution in PERSONAL.items() if attribution == USER]
        return bool(self.redis.exists(*[name(found.user) for name in build]))

    def scan(self, pattern: str):
        """The connection's own keys matching `pattern` (the default's never reach another's)."""
        for name in self.redis.scan_iter(match=self.k.prefix + pattern, count=SCAN_BATCH):
            name = name.decode()
            if self.k.connection != keys.DEFAULT or not name.startswith(keys.ROOT + "c:"):
                yield name

    def _conversations_naming(self, zalo_user: str) -> set[str]:
        """Conversations replaced by newer ones still name the person in their own mapping."""
        names = list(self.scan("fcc:*"))
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hmget(name, *CONVERSATION_FIELDS.names("zalo_user_id"))
        start = len(self.k.conversation(""))
        return {name[start:] for name, who in zip(names, pipe.execute(), strict=True) if first(who) == zalo_user}

    def _lanes(self, found: Footprint) -> set[str]:
        local = [lane(found.user) for lane in USER_LANES]
        local += [lane(c) for c in found.conversations for lane in CONVERSATION_LANES]
        return {lane_for(self.k.connection, lane) for lane in local}

    def _items(self, found: Footprint) -> list[tuple[str, Item]]:
        """(lane, item) of everything queued in the person's lanes, dead or journaled."""
        items = []
        for lane in found.lanes:
            items += [(lane, Item.loads(raw)) for raw in self.redis.lrange(keys.lane(lane), 0, -1)]
        for raw in self.redis.hvals(self.k.dead):
            record = json.loads(raw)
            if record.get("lane") in found.lanes:
                items.append((record["lane"], Item.loads(json.dumps(record["item"]))))
        for raw in self.redis.hvals(self.k.journal_items):
            entry = json.loads(raw)
            if entry.get("lane") in found.lanes:
                found.items.add(entry["id"])
                self._add_id(found, entry["id"])
        return items

    def _add_item(self, found: Footprint, lane_item: tuple[str, Item]) -> None:
        _, item = lane_item
        found.items.add(item.id)
        self._add_id(found, item.id)
        payload = item.payload if isinstance(item.payload, dict) else {}
        if item.kind == "zalo":
            found.zalo_messages |= set(message_ids(payload))
        message = (payload.get("data") or {}).get("message") if item.kind == "freshchat" else None
        if isinstance(message, dict) and message.get("id"):
            found.freshchat_messages.add(str(message["id"]))

    @staticmethod
    def _add_id(found: Footprint, item_id: str) -> None:
        """An item id names a message when its event id is one (no `:` in it)."""
        source, _, event_id = item_id.partition(":")
        if event_id and ":" not in event_id:
            (found.zalo_messages if source == "zalo" else found.freshchat_messages).add(event_id)

    def _follow_message_maps(self, found: Footprint) -> None:
        """The other side of each known message, as the message maps and effects recorded it."""
        zalo, fc = sorted(found.zalo_messages), sorted(found.freshchat_messages)
        pipe = self.redis.pipeline(transaction=False)
        for m in zalo:
            pipe.get(self.k.message_from_zalo(m))
        for m in fc:
            pipe.get(self.k.message_from_freshchat(m))
        answers = pipe.execute()
        found.freshchat_messages |= {a.decode() for a in answers[: len(zalo)] if a}
        found.zalo_messages |= {a.decode() for a in answers[len(zalo) :] if a}


class Eraser:
    """Deletes a footprint; answers family -> how many were deleted."""

    def __init__(self, redis: Redis, k: Keys):
        self.redis = redis
        self.k = k

    def erase(self, found: Footprint) -> dict[str, int]:
        counts = {
            family: self._delete(self._personal(family, attribution, found)) for family, attribution in PERSONAL.items()
        }
        counts.update(self._lanes(found))
        counts["journal_entries"] = self._entries(self.k.journal_items, self.k.journal, found.items)
        counts["dead_letters"] = self._entries(self.k.dead, self.k.dead_order, found.items)
        counts["last_errors"] = self._errors(found)
        counts["conversation_owner"] = self._owners(found.conversations)
        return counts

    def _personal(self, family: str, attribution: str, found: Footprint) -> list[str]:
        build = getattr(self.k, family)
        if attribution == EVENT:
            events = {tuple(i.split(":", 1)) for i in found.items if ":" in i}
            events |= {("zalo", m) for m in found.zalo_messages} | {("freshchat", m) for m in found.freshchat_messages}
            return [build(source, event_id) for source, event_id in sorted(events)]
        if attribution == EFFECT:
            start, tokens = len(build("")), found.tokens()
            compound = [t for t in tokens if _SPLIT.search(t)]
            return [
                n
                for n in Tracer(self.redis, self.k).scan(build("*")[len(self.k.prefix) :])
                if _names(n[start:], tokens, compound)
            ]
        return [build(name) for name in sorted(found.names(attribution))]

    def _delete(self, names: list[str]) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.delete(name)
        return sum(pipe.execute()) if names else 0

    def _lanes(self, found: Footprint) -> dict[str, int]:
        lanes = sorted(found.lanes)
        pipe = self.redis.pipeline(transaction=True)
        for lane in lanes:
            pipe.llen(keys.lane(lane))
            pipe.delete(keys.lane(lane), keys.lease(lane))
            pipe.zrem(keys.DUE, lane)
            pipe.lrem(keys.WAKE, 0, lane)
        answers = pipe.execute() if lanes else []
        return {"lanes": sum(1 for n in answers[1::4] if n), "queued_items": sum(answers[::4])}

    def _entries(self, entries: str, order: str, ids: set[str]) -> int:
        if not ids:
            return 0
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(entries, *sorted(ids))
        pipe.zrem(order, *sorted(ids))
        return pipe.execute()[0]

    def _errors(self, found: Footprint) -> int:
        """The connection's last errors about the person's lanes or items, or naming them."""
        names = {found.user, found.fc_user, *found.conversations} - {""}
        pipe = self.redis.pipeline(transaction=False)
        for raw in self.redis.lrange(self.k.errors, 0, -1):
            said = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
            line = json.loads(said) if said.startswith("{") else {}
            ours = line.get("lane") in found.lanes or line.get("item") in found.items
            if ours or any(name in said for name in names):
                # the line exactly as read: redis-py types the value str, and sends bytes as they are
                pipe.lrem(self.k.errors, 1, raw)  # type: ignore[arg-type]
        return sum(pipe.execute())

    def _owners(self, conversations: set[str]) -> int:
        """The person's conversations in the owner hash of every FreshChat account, when this
        connection owns them (another connection's record of the same id is its own)."""
        if not conversations:
            return 0
        deleted = 0
        for owners in self.redis.scan_iter(match=keys.ROOT + "fcowner:*", count=SCAN_BATCH):
            for conversation in sorted(conversations):
                if self.redis.hget(owners, conversation) == self.k.connection.encode():
                    deleted += self.redis.hdel(owners, conversation)
        return deleted


def _names(effect: str, tokens: set[str], compound: list[str]) -> bool:
    """Whether one of `tokens` is a whole part of the effect's name, or whole parts of it: the
    `compound` tokens hold a `:` or `/` themselves (an anonymous visitor's "anon:<id>")."""
    parts = _SPLIT.split(effect)
    if tokens.intersection(parts):
        return True
    joined = ":" + ":".join(parts) + ":"
    return any(f":{_SPLIT.sub(':', token)}:" in joined for token in compound)
