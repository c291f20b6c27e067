"""Adding, changing and removing connections, and how one is shown: what the JSON admin API
(app/web/api.py), the console and `flask bridge connections` all call, so they never disagree
(docs/interface.md §7). A connection's status, events and dead letters are app/operations/'s
(it shows a connection with `view` below); its test and topics are app/connections/checks.py's,
its verification files app/connections/verification.py's.

Views never hold a secret: a secret reads `"set"` or `""`. A stored record always carries
every field of app/connections/store.py FIELDS, so nothing of the environment's `default`
connection (its token pair above all) leaks into another connection's effective settings.
"""

from __future__ import annotations

import logging
import time

import requests
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates
from redis import Redis
from redis.client import Pipeline

from app.bridge import keys
from app.bridge.deadletters import DeadLetters
from app.bridge.keys import DEFAULT, DUE, Keys
from app.bridge.lanes import Item, Lanes
from app.bridge.secrets_at_rest import UnreadableSecret
from app.bridge.tokens_store import TokenStore
from app.connections.problem import Problem
from app.connections.store import (
    FIELDS,
    ID_PATTERN,
    KEY_URL,
    SECRETS,
    STORE,
    Connection,
    Connections,
    ForeignUrl,
    same_url,
)
from app.connections.store import TEXTS as STORE_TEXTS
from app.connections.verification import VerificationFiles
from app.integrations.http import build_session
from app.integrations.zalo.tokens import TokenKeeper, _fingerprint
from config.formats import load_public_key
from config.settings import LANGUAGES, RECEIPT_MODES, Settings

log = logging.getLogger("connections.admin")
LOCK = STORE + ":lock"  # one change at a time: the id and app+OA checks must see every other change
REMOVED_REASON = "connection removed"

# What people read in answers and on the command line (app/wording.py says them in Vietnamese).
TEXTS = {
    "from_env": "the default connection is defined by environment variables; change those instead",
    "id_taken": "a connection with id {id} exists",
    "oa_taken": "connection {other} already serves Zalo app {app_id} and OA {oa_id}",
    "id_fixed": "the id of a connection never changes",
    "no_v2": "must end in /v2 (the chat URL plus /v2, e.g. https://acme.freshchat.com/v2)",
    "merge_elsewhere": "connection {other} of the same Zalo app shares people on another FreshChat account "
    "({api_url}): one person can be one FreshChat user only on one account",
    "group_id": "a FreshChat group id (letters, digits and -, at most 100), or empty for none",
}
GROUP_ID = r"^[A-Za-z0-9_-]{0,100}$"  # FreshChat's group ids are UUIDs; it goes into a JSON body only


# -- the body of POST/PATCH /api/connections ------------------------------------------------------


def _text(required: bool = False, **kw) -> fields.String:
    limit = validate.Length(min=1, max=kw.pop("max", 200), error="1 to {max} characters")
    return fields.String(required=required, validate=limit, **kw)


def _digits(required: bool = True) -> fields.String:
    """Zalo app and OA ids are numbers written as strings."""
    return fields.String(required=required, validate=validate.Regexp(r"^\d{1,30}$", error="digits only"))


class ZaloSchema(Schema):
    app_id = _digits()
    app_secret = _text(required=True)
    oa_id = _digits()
    oa_secret_key = _text(required=True)
    access_token = fields.String(validate=validate.Length(max=2000))
    refresh_token = fields.String(validate=validate.Length(max=2000))


class FreshchatSchema(Schema):
    api_url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False)
    api_key = _text(required=True, max=4000)
    channel_id = _text(required=True)
    webhook_public_key = _text(required=True, max=10000)

    @validates("api_url")
    def _ends_in_v2(self, value: str, **_) -> None:
        """Every FreshChat call to another path answers 404, so the environment's URL is refused
        at start (config/settings.py) and a connection's when it is saved, in the same words."""
        if not value.rstrip("/").endswith("/v2"):
            raise ValidationError(TEXTS["no_v2"])

    @validates("webhook_public_key")
    def _is_a_key(self, value: str, **_) -> None:
        try:
            load_public_key(value)
        except ValueError:
            raise ValidationError("not a PEM/base64 RSA public key") from None

    @post_load
    def _tidy(self, data: dict, **_) -> dict:
        if "api_url" in data:
            data["api_url"] = data["api_url"].rstrip("/")
        return data


