"""Connections: one Zalo OA bound to one FreshChat account and topic (docs/interface.md §7).

The `default` connection comes from the environment (the ZALO_* and FRESHCHAT_* variables), so
a single-OA deployment changes nothing; more connections are stored in Redis, every secret
sealed (app/bridge/secrets_at_rest.py). Everything else in the bridge works on a connection's
*effective settings*: the deployment's Settings with that connection's credentials and options
in place (`Connection.settings`), so clients, relays and token keepers need no second way of
being configured.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from redis import Redis

from app.bridge.keys import CONNECTIONS, CONNECTIONS_STAMPS, CONNECTIONS_VERSION, DEFAULT
from app.bridge.replies import text
from app.bridge.secrets_at_rest import Sealer, UnreadableSecret, sealer_for
from app.connections.problem import Problem
from app.logs import mask_also

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("connections")
ID_PATTERN = re.compile(r"^[a-z0-9-]{1,40}$")
STORE = CONNECTIONS  # the default one is not stored
# What people read in answers and on the command line (app/wording.py says them in Vietnamese).
TEXTS = {
    "unknown": "no connection {id}",
    "bad_id": "1 to 40 characters of a-z, 0-9 and -",  # ID_PATTERN
    "key_again": "give the API key again: a stored key is only sent to the API URL it was stored with",
}

# Section -> {field: setting name}; the secrets among them are sealed at rest and never shown.
FIELDS = {
    "zalo": {
        "app_id": "zalo_app_id",
        "app_secret": "zalo_app_secret",
        "oa_id": "zalo_oa_id",
        "oa_secret_key": "zalo_oa_secret_key",
        "access_token": "zalo_access_token",
        "refresh_token": "zalo_refresh_token",
    },
    "freshchat": {
        "api_url": "freshchat_api_url",
        "api_key": "freshchat_api_key",
        "channel_id": "freshchat_channel_id",
        "webhook_public_key": "freshchat_webhook_public_key",
    },
    "options": {
        "resolve_notification": "resolve_notification",
        "resolve_notification_text": "resolve_notification_text",
        "receipts": "receipts",
        "hold_billed_replies": "hold_billed_replies",
        "satisfaction_survey": "satisfaction_survey",
        "agent_signature": "agent_signature",
        "customer_language": "customer_language",
        "agent_language": "agent_language",
        "merge_users_by_app": "merge_users_by_app",
        "freshchat_group_id": "freshchat_group_id",
    },
}
# In a stored record's freshchat section: the API URL its api_key was given with. A stored key
# only ever goes to that URL (docs/security.md, "A stored secret only goes to the URL ...").
KEY_URL = "api_key_url"
SECRETS = {
    ("zalo", "app_secret"),
    ("zalo", "oa_secret_key"),
    ("zalo", "access_token"),
    ("zalo", "refresh_token"),
    ("freshchat", "api_key"),
}


@dataclass(frozen=True)
class Connection:
    """A connection; a stored one's secrets stay sealed until its `settings` are first read
    (routing, listing and comparing read `public` only), then stay open in this object."""

    id: str
    name: str
    enabled: bool
    public: Settings = field(repr=False)  # the effective Settings, the sealed secrets left blank
    from_env: bool = False  # the `default` connection, defined by environment variables
    created_at: float = field(default=0.0, compare=False)
    sealed: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (setting, sealed value)
    unseal: Callable[[str], str] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def settings(self) -> Settings:
        """The effective Settings of this connection, its secrets unsealed (once)."""
        if not self.sealed:
            return self.public
        assert self.unseal is not None, "sealed secrets come with the function that opens them"
        # setting name -> value: the names are Settings fields known only at run time
        unsealed: dict[str, Any] = {name: self.unseal(value) for name, value in self.sealed}
        opened = dataclasses.replace(self.public, **unsealed)
        mask_also(opened.secrets())
        return opened

    @property
    def zalo_app_id(self) -> str:
        return self.public.zalo_app_id

    @property
    def zalo_oa_id(self) -> str:
        return self.public.zalo_oa_id

    @property
    def freshchat_account(self) -> str:
        return freshchat_account(self.public)

    def section(self, name: str) -> dict:
        """One section of the connection as stored (clear values)."""
        return {f: getattr(self.settings, s) for f, s in FIELDS[name].items()}


def freshchat_account(settings: Settings) -> str:
    """Connections with the same API URL share one FreshChat account (and its rate limit)."""
    return settings.freshchat_api_url.rstrip("/").lower()


class ForeignUrl(ValueError):
    """A stored secret would go to another URL than the one it was stored with."""


def same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def stored_key_for(settings: Settings, url: str) -> str:
    """The FreshChat API key stored in `settings`, for a call to `url`: only the URL it was
    stored with gets it (ForeignUrl otherwise). The Zalo secrets need no such check: Zalo's
    URLs are the deployment's (ZALO_API_BASE_URL, ZALO_OAUTH_BASE_URL), never a connection's."""
    if not same_url(url, settings.freshchat_api_url):
        raise ForeignUrl(url)
    return settings.freshchat_api_key


def _key_is_bound(freshchat: dict) -> bool:
    """Whether the section's api_key (if any) was given with its api_url."""
    url = freshchat.get("api_url", "")
    return not freshchat.get("api_key") or same_url(freshchat.get(KEY_URL, url), url)


