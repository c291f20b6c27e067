"""Who is who: Zalo users <-> FreshChat users and conversations, and our own sent ids."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import WatchError
from redis.typing import EncodableT

from app.bridge.keys import DEFAULT_KEYS, Keys, person
from app.bridge.replies import text
from app.bridge.scripts import LuaScript

LAST_SEEN_EVERY_SECONDS = 3600  # FreshChat's "last_seen" property is refreshed at most hourly


def seen_due(known: dict) -> bool:
    """FreshChat's "last_seen" of this user (their hash, `known`) is due a refresh: the last was
    an hour ago or more. Its time is a field of the hash the relay reads anyway (no key of its
    own, no round trip of its own), written with the message's record (`touch`)."""
    return time.time() - int(known.get("seen_at") or 0) >= LAST_SEEN_EVERY_SECONDS


SENT_TEXT = "t:"  # marks a stored snippet; older records hold "1" and no text
SNIPPET_CHARS = 100  # enough to quote a reply back to the agent
RECEIPT_TTL = 8 * 86400  # Zalo reports receipts within days; a day past the 7-day reply window
RECEIPTS_KEPT = 50  # per conversation: a receipts note looks at the replies sent last
RECORD = "|"  # separates a receipt record's parts (receipt_add.lua)
ADD, MARK = LuaScript("receipt_add"), LuaScript("receipt_mark")
STATES = ("sent", "received", "seen")  # how far a sent message got, in order
AGENT_NAME_SECONDS = 3600  # an agent renamed in FreshChat signs with the new name within the hour
UNKNOWN_AGENT_SECONDS = 300  # a bot or removed agent is asked about again after a while
# A conversation's Zalo user, as a worker process last read it, is used for a minute: a
# conversation never changes hands, and every reply in it would otherwise read it again.
CONVERSATION_USER_SECONDS = 60
CONVERSATION_USERS_KEPT = 10000  # per process and connection; then the memo starts afresh


class Fields:
    """The field names of a mapping hash. Each byte is paid per user or conversation, so a
    field is stored under a short name; the bridge up to fc5f0b4 stored the long ones (the names
    callers use), which are still read, and rewritten short the first time they are (`legacy`).
    Where both exist the short one wins: it was written later. Other names are kept as given."""

    def __init__(self, short: dict[str, str], prefixes: dict[str, str] | None = None):
        self.short = short
        self.long = {v: k for k, v in short.items()}
        self.prefixes = prefixes or {}  # long prefix -> short prefix

    def stored(self, name: str) -> str:
        """The name a field is written under."""
        if name in self.short:
            return self.short[name]
        for long, short in self.prefixes.items():
            if name.startswith(long):
                return short + name[len(long) :]
        return name

    def named(self, stored: str) -> str:
        """The name callers know a stored field by."""
        if stored in self.long:
            return self.long[stored]
        for long, short in self.prefixes.items():
            if stored.startswith(short):
                return long + stored[len(short) :]
        return stored

    def write(self, fields: dict[str, str]) -> dict[EncodableT, EncodableT]:
        return {self.stored(name): value for name, value in fields.items()}

    def read(self, raw: dict) -> dict[str, str]:
        """A hash as callers know it, short names winning over legacy ones."""
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        legacy = {k: v for k, v in fields.items() if self.stored(k) != k}
        current = {self.named(k): v for k, v in fields.items() if k not in legacy}
        return {**legacy, **current}

    def legacy(self, raw: dict) -> list[str]:
        """The long names a hash still holds."""
        return [k.decode() for k in raw if self.stored(k.decode()) != k.decode()]

    def names(self, name: str) -> tuple[str, str]:
        """Both names a field may be stored under, the current one first (HMGET)."""
        return self.stored(name), name


# fc5f0b4's names -> today's. prop:<name>: a FreshChat user property kept (user_properties.py).
USER_FIELDS = Fields(
    {
        "fc_user_id": "u",
        "fc_conversation_id": "c",
        "created": "n",
        "last_ts": "t",
        "last_msg_id": "m",
        "last_reply_ts": "r",
        "zalo_conversation_id": "z",
        "reply_refused": "x",
        "user_id_by_app": "a",
        "seen_at": "s",
    },
    prefixes={"prop:": "p:"},
)
CONVERSATION_FIELDS = Fields({"zalo_user_id": "u", "status": "s", "agent_id": "g"})


def first(values) -> str:
    """The first of HMGET's answers for `Fields.names` that is set ("" when none is)."""
    return next((v.decode() for v in values if v is not None), "")