class OptionsSchema(Schema):
    resolve_notification = fields.Boolean()
    resolve_notification_text = fields.String(validate=validate.Length(max=2000))  # "": the bridge's own
    receipts = fields.String(validate=validate.OneOf(RECEIPT_MODES))
    hold_billed_replies = fields.Boolean()
    satisfaction_survey = fields.Boolean()
    agent_signature = fields.String(validate=validate.Length(max=200))  # "" turns signing off
    customer_language = fields.String(validate=validate.OneOf(LANGUAGES))
    agent_language = fields.String(validate=validate.OneOf(LANGUAGES))
    merge_users_by_app = fields.Boolean()
    freshchat_group_id = fields.String(validate=validate.Regexp(GROUP_ID, error=TEXTS["group_id"]))  # "": none


# A new connection starts from the bridge's defaults, never from the default connection's values.
OPTION_DEFAULTS = {name: Settings.__dataclass_fields__[attr].default for name, attr in FIELDS["options"].items()}


class ConnectionSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(ID_PATTERN, error=STORE_TEXTS["bad_id"]))
    name = _text()
    enabled = fields.Boolean()
    zalo = fields.Nested(ZaloSchema, required=True)
    freshchat = fields.Nested(FreshchatSchema, required=True)
    options = fields.Nested(OptionsSchema)


def _parse(body: object, partial: bool) -> dict:
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object")
    try:
        return ConnectionSchema().load(body, partial=partial)
    except ValidationError as exc:
        raise Problem(400, "invalid connection", _one_per_field(exc.normalized_messages())) from None


def _one_per_field(messages: dict, prefix: str = "") -> dict:
    """{"zalo.app_id": "digits only", ...}: the first message of each bad field."""
    flat = {}
    for name, found in messages.items():
        path = prefix if name == "_schema" else f"{prefix}{name}"
        if isinstance(found, dict):
            flat.update(_one_per_field(found, f"{path}."))
        else:
            flat[path.rstrip(".") or "body"] = found[0] if isinstance(found, list) else str(found)
    return flat


# -- how a connection is shown ------------------------------------------------------------------


def view(conn: Connection, base_url: str) -> dict:
    """A connection as the API, the console and `flask bridge` show it, secrets masked, with the
    URLs to give Zalo and FreshChat (app/operations/overview.py adds its status)."""
    sections = {name: _masked(conn, name) for name in FIELDS}
    freshchat_hook = "/webhooks/freshchat" if conn.from_env else f"/webhooks/freshchat/{conn.id}"
    return {
        "id": conn.id,
        "name": conn.name,
        "enabled": conn.enabled,
        "from_env": conn.from_env,
        **sections,
        "webhooks": {"zalo": base_url + "/webhooks/zalo", "freshchat": base_url + freshchat_hook},
        "oauth_callback": base_url + "/oauth/zalo/callback",
        "oauth_start": base_url + "/oauth/zalo/start" + ("" if conn.from_env else f"?connection={conn.id}"),
    }


def _masked(conn: Connection, section: str) -> dict:
    values = conn.section(section)
    return {f: ("set" if v else "") if (section, f) in SECRETS else v for f, v in values.items()}


# -- adding, changing, removing -----------------------------------------------------------------