def default_connection(settings: Settings) -> Connection:
    return Connection(DEFAULT, "Default (environment)", True, settings, from_env=True)


def build(base_settings: Settings, record: dict, unseal: Callable[[str], str] | None = None) -> Connection:
    """A connection from its stored record: secrets already unsealed, or, given `unseal`,
    still sealed and opened by it when the connection's settings are first read. A field the
    record lacks takes the Settings *default*, never the deployment's value: a stored
    connection must not inherit the default connection's credentials or token pair."""
    blank = {f.name: f.default for f in dataclasses.fields(base_settings)}
    overrides = {
        setting: record.get(section, {}).get(f, blank[setting])
        for section, fields in FIELDS.items()
        for f, setting in fields.items()
    }
    sealed = tuple((FIELDS[s][f], overrides[FIELDS[s][f]]) for s, f in sorted(SECRETS) if overrides[FIELDS[s][f]])
    if unseal is not None:
        overrides |= {name: blank[name] for name, _ in sealed}
    return Connection(
        record["id"],
        record.get("name") or record["id"],
        bool(record.get("enabled", True)),
        dataclasses.replace(base_settings, **overrides),
        created_at=float(record.get("created_at") or 0),
        sealed=sealed if unseal is not None else (),
        unseal=unseal,
    )