class Mapping:
    """Small Redis hashes: bounded memory per known user (no per-message growth)."""

    def __init__(
        self,
        redis: Redis,
        sent_ttl: int = 7 * 86400,
        keys: Keys = DEFAULT_KEYS,
        owners: str = "",
        shared: Callable[[], bool] = lambda: True,
    ):
        self.redis = redis
        self.keys = keys
        self.owners = owners  # the account's conversation-owner hash (keys.conversation_owner)
        self.shared = shared  # whether other connections share the account: else owners are not written
        self.sent_ttl = sent_ttl  # echoes arrive within seconds; the dedupe window is plenty
        self._users_of: dict[str, tuple[float, str]] = {}  # conversation -> (read at, Zalo user)

    def zalo_user(self, zalo_user_id: str) -> dict:
        return self._read(USER_FIELDS, self.keys.zalo_user(zalo_user_id))

    def zalo_user_in(self, pipe, zalo_user_id: str) -> Callable[[Any], dict]:
        """`zalo_user` as part of `pipe` (a send's in-flight record: Effects.take_off); hand
        back how to read its answer."""
        key = self.keys.zalo_user(zalo_user_id)
        pipe.hgetall(key)
        return lambda raw: self._known(USER_FIELDS, key, raw)

    def set_zalo_user(self, zalo_user_id: str, **fields: str) -> None:
        self.redis.hset(self.keys.zalo_user(zalo_user_id), mapping=USER_FIELDS.write(fields))

    def _read(self, names: Fields, key: str) -> dict:
        return self._known(names, key, self.redis.hgetall(key))

    def _known(self, names: Fields, key: str, raw: dict) -> dict:
        legacy = names.legacy(raw)
        if legacy:  # written by fc5f0b4 or before: stored short from now on
            self._rewrite(names, key, {name: raw[name.encode()] for name in legacy})
        return names.read(raw)

    def _rewrite(self, names: Fields, key: str, legacy: dict[str, bytes | str]) -> None:
        """Long fields as read, stored short. HSETNX: a short field written meanwhile is newer;
        WATCH and EXISTS: a hash deleted meanwhile (a person forgotten) stays deleted."""
        with self.redis.pipeline() as pipe:
            try:
                pipe.watch(key)
                if not pipe.exists(key):
                    return
                pipe.multi()
                for name, value in legacy.items():
                    pipe.hsetnx(key, names.stored(name), value)
                pipe.hdel(key, *legacy)
                pipe.execute()
            except WatchError:
                return  # changed meanwhile: rewritten on a later read

    def link_conversation(self, zalo_user_id: str, conversation_id: str) -> None:
        """A conversation of the user's (an unknown status is open: only changes are written)."""
        pipe = self.redis.pipeline()
        pipe.hset(self.keys.zalo_user(zalo_user_id), USER_FIELDS.stored("fc_conversation_id"), conversation_id)
        pipe.hset(self.keys.conversation(conversation_id), CONVERSATION_FIELDS.stored("zalo_user_id"), zalo_user_id)
        # So the account's webhook finds this connection among those sharing it. A conversation
        # linked while the account had one connection has none: that webhook looks for its
        # `fcc:` mapping in each connection of the account instead (about 100 B per conversation saved).
        if self.owners and self.shared():
            pipe.hset(self.owners, conversation_id, self.keys.connection)
        pipe.execute()

    def conversation(self, conversation_id: str) -> dict:
        return self._read(CONVERSATION_FIELDS, self.keys.conversation(conversation_id))

    def conversation_user(self, conversation_id: str) -> str:
        """The Zalo user of a FreshChat conversation ("" when unknown), read from Redis at most
        once a minute per process (CONVERSATION_USER_SECONDS)."""
        read_at, user = self._users_of.get(conversation_id, (0.0, ""))
        if user and time.monotonic() - read_at < CONVERSATION_USER_SECONDS:
            return user
        user = self.conversation(conversation_id).get("zalo_user_id", "")
        if user:
            if len(self._users_of) >= CONVERSATION_USERS_KEPT:
                self._users_of.clear()
            self._users_of[conversation_id] = (time.monotonic(), user)
        return user

    def set_conversation(self, conversation_id: str, **fields: str) -> None:
        self.redis.hset(self.keys.conversation(conversation_id), mapping=CONVERSATION_FIELDS.write(fields))

    def touch(
        self, zalo_user_id: str, last_ts: str | None = None, last_msg_id: str = "", seen: bool = False, pipe=None
    ) -> None:
        """Record the newest relayed time and message (if given): the user's last interaction,
        which Zalo's reply windows count from; `seen`: FreshChat's "last_seen" is refreshed now
        (`seen_due` says when next). With `pipe`, as part of it."""
        fields: dict = {"last_ts": last_ts, "last_msg_id": last_msg_id} if last_ts else {}
        fields |= {"seen_at": str(int(time.time()))} if seen else {}
        if fields:
            (self.redis if pipe is None else pipe).hset(
                self.keys.zalo_user(zalo_user_id), mapping=USER_FIELDS.write(fields)
            )

    def seen_now(self, zalo_user_id: str) -> None:
        """FreshChat's "last_seen" was just written (e.g. at user creation)."""
        self.touch(zalo_user_id, seen=True)

    def forgotten(self) -> frozenset[str]:
        """FreshChat users of people forgotten on request (app/operations/forget.py)."""
        return frozenset(text(m) for m in self.redis.smembers(self.keys.forgotten))

    def agent_name(self, agent_id: str) -> str | None:
        """A cached agent first name ("" = FreshChat does not know the agent), None when not cached."""
        raw = self.redis.get(self.keys.agent_name(agent_id))
        return None if raw is None else text(raw)

    def remember_agent_name(self, agent_id: str, first_name: str) -> None:
        ttl = AGENT_NAME_SECONDS if first_name else UNKNOWN_AGENT_SECONDS
        self.redis.set(self.keys.agent_name(agent_id), first_name, ex=ttl)

    def remember_sent(self, zalo_message_id: str, pipe=None, text: str = "") -> None:
        """Our own sends come back as oa_send_* echoes; this is how we recognise them. The
        start of the text lets a user's later quote of it show what they answer."""
        value = SENT_TEXT + (text or "")[:SNIPPET_CHARS]  # never empty, even for an attachment
        (pipe or self.redis).set(self.keys.sent(zalo_message_id), value, ex=self.sent_ttl)

    def is_sent_by_us(self, zalo_message_id: str) -> bool:
        return bool(self.redis.exists(self.keys.sent(zalo_message_id)))

    def sent_text(self, zalo_message_id: str) -> str | None:
        """The start of a message we sent ("" if it had no text or was recorded without it),
        None when we did not send it."""
        raw = self.redis.get(self.keys.sent(zalo_message_id))
        if raw is None:
            return None
        value = text(raw)
        return value[len(SENT_TEXT) :] if value.startswith(SENT_TEXT) else ""

    # -- replies and what became of them (app/relay/agent_view.py, windows.py)

    def replied(self, zalo_user_id: str, at_ms: int, pipe=None) -> None:
        """An agent's reply reached the user: it answers every message before it."""
        key, name = self.keys.zalo_user(zalo_user_id), USER_FIELDS.stored("last_reply_ts")
        (self.redis if pipe is None else pipe).hset(key, name, str(at_ms))

    def remember_receipt(self, pipe, zalo_message_id: str, conversation_id: str, quota: str) -> None:
        """A sent message's record, for its receipts and its cost; `quota` names what paid. One
        field of the conversation's `replies` hash, which keeps the RECEIPTS_KEPT latest (its
        text is the sent-record's, `sent_text`)."""
        record = RECORD.join((str(int(time.time() * 1000)), "sent", "", "", quota))
        ADD(self.redis, client=pipe, **self._receipts(conversation_id), msg_id=zalo_message_id, record=record)

    def _receipts(self, conversation_id: str) -> dict:
        return {"replies": self.keys.replies(conversation_id), "kept": RECEIPTS_KEPT, "ttl": RECEIPT_TTL}

    def receipt(self, conversation_id: str, zalo_message_id: str) -> dict:
        """A sent message's record ({} when not kept): its state, when Zalo reported it
        (`at`), what agents were told (`reported`) and the quota that paid."""
        raw = self.redis.hget(self.keys.replies(conversation_id), zalo_message_id)
        return _record(raw) if raw else {}

    def quotas(self, conversation_id: str, zalo_message_ids) -> list[str]:
        """What paid for each of these sent messages ("" when not kept)."""
        raws = self.redis.hmget(self.keys.replies(conversation_id), list(zalo_message_ids)) if zalo_message_ids else []
        return [_record(raw)["quota"] if raw else "" for raw in raws]

    def advance_receipts(self, conversation_id: str, zalo_message_ids: list[str], state: str, at_ms: str) -> int:
        """Move sent messages on to `state` (never back); how many moved."""
        return self._mark(conversation_id, "state", state, at_ms, zalo_message_ids)

    def receipts_in(self, conversation_id: str) -> list[tuple[str, dict]]:
        """The conversation's last sent messages, oldest first, with their records."""
        raw = self.redis.hgetall(self.keys.replies(conversation_id))
        records = [(text(i), _record(r)) for i, r in raw.items()]
        return sorted(records, key=lambda pair: pair[1]["sent_at"])

    def mark_reported(self, conversation_id: str, reported: dict[str, str]) -> None:
        """Agents were told these states (zalo message id -> state)."""
        for state in STATES:
            ids = [i for i, told in reported.items() if told == state]
            if ids:
                self._mark(conversation_id, "reported", state, "", ids)

    def _mark(self, conversation_id: str, slot: str, state: str, at_ms: str, ids: list[str]) -> int:
        replies = self.keys.replies(conversation_id)
        return MARK(self.redis, replies=replies, slot=slot, state=state, at=at_ms, ids=" ".join(ids))


