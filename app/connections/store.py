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
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from redis import Redis

from app.bridge.keys import CONNECTIONS, DEFAULT
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
    id: str
    name: str
    enabled: bool
    settings: Settings  # the effective Settings of this connection
    from_env: bool = False  # the `default` connection, defined by environment variables
    created_at: float = field(default=0.0, compare=False)

    @property
    def zalo_app_id(self) -> str:
        return self.settings.zalo_app_id

    @property
    def zalo_oa_id(self) -> str:
        return self.settings.zalo_oa_id

    @property
    def freshchat_account(self) -> str:
        return freshchat_account(self.settings)

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


def build(base_settings, record: dict) -> Connection:
    """A connection from its stored record (secrets already unsealed). A field the record lacks
    takes the Settings *default*, never the deployment's value: a stored connection must not
    inherit the default connection's credentials or token pair."""
    blank = {f.name: f.default for f in dataclasses.fields(base_settings)}
    overrides = {
        setting: record.get(section, {}).get(f, blank[setting])
        for section, fields in FIELDS.items()
        for f, setting in fields.items()
    }
    settings = dataclasses.replace(base_settings, **overrides)
    return Connection(
        record["id"],
        record.get("name") or record["id"],
        bool(record.get("enabled", True)),
        settings,
        created_at=float(record.get("created_at") or 0),
    )


class ConnectionStore:
    """Stored connections (not the default one), secrets sealed."""

    def __init__(self, redis: Redis, base_settings, sealer: Sealer):
        self.redis = redis
        self.base = base_settings
        self.sealer = sealer

    def records(self) -> dict[str, dict]:
        """Every stored connection that can be read; one whose secrets no key opens is left out
        (and logged), so it cannot take every other connection down with it."""
        found = {}
        for key, raw in self.redis.hgetall(STORE).items():
            try:
                found[key.decode()] = self._open(json.loads(raw))
            except UnreadableSecret:
                log.critical(
                    "connections.unreadable",
                    extra={
                        "connection": key.decode(),
                        "action": "put the old key back in ENCRYPTION_KEY, or add the connection again",
                    },
                )
        return found

    def get(self, connection_id: str) -> Connection | None:
        raw = self.redis.hget(STORE, connection_id)
        return build(self.base, self._open(json.loads(raw))) if raw else None

    def all(self) -> list[Connection]:
        return [build(self.base, r) for _, r in sorted(self.records().items())]

    def put(self, record: dict) -> None:
        """Store a record, its FreshChat API key bound to the URL it was given with (KEY_URL).
        A record without KEY_URL holds a key given now, with the record's URL; one whose URL
        is not its key's (a URL changed, its key not given again) raises ForeignUrl."""
        record = dict(record, created_at=record.get("created_at") or time.time())
        freshchat = record.get("freshchat", {})
        if not _key_is_bound(freshchat):
            raise ForeignUrl(freshchat.get("api_url", ""))
        record["freshchat"] = {**freshchat, KEY_URL: freshchat.get("api_url", "")}
        self.redis.hset(STORE, record["id"], json.dumps(self._seal(record), ensure_ascii=False))

    def remove(self, connection_id: str) -> bool:
        return bool(self.redis.hdel(STORE, connection_id))

    def _seal(self, record: dict) -> dict:
        return self._map_secrets(record, self.sealer.seal)

    def _open(self, record: dict) -> dict:
        """The record with its secrets unsealed. A key stored before keys were bound to their
        URL is taken as its URL's; a key bound to another URL than the record's (a record
        written behind the bridge's back) is dropped: it never goes to that URL."""
        record = self._map_secrets(record, self.sealer.unseal)
        freshchat = record.get("freshchat")
        if isinstance(freshchat, dict):
            if not _key_is_bound(freshchat):
                log.error("connections.key_not_bound", extra={"connection": record.get("id", "")})
                freshchat["api_key"] = ""
            freshchat.setdefault(KEY_URL, freshchat.get("api_url", ""))
        return record

    @staticmethod
    def _map_secrets(record: dict, fn) -> dict:
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in record.items()}
        for section, f in SECRETS:
            value = out.get(section, {}).get(f)
            if value:
                out[section][f] = fn(value)
        return out


class Registry:
    """Every connection, the default one first; re-read from Redis at most every few seconds,
    so a connection added through the API reaches every web and worker process quickly."""

    REFRESH_SECONDS = 2.0

    def __init__(self, store: ConnectionStore, base_settings):
        self.store = store
        self.default = default_connection(base_settings)
        self._cached: tuple[float, dict[str, Connection]] = (0.0, {})

    def _all(self) -> dict[str, Connection]:
        read_at, found = self._cached
        if time.monotonic() - read_at > self.REFRESH_SECONDS:
            found = {c.id: c for c in self.store.all()}
            mask_also(secret for c in found.values() for secret in c.settings.secrets())
            self._cached = (time.monotonic(), found)
        return found

    def forget_cache(self) -> None:
        self._cached = (0.0, {})

    def all(self) -> list[Connection]:
        return [self.default, *self._all().values()]

    def get(self, connection_id: str) -> Connection | None:
        if connection_id == DEFAULT:
            return self.default
        return self._all().get(connection_id)

    def for_zalo(self, app_id: str, oa_id: str) -> Connection | None:
        """The enabled connection of this Zalo app and OA. A connection without an OA id (a
        deployment that never set ZALO_OA_ID) matches any OA of its app."""
        of_app = [c for c in self.all() if c.zalo_app_id == app_id]
        exact = [c for c in of_app if c.zalo_oa_id and c.zalo_oa_id == oa_id]
        if exact:  # a disabled connection's OA is nobody else's, catch-all or not
            return exact[0] if exact[0].enabled else None
        return next((c for c in of_app if c.enabled and not c.zalo_oa_id), None)

    def sharing_account(self, connection: Connection) -> list[Connection]:
        """Enabled connections on the same FreshChat account as `connection` (itself first)."""
        others = [
            c
            for c in self.all()
            if c.enabled and c.id != connection.id and c.freshchat_account == connection.freshchat_account
        ]
        return [connection, *others]


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