class ConnectionStore:
    """Stored connections (not the default one), secrets sealed. Every write also gives the
    connection a new change stamp and the store a new version (one transaction), so a registry
    re-reads only what changed, and only when the version moved."""

    def __init__(self, redis: Redis, base_settings: Settings, sealer: Sealer):
        self.redis = redis
        self.base = base_settings
        self.sealer = sealer

    def records(self) -> dict[str, dict]:
        """Every stored connection that can be read, secrets unsealed; one whose secrets no key
        opens is left out (and logged), so it cannot take every other connection down with it."""
        found = {}
        for key, raw in self.redis.hgetall(STORE).items():
            try:
                found[text(key)] = self._open(json.loads(raw))
            except UnreadableSecret:
                _unreadable(text(key))
        return found

    def get(self, connection_id: str) -> Connection | None:
        raw = self.redis.hget(STORE, connection_id)
        return self.connection(raw) if raw else None

    def all(self) -> list[Connection]:
        """Every readable stored connection by id, secrets sealed until used."""
        return list(self.readable(dict(sorted(self.redis.hgetall(STORE).items()))).values())

    def connection(self, raw: bytes | str) -> Connection:
        """A stored record as a connection whose secrets are unsealed when first used; a secret
        no key opens (its MAC checked, nothing decrypted) raises UnreadableSecret now."""
        record = self._bind(json.loads(raw))
        if not all(self.sealer.opens(value) for value in self._secrets(record)):
            raise UnreadableSecret(record.get("id", ""))
        return build(self.base, record, self.sealer.unseal)

    def readable(self, raws: dict) -> dict[str, Connection]:
        """{id: connection} of the stored records given, the unreadable ones left out (logged)."""
        found = {}
        for key, raw in raws.items():
            cid = key.decode() if isinstance(key, bytes) else key
            try:
                found[cid] = self.connection(raw)
            except UnreadableSecret:
                _unreadable(cid)
        return found

    def changes(self, known: dict[str, bytes]) -> tuple[bytes | None, dict[str, bytes], dict[str, bytes | None]]:
        """(version, {id: stamp} of every stored connection, {id: record or None when gone} of
        those whose stamp is not the one `known`): a version read, two small reads, then the
        records that changed only."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(CONNECTIONS_VERSION)
        pipe.hgetall(CONNECTIONS_STAMPS)
        pipe.hkeys(STORE)
        version, stamps, ids = pipe.execute()
        stamps = {i.decode(): stamps.get(i, b"") for i in ids}
        changed = sorted(i for i, stamp in stamps.items() if known.get(i) != stamp)
        records = dict(zip(changed, self.redis.hmget(STORE, changed), strict=True)) if changed else {}
        return version, stamps, records | {i: None for i in known if i not in stamps}

    def version(self) -> bytes | str | None:
        """Changes with every write of any stored connection (one GET)."""
        return self.redis.get(CONNECTIONS_VERSION)

    def put(self, record: dict) -> None:
        """Store a record, its FreshChat API key bound to the URL it was given with (KEY_URL).
        A record without KEY_URL holds a key given now, with the record's URL; one whose URL
        is not its key's (a URL changed, its key not given again) raises ForeignUrl."""
        record = dict(record, created_at=record.get("created_at") or time.time())
        freshchat = record.get("freshchat", {})
        if not _key_is_bound(freshchat):
            raise ForeignUrl(freshchat.get("api_url", ""))
        record["freshchat"] = {**freshchat, KEY_URL: freshchat.get("api_url", "")}
        stamp = secrets.token_hex(8)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(STORE, record["id"], json.dumps(self._seal(record), ensure_ascii=False))
        pipe.hset(CONNECTIONS_STAMPS, record["id"], stamp)
        pipe.set(CONNECTIONS_VERSION, stamp)
        pipe.execute()

    def remove(self, connection_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(STORE, connection_id)
        pipe.hdel(CONNECTIONS_STAMPS, connection_id)
        pipe.set(CONNECTIONS_VERSION, secrets.token_hex(8))
        return bool(pipe.execute()[0])

    def _seal(self, record: dict) -> dict:
        return self._map_secrets(record, self.sealer.seal)

    def _open(self, record: dict) -> dict:
        """The record with its secrets unsealed (and its key bound, `_bind`)."""
        return self._bind(self._map_secrets(record, self.sealer.unseal))

    @staticmethod
    def _bind(record: dict) -> dict:
        """A key stored before keys were bound to their URL is taken as its URL's; a key bound
        to another URL than the record's (a record written behind the bridge's back) is
        dropped: it never goes to that URL. Decided on clear fields: sealed or not."""
        record = {k: (dict(v) if isinstance(v, dict) else v) for k, v in record.items()}
        freshchat = record.get("freshchat")
        if isinstance(freshchat, dict):
            if not _key_is_bound(freshchat):
                log.error("connections.key_not_bound", extra={"connection": record.get("id", "")})
                freshchat["api_key"] = ""
            freshchat.setdefault(KEY_URL, freshchat.get("api_url", ""))
        return record

    @staticmethod
    def _secrets(record: dict) -> list[str]:
        return [v for section, f in SECRETS if (v := record.get(section, {}).get(f))]

    @staticmethod
    def _map_secrets(record: dict, fn: Callable[[str], str]) -> dict:
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in record.items()}
        for section, f in SECRETS:
            value = out.get(section, {}).get(f)
            if value:
                out[section][f] = fn(value)
        return out


def _unreadable(connection_id: str) -> None:
    log.critical(
        "connections.unreadable",
        extra={
            "connection": connection_id,
            "action": "put the old key back in ENCRYPTION_KEY, or add the connection again",
        },
    )


@dataclass(frozen=True)
class _Snapshot:
    """What a registry knows at one moment, with its indexes; replaced whole, never changed."""

    version: bytes | str | None
    stamps: dict[str, bytes]  # every stored connection's change stamp, readable or not
    found: dict[str, Connection]  # the readable stored connections, by id
    everyone: list[Connection]  # the default one first, then by id
    by_oa: dict[tuple[str, str], Connection]  # (app id, OA id) -> the first connection naming both
    by_app: dict[str, list[Connection]]  # app id -> its connections
    catch_all: dict[str, list[Connection]]  # app id -> its connections without an OA id
    by_account: dict[str, list[Connection]]  # FreshChat account -> its connections


def _snapshot(default: Connection, version, stamps: dict, found: dict[str, Connection]) -> _Snapshot:
    everyone = [default, *(found[i] for i in sorted(found))]
    by_oa: dict[tuple[str, str], Connection] = {}
    by_app: dict[str, list[Connection]] = {}
    catch_all: dict[str, list[Connection]] = {}
    by_account: dict[str, list[Connection]] = {}
    for c in everyone:
        if c.zalo_oa_id:
            by_oa.setdefault((c.zalo_app_id, c.zalo_oa_id), c)
        else:
            catch_all.setdefault(c.zalo_app_id, []).append(c)
        by_app.setdefault(c.zalo_app_id, []).append(c)
        by_account.setdefault(c.freshchat_account, []).append(c)
    return _Snapshot(version, stamps, found, everyone, by_oa, by_app, catch_all, by_account)