def _record(raw: bytes | str) -> dict:
    """A `replies` field (receipt_add.lua) as a dict."""
    sent_at, state, at, reported, quota = text(raw).split(RECORD, 4)
    return {"sent_at": int(sent_at or 0), "state": state, "at": at, "reported": reported, "quota": quota}


CLAIMED = "?"  # a person key holding `?<claimant>` is being created by that claimant


class People:
    """One person across the OAs of one Zalo app on one FreshChat account (the option
    merge_users_by_app): user_id_by_app -> the FreshChat user every merging connection of that
    app and account uses (keys.person). A lane serialises one OA's events of a user; two OAs
    have two lanes, so a first message claims the person first (SET NX with a TTL): concurrent
    first messages through two OAs create one FreshChat user, the later one waits and finds it."""

    def __init__(self, redis: Redis, app_id: str, freshchat_account: str):
        self.redis = redis
        self.app_id = app_id
        self.account = freshchat_account

    def _key(self, user_id_by_app: str) -> str:
        return person(self.app_id, self.account, user_id_by_app)

    def claim(self, user_id_by_app: str, claimant: str, ttl_seconds: int) -> str | None:
        """The person's FreshChat user id; "" when `claimant` holds the claim (again: a retry of
        its own item) and is to create it; None while another claimant does."""
        key, mine = self._key(user_id_by_app), CLAIMED + claimant
        pipe = self.redis.pipeline()  # MULTI: the value read is the one the SET left
        pipe.set(key, mine, nx=True, ex=ttl_seconds)
        pipe.get(key)
        current = (pipe.execute()[1] or b"").decode()
        if current == mine:
            return ""
        return None if not current or current.startswith(CLAIMED) else current

    def settle(self, user_id_by_app: str, claimant: str, fc_user_id: str) -> str:
        """Record the user created under the claim (for good: bounded per person); the person's
        user, another one only if the claim expired meanwhile and someone else settled first."""
        key = self._key(user_id_by_app)

        def write(pipe) -> str:
            current = (pipe.get(key) or b"").decode()
            if current and not current.startswith(CLAIMED):
                return current
            pipe.multi()
            pipe.set(key, fc_user_id)
            return fc_user_id

        # redis-py types `transaction` as if value_from_callable did not exist (func -> None)
        return self.redis.transaction(write, key, value_from_callable=True)  # type: ignore[arg-type,return-value]

    def adopt(self, user_id_by_app: str, fc_user_id: str) -> None:
        """A user the connection already had becomes the person's, unless the person has one
        (or one is being created): existing users are never merged into each other."""
        self.redis.set(self._key(user_id_by_app), fc_user_id, nx=True)