class ConnectionService:
    """Add, change, switch on/off and remove stored connections; the default one is read-only."""

    def __init__(self, redis: Redis, lanes: Lanes, settings: Settings, session: requests.Session | None = None):
        self.redis = redis
        self.lanes = lanes
        self.connections = Connections(redis, settings)
        self.store = self.connections.store
        self.session = session or build_session(timeout=5.0)

    def create(self, body: object) -> str:
        """The new connection's id."""
        data = _parse(body, partial=False)
        with self.redis.lock(LOCK, timeout=10, blocking_timeout=10):
            if self.connections.find(data["id"]) is not None:
                raise Problem(409, TEXTS["id_taken"].format(id=data["id"]))
            record = _complete(data)
            self._refuse_shared_oa(record)
            self._refuse_split_merge(record)
            self.store.put(record)
            self._seed_tokens(record, record["zalo"])
            self._activated(record)
        log.info("connections.created", extra={"connection": record["id"]})
        return record["id"]

    def update(self, connection_id: str, body: object) -> None:
        self._changeable(connection_id)
        data = _parse(body, partial=True)
        if data.get("id", connection_id) != connection_id:
            raise Problem(400, "invalid connection", {"id": TEXTS["id_fixed"]})
        with self.redis.lock(LOCK, timeout=10, blocking_timeout=10):
            record = self._record(connection_id)
            if "api_key" in data.get("freshchat", {}):
                record.get("freshchat", {}).pop(KEY_URL, None)  # a key given now goes with the URL given now
            for section in FIELDS:
                record[section] = {**record.get(section, {}), **data.pop(section, {})}
            record.update(data)
            self._refuse_shared_oa(record)
            self._refuse_split_merge(record)
            self._put(record)
            self._seed_tokens(record, (body.get("zalo") or {}) if isinstance(body, dict) else {})
            self._activated(record)
        log.info(
            "connections.updated",
            extra={"connection": connection_id, "fields": ",".join(sorted(body) if isinstance(body, dict) else ())},
        )

    def _activated(self, record: dict) -> None:
        """The first time a connection is on, its catch-ups start reading Zalo's history from
        now, not back to the horizon: the chats from before come in only when the operator
        chooses it (the console's offer, app/relay/catchup.py `import_history`)."""
        if not record.get("enabled"):
            return
        k, now = Keys(record["id"]), str(int(time.time() * 1000))
        if self.redis.hsetnx(k.catchup, "started_at", now):  # no catch-up ever ran: the first activation
            self.redis.hset(k.catchup, mapping={"activated_at": now, "history_offer": "open"})

    def set_enabled(self, connection_id: str, enabled: bool) -> None:
        self.update(connection_id, {"enabled": enabled})

    def remove(self, connection_id: str) -> dict:
        """Disable, keep every queued item as a dead letter of the connection, then forget it.
        Its mappings and dead letters stay (a connection added again with this id finds them);
        its token pair goes with it."""
        self._changeable(connection_id)
        with self.redis.lock(LOCK, timeout=30, blocking_timeout=10):
            record = self._record(connection_id)
            self.store.put(dict(record, enabled=False))  # webhooks stop queueing for it first
            kept = queue_to_dead_letters(self.redis, self.lanes, connection_id)
            self.redis.delete(Keys(connection_id).zalo_token)
            VerificationFiles(self.redis, connection_id).remove_all()
            self.store.remove(connection_id)
        log.info("connections.removed", extra={"connection": connection_id, "kept_as_dead_letters": kept})
        return {"removed": connection_id, "kept_as_dead_letters": kept}

    def _put(self, record: dict) -> None:
        try:
            self.store.put(record)
        except ForeignUrl:
            raise Problem(400, "invalid connection", {"freshchat.api_key": STORE_TEXTS["key_again"]}) from None

    def _changeable(self, connection_id: str) -> None:
        if connection_id == DEFAULT:
            raise Problem(409, TEXTS["from_env"])
        self.connections.get(connection_id)

    def _record(self, connection_id: str) -> dict:
        record = self.store.records().get(connection_id)
        if record is None:
            raise Problem(404, STORE_TEXTS["unknown"].format(id=connection_id))
        return record

    def _refuse_shared_oa(self, record: dict) -> None:
        app_id, oa_id = record["zalo"]["app_id"], record["zalo"]["oa_id"]
        for other in self.connections.all():
            if other.id != record["id"] and (other.zalo_app_id, other.zalo_oa_id) == (app_id, oa_id):
                raise Problem(409, TEXTS["oa_taken"].format(other=other.id, app_id=app_id, oa_id=oa_id))

    def _refuse_split_merge(self, record: dict) -> None:
        """merge_users_by_app shares a person's FreshChat user among the app's connections that
        have it: they must all be on one FreshChat account (CONTRACT §7)."""
        if not record.get("options", {}).get("merge_users_by_app"):
            return
        app_id, api_url = record["zalo"]["app_id"], record["freshchat"]["api_url"]
        for other in self.connections.all():
            merging = other.id != record["id"] and other.settings.merge_users_by_app
            if merging and other.zalo_app_id == app_id and not same_url(other.settings.freshchat_api_url, api_url):
                message = TEXTS["merge_elsewhere"].format(other=other.id, api_url=other.settings.freshchat_api_url)
                raise Problem(400, "invalid connection", {"options.merge_users_by_app": message})

    def _seed_tokens(self, record: dict, given: dict) -> None:
        """A token pair given in the body replaces the stored one now (as connecting the OA
        does), so the connection's status shows it and a refresh never uses an older one."""
        if not (given.get("access_token") or given.get("refresh_token")):
            return
        conn = self.store.get(record["id"])
        if conn is None:  # removed by another request since it was stored
            raise Problem(404, STORE_TEXTS["unknown"].format(id=record["id"]))
        keeper = TokenKeeper(TokenStore.of(self.redis, conn.settings, Keys(conn.id)), conn.settings, self.session)
        try:
            current = keeper.state()
        except UnreadableSecret:
            current = {}
        # A refresh token is single use: keep the stored one unless a new one was given.
        access = given.get("access_token") or current.get("access_token", "")
        refresh = given.get("refresh_token") or current.get("refresh_token", "")
        keeper.store(access, refresh, None, _fingerprint(record["zalo"]["refresh_token"]), accepted=False)