class Registry:
    """Every connection, the default one first, with indexes for routing. Every few seconds it
    asks Redis for the store's version (one GET) and, only when that moved, re-reads the
    connections whose stamp changed: a connection added or changed through the API reaches
    every web and worker process within REFRESH_SECONDS, and a thousand unchanged connections
    cost nothing. Secrets are unsealed when a connection's settings are first used."""

    REFRESH_SECONDS = 2.0

    def __init__(self, store: ConnectionStore, base_settings: Settings):
        self.store = store
        self.default = default_connection(base_settings)
        self._snap: _Snapshot | None = None
        self._check_at = 0.0
        self._reading = threading.Lock()

    def _current(self) -> _Snapshot:
        if self._snap is not None and time.monotonic() < self._check_at:
            return self._snap
        with self._reading:  # one thread asks Redis; the others wait for its answer, not older ones
            if self._snap is None or time.monotonic() >= self._check_at:
                self._snap = self._read(self._snap)
                self._check_at = time.monotonic() + self.REFRESH_SECONDS
            return self._snap

    def _read(self, snap: _Snapshot | None) -> _Snapshot:
        if snap is not None and self.store.version() == snap.version:
            return snap
        version, stamps, changed = self.store.changes(snap.stamps if snap else {})
        found = {i: c for i, c in (snap.found if snap else {}).items() if i not in changed}
        found |= self.store.readable({i: raw for i, raw in changed.items() if raw is not None})
        return _snapshot(self.default, version, stamps, found)

    def forget_cache(self) -> None:
        """Ask Redis at the next look-up, not up to REFRESH_SECONDS later."""
        self._check_at = 0.0

    def all(self) -> list[Connection]:
        return list(self._current().everyone)

    def get(self, connection_id: str) -> Connection | None:
        if connection_id == DEFAULT:
            return self.default
        return self._current().found.get(connection_id)

    def for_zalo(self, app_id: str, oa_id: str) -> Connection | None:
        """The enabled connection of this Zalo app and OA. A connection without an OA id (a
        deployment that never set ZALO_OA_ID) matches any OA of its app."""
        return _for_zalo(self._current(), app_id, oa_id)

    def zalo_candidates(self, app_id: str, oa_ids: list[str]) -> list[Connection]:
        """The enabled connections that may have sent a Zalo event of this app naming these OAs
        (its sender and recipient), from one snapshot: the connection of an OA the event names
        exactly wins over a catch-all one; an event naming no OA may be any of the app's."""
        snap = self._current()
        if not oa_ids:
            return [c for c in snap.by_app.get(app_id, ()) if c.enabled]
        found = [_for_zalo(snap, app_id, oa_id) for oa_id in oa_ids]
        exact = [c for c, oa_id in zip(found, oa_ids, strict=True) if c and c.zalo_oa_id == oa_id]
        return (exact or [c for c in found if c])[:1]

    def on_account(self, account: str) -> list[Connection]:
        """Every connection on this FreshChat account (`freshchat_account`), enabled or not."""
        return list(self._current().by_account.get(account, ()))

    def sharing_account(self, connection: Connection) -> list[Connection]:
        """Enabled connections on the same FreshChat account as `connection` (itself first)."""
        others = [c for c in self.on_account(connection.freshchat_account) if c.enabled and c.id != connection.id]
        return [connection, *others]


def _for_zalo(snap: _Snapshot, app_id: str, oa_id: str) -> Connection | None:
    exact = snap.by_oa.get((app_id, oa_id)) if oa_id else None
    if exact is not None:  # a disabled connection's OA is nobody else's, catch-all or not
        return exact if exact.enabled else None
    return next((c for c in snap.catch_all.get(app_id, ()) if c.enabled), None)


class Connections:
    """Every connection as an operator's request reads it (the JSON API, the console, `flask
    bridge`): straight from Redis, not through the registry's cache, so a request sees the change
    made by the one before it; the default one first. An unknown id is a 404."""

    def __init__(self, redis: Redis, settings: Settings):
        self.store = ConnectionStore(redis, settings, sealer_for(settings))
        self.default = default_connection(settings)

    def all(self) -> list[Connection]:
        return [self.default, *self.store.all()]

    def find(self, connection_id: str) -> Connection | None:
        return self.default if connection_id == DEFAULT else self.store.get(connection_id)

    def get(self, connection_id: str) -> Connection:
        found = self.find(connection_id)
        if found is None:
            raise Problem(404, TEXTS["unknown"].format(id=connection_id))
        return found