class MessageMap:
    """Zalo message id <-> FreshChat message id, for messages the bridge relayed either way, so
    a reply on one side can name the message it answers on the other (Zalo's quote_msg_id,
    FreshChat's in_reply_to). Two small keys per message, expiring with the dedupe window.

    A FreshChat message sent as several Zalo messages (one per part) keeps its first Zalo
    message on the FreshChat side: that is the one a quote of it should point at."""

    def __init__(self, redis: Redis, ttl: int = 7 * 86400, keys: Keys = DEFAULT_KEYS):
        self.redis = redis
        self.ttl = ttl
        self.keys = keys

    def link(self, zalo_message_id: str, fc_message_id: str, pipe=None) -> None:
        """Both directions; with `pipe`, in the caller's round trip (e.g. an effect's record)."""
        if not (zalo_message_id and fc_message_id):
            return  # a partner answered without an id: nothing to point at later
        target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        target.set(self.keys.message_from_zalo(zalo_message_id), fc_message_id, ex=self.ttl)
        target.set(self.keys.message_from_freshchat(fc_message_id), zalo_message_id, ex=self.ttl, nx=True)
        if pipe is None:
            target.execute()

    def freshchat_id(self, zalo_message_id: str) -> str:
        """The FreshChat message of a Zalo message, "" when the bridge did not relay it."""
        return self._get(self.keys.message_from_zalo(zalo_message_id))

    def zalo_id(self, fc_message_id: str) -> str:
        """The (first) Zalo message of a FreshChat message, "" when the bridge did not relay it."""
        return self._get(self.keys.message_from_freshchat(fc_message_id))

    def _get(self, key: str) -> str:
        raw = self.redis.get(key)
        return text(raw) if raw else ""