def _complete(data: dict) -> dict:
    """Every field present, so no default-connection value fills a gap."""
    zalo = {"access_token": "", "refresh_token": "", **data["zalo"]}
    options = {**OPTION_DEFAULTS, **data.get("options", {})}
    return {
        "id": data["id"],
        "name": data.get("name") or data["id"],
        "enabled": data.get("enabled", True),
        "zalo": zalo,
        "freshchat": data["freshchat"],
        "options": options,
    }


def queue_to_dead_letters(redis: Redis, lanes: Lanes, connection_id: str) -> int:
    """Every item queued for the connection, kept as its dead letters (its lanes dropped)."""
    lane_ids = {raw.decode() for raw, _ in redis.zscan_iter(DUE, match=f"{connection_id}/*")}
    prefix = keys.lane("")
    lane_ids |= {raw.decode()[len(prefix) :] for raw in redis.scan_iter(match=f"{prefix}{connection_id}/*")}
    dead = DeadLetters(redis, lanes, keys=Keys(connection_id))
    return sum(_lane_to_dead_letters(redis, lane_id, dead) for lane_id in sorted(lane_ids))


def _lane_to_dead_letters(redis: Redis, lane_id: str, dead: DeadLetters) -> int:
    """Copy the lane's items to dead letters, then drop the lane only if it did not change
    meanwhile (else copy again): an item is never lost, at worst written twice under its id."""
    lane_key = keys.lane(lane_id)

    def move(pipe: Pipeline) -> int:
        items = [Item.loads(raw) for raw in pipe.lrange(lane_key, 0, -1)]
        for item in items:
            dead.add(lane_id, item, REMOVED_REASON)
        pipe.multi()
        pipe.delete(lane_key)
        pipe.zrem(DUE, lane_id)
        return len(items)

    # redis-py types the callable as returning None and the answer as the pipeline's replies; with
    # value_from_callable the answer is what the callable returned
    return redis.transaction(move, lane_key, value_from_callable=True)  # type: ignore[arg-type,return-value]
