"""Managing connections: what the JSON admin API (app/web/api.py) and `flask bridge connections`
both call, so the two never disagree (docs/interface.md §7).

Answers never hold a secret: a secret reads `"set"` or `""`. A stored record always carries
every field of app/connections.FIELDS, so nothing of the environment's `default` connection
(its token pair above all) leaks into another connection's effective settings.
"""

from __future__ import annotations

import json
import logging
import time

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from app.bridge import keys
from app.bridge.deadletters import DeadLetters
from app.bridge.keys import DEFAULT, DUE, HEARTBEAT, Keys
from app.bridge.lanes import Item, Lanes, now_ms
from app.bridge.secrets_at_rest import UnreadableSecret, sealer_for
from app.bridge.tokens_store import TokenStore
from app.connections import verification
from app.connections.checks import check, list_channels
from app.connections.store import (
    FIELDS,
    ID_PATTERN,
    KEY_URL,
    SECRETS,
    STORE,
    Connection,
    ConnectionStore,
    ForeignUrl,
    default_connection,
    stored_key_for,
)
from app.connections.verification import VerificationFiles
from app.integrations.http import build_session
from app.integrations.zalo.tokens import TokenKeeper, _fingerprint
from app.logs import audit
from app.operations import problems
from app.operations.journal import BadQuery, Journal
from app.operations.startup import record_check
from app.operations.status import connection_status, queue_depths
from config.settings import LANGUAGES, RECEIPT_MODES, Settings

log = logging.getLogger("connections.admin")
LOCK = STORE + ":lock"  # one change at a time: the id and app+OA checks must see every other change
REMOVED_REASON = "connection removed"
MAX_LIMIT = 1000

# What people read in answers and on the command line.
TEXTS = {
    "unknown": "no connection {id}",
    "from_env": "the default connection is defined by environment variables; change those instead",
    "id_taken": "a connection with id {id} exists",
    "oa_taken": "connection {other} already serves Zalo app {app_id} and OA {oa_id}",
    "id_fixed": "the id of a connection never changes",
    "bad_id": "1 to 40 characters of a-z, 0-9 and -",
    "bad_limit": "limit: a whole number from 1 to 1000",
    "no_dead_letter": "no dead letter {id}",
    "replay_removed": "connection {id} was removed; add it again before replaying its dead letters",
    "bad_verifier_name": "Zalo's file name: zalo_verifier<code>.html (code: up to 64 letters, digits, _ or -)",
    "bad_verifier_size": "the file is empty or larger than 16 KiB",
    "no_verifier": "no verification file {name}",
    "bad_verifier_page": "not Zalo's verification page: only its meta tag and plain text, no script or other markup",
    "verifier_taken": "connection {other} already uploaded the file for this code",
    "bad_api_url": "the FreshChat API URL (the chat URL plus /v2)",
    "no_api_key": "the FreshChat API key",
    "no_v2": "must end in /v2 (the chat URL plus /v2, e.g. https://acme.freshchat.com/v2)",
    "key_again": "give the API key again: a stored key is only sent to the API URL it was stored with",
}


def _refused_verifier(connection_id: str, filename: str, reason: str, **fields) -> None:
    from flask import has_request_context, request

    client = (request.remote_addr or "-") if has_request_context() else "-"
    audit("verification.refused", client=client, connection=connection_id, file=filename, reason=reason, **fields)


class Problem(Exception):
    """A request the bridge refuses: `status` is the HTTP code, `fields` one message per bad field."""

    def __init__(self, status: int, message: str, fields: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields or {}

    def answer(self) -> dict:
        return {"error": self.message, **({"fields": self.fields} if self.fields else {})}


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
        from config.formats import load_public_key

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
    agent_signature = fields.String(validate=validate.Length(max=200))  # "" turns signing off
    customer_language = fields.String(validate=validate.OneOf(LANGUAGES))
    agent_language = fields.String(validate=validate.OneOf(LANGUAGES))


_URL = validate.URL(schemes={"http", "https"}, require_tld=False)


def _is_url(value) -> bool:
    try:
        _URL(value)
    except ValidationError:
        return False
    return True


# A new connection starts from the bridge's defaults, never from the default connection's values.
OPTION_DEFAULTS = {name: Settings.__dataclass_fields__[attr].default for name, attr in FIELDS["options"].items()}


class ConnectionSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(ID_PATTERN, error=TEXTS["bad_id"]))
    name = _text()
    enabled = fields.Boolean()
    zalo = fields.Nested(ZaloSchema, required=True)
    freshchat = fields.Nested(FreshchatSchema, required=True)
    options = fields.Nested(OptionsSchema)


def _parse(body, partial: bool) -> dict:
    if not isinstance(body, dict):
        raise Problem(400, "the body must be a JSON object")
    try:
        return ConnectionSchema().load(body, partial=partial)
    except ValidationError as exc:
        raise Problem(400, "invalid connection", _one_per_field(exc.messages)) from None


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


# -- the admin ----------------------------------------------------------------------------------


class ConnectionAdmin:
    def __init__(self, redis, lanes: Lanes, settings, session=None):
        self.redis = redis
        self.lanes = lanes
        self.settings = settings
        self.store = ConnectionStore(redis, settings, sealer_for(settings))
        self.default = default_connection(settings)
        self.session = session or build_session(timeout=5.0)

    # reading
    def connections(self) -> list[Connection]:
        return [self.default, *self.store.all()]

    def get(self, connection_id: str) -> Connection:
        found = self.default if connection_id == DEFAULT else self.store.get(connection_id)
        if found is None:
            raise Problem(404, TEXTS["unknown"].format(id=connection_id))
        return found

    def list(self) -> list[dict]:
        depths = queue_depths(self.redis)
        return [self.view(c, depths) for c in self.connections()]

    def show(self, connection_id: str) -> dict:
        return self.view(self.get(connection_id), queue_depths(self.redis))

    def view(self, conn: Connection, depths: dict[str, int]) -> dict:
        base = self.settings.public_base_url
        sections = {name: self._masked(conn, name) for name in FIELDS}
        freshchat_hook = "/webhooks/freshchat" if conn.from_env else f"/webhooks/freshchat/{conn.id}"
        return {
            "id": conn.id,
            "name": conn.name,
            "enabled": conn.enabled,
            "from_env": conn.from_env,
            **sections,
            "webhooks": {"zalo": base + "/webhooks/zalo", "freshchat": base + freshchat_hook},
            "oauth_callback": base + "/oauth/zalo/callback",
            "oauth_start": base + "/oauth/zalo/start" + ("" if conn.from_env else f"?connection={conn.id}"),
            "status": self.connection_status(conn, depths),
        }

    @staticmethod
    def _masked(conn: Connection, section: str) -> dict:
        values = conn.section(section)
        return {f: ("set" if v else "") if (section, f) in SECRETS else v for f, v in values.items()}

    # status: one implementation, app/operations/status.py, shared with /readyz and /admin/status
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
            "connections": {c.id: self.connection_status(c, depths) for c in self.connections()},
        }

    def connection_status(self, conn: Connection, depths: dict[str, dict]) -> dict:
        shown = connection_status(self.redis, conn.id, depths.get(conn.id), connection=conn)
        return dict(shown, enabled=conn.enabled, queue_depth=shown["lanes_pending"])

    def events(self, connection_id: str, direction=None, state=None, find=None, limit=100) -> list[dict]:
        """The connection's recent events (app/operations/journal.py), newest first."""
        self.get(connection_id)
        try:
            return Journal(self.redis, connection_id).recent(direction or None, state or None, find or None, limit)
        except BadQuery as exc:
            raise Problem(400, "invalid query", {exc.field: exc.message}) from None

    # Zalo's domain-verification files (app/connections/verification.py)
    def upload_verification(self, connection_id: str, filename: str, content: bytes) -> dict:
        self.get(connection_id)
        code = verification.code_of(filename)
        if code is None:
            raise Problem(400, "invalid verification file", {"file": TEXTS["bad_verifier_name"]})
        if not content or len(content) > verification.MAX_BYTES:
            raise Problem(400, "invalid verification file", {"file": TEXTS["bad_verifier_size"]})
        if not verification.is_verification_page(content):
            _refused_verifier(connection_id, filename, "not_the_page")
            raise Problem(400, "invalid verification file", {"file": TEXTS["bad_verifier_page"]})
        try:
            VerificationFiles(self.redis, connection_id).put(code, content)
        except verification.TakenCode:
            other = verification.owner_of(self.redis, code)
            _refused_verifier(connection_id, filename, "taken", owner=other)
            raise Problem(
                409, "invalid verification file", {"file": TEXTS["verifier_taken"].format(other=other)}
            ) from None
        log.info("connections.verification_uploaded", extra={"connection": connection_id, "file": filename})
        return self._verifier(code, len(content))

    def verification_files(self, connection_id: str) -> list[dict]:
        self.get(connection_id)
        return [
            self._verifier(code, size) for code, size in VerificationFiles(self.redis, connection_id).sizes().items()
        ]

    def remove_verification(self, connection_id: str, filename: str) -> None:
        self.get(connection_id)
        code = verification.code_of(filename)
        if code is None or not VerificationFiles(self.redis, connection_id).remove(code):
            raise Problem(404, TEXTS["no_verifier"].format(name=filename))
        log.info("connections.verification_removed", extra={"connection": connection_id, "file": filename})

    def _verifier(self, code: str, size: int) -> dict:
        name = verification.filename_of(code)
        return {"filename": name, "url": f"{self.settings.public_base_url}/{name}", "bytes": size}

    # the FreshChat topic picker
    def topics(self, api_url: str | None = None, api_key: str | None = None, connection_id: str | None = None):
        """[{"id", "name"}] of the FreshChat account's topics. A connection's stored URL and key
        stand in for what the form did not replace, the stored key only for the stored URL (a
        400 naming api_key otherwise); a partner's refusal is a 502 in words."""
        if connection_id is not None:
            stored = self.get(connection_id).settings
            api_url = api_url or stored.freshchat_api_url
            if not api_key and isinstance(api_url, str) and _is_url(api_url):
                api_key = _stored_key(stored, api_url)
        bad = {}
        if not isinstance(api_url, str) or not _is_url(api_url):
            bad["api_url"] = TEXTS["bad_api_url"]
        if not isinstance(api_key, str) or not 1 <= len(api_key) <= 4000:
            bad["api_key"] = TEXTS["no_api_key"]
        if bad:
            raise Problem(400, "cannot load topics", bad)
        found = list_channels(api_url.rstrip("/"), api_key, self.session)
        if isinstance(found, dict):
            raise Problem(502, found["detail"])
        return [{"id": str(c["id"]), "name": str(c.get("name") or "")[:200]} for c in found if c.get("id")]

    def _keeper(self, conn: Connection) -> TokenKeeper:
        return TokenKeeper(TokenStore.of(self.redis, conn.settings, Keys(conn.id)), conn.settings, self.session)

    # changing
    def create(self, body) -> dict:
        data = _parse(body, partial=False)
        with self.redis.lock(LOCK, timeout=10, blocking_timeout=10):
            if data["id"] == DEFAULT or self.store.get(data["id"]):
                raise Problem(409, TEXTS["id_taken"].format(id=data["id"]))
            record = self._complete(data)
            self._refuse_shared_oa(record)
            self.store.put(record)
            self._seed_tokens(record, record["zalo"])
        log.info("connections.created", extra={"connection": record["id"]})
        return self.show(record["id"])

    def update(self, connection_id: str, body) -> dict:
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
            self._put(record)
            self._seed_tokens(record, (body.get("zalo") or {}) if isinstance(body, dict) else {})
        log.info("connections.updated", extra={"connection": connection_id, "fields": ",".join(sorted(body))})
        return self.show(connection_id)

    def _put(self, record: dict) -> None:
        try:
            self.store.put(record)
        except ForeignUrl:
            raise Problem(400, "invalid connection", {"freshchat.api_key": TEXTS["key_again"]}) from None

    def set_enabled(self, connection_id: str, enabled: bool) -> dict:
        return self.update(connection_id, {"enabled": enabled})

    def remove(self, connection_id: str) -> dict:
        """Disable, keep every queued item as a dead letter of the connection, then forget it.
        Its mappings and dead letters stay (a connection added again with this id finds them);
        its token pair goes with it."""
        self._changeable(connection_id)
        with self.redis.lock(LOCK, timeout=30, blocking_timeout=10):
            record = self._record(connection_id)
            self.store.put(dict(record, enabled=False))  # webhooks stop queueing for it first
            kept = self._queue_to_dead_letters(connection_id)
            self.redis.delete(Keys(connection_id).zalo_token)
            VerificationFiles(self.redis, connection_id).remove_all()
            self.store.remove(connection_id)
        log.info("connections.removed", extra={"connection": connection_id, "kept_as_dead_letters": kept})
        return {"removed": connection_id, "kept_as_dead_letters": kept}

    def _changeable(self, connection_id: str) -> None:
        if connection_id == DEFAULT:
            raise Problem(409, TEXTS["from_env"])
        self.get(connection_id)

    def _record(self, connection_id: str) -> dict:
        record = self.store.records().get(connection_id)
        if record is None:
            raise Problem(404, TEXTS["unknown"].format(id=connection_id))
        return record

    def _complete(self, data: dict) -> dict:
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

    def _refuse_shared_oa(self, record: dict) -> None:
        app_id, oa_id = record["zalo"]["app_id"], record["zalo"]["oa_id"]
        for other in self.connections():
            if other.id != record["id"] and (other.zalo_app_id, other.zalo_oa_id) == (app_id, oa_id):
                raise Problem(409, TEXTS["oa_taken"].format(other=other.id, app_id=app_id, oa_id=oa_id))

    def _seed_tokens(self, record: dict, given: dict) -> None:
        """A token pair given in the body replaces the stored one now (as connecting the OA
        does), so the connection's status shows it and a refresh never uses an older one."""
        if not (given.get("access_token") or given.get("refresh_token")):
            return
        keeper = self._keeper(self.store.get(record["id"]))
        try:
            current = keeper.state()
        except UnreadableSecret:
            current = {}
        # A refresh token is single use: keep the stored one unless a new one was given.
        access = given.get("access_token") or current.get("access_token", "")
        refresh = given.get("refresh_token") or current.get("refresh_token", "")
        keeper.store(access, refresh, None, _fingerprint(record["zalo"]["refresh_token"]), accepted=False)

    def _queue_to_dead_letters(self, connection_id: str) -> int:
        lane_ids = {raw.decode() for raw, _ in self.redis.zscan_iter(DUE, match=f"{connection_id}/*")}
        prefix = keys.lane("")
        lane_ids |= {raw.decode()[len(prefix) :] for raw in self.redis.scan_iter(match=f"{prefix}{connection_id}/*")}
        dead = DeadLetters(self.redis, self.lanes, keys=Keys(connection_id))
        return sum(self._lane_to_dead_letters(lane_id, dead) for lane_id in sorted(lane_ids))

    def _lane_to_dead_letters(self, lane_id: str, dead: DeadLetters) -> int:
        """Copy the lane's items to dead letters, then drop the lane only if it did not change
        meanwhile (else copy again): an item is never lost, at worst written twice under its id."""
        lane_key = keys.lane(lane_id)

        def move(pipe) -> int:
            items = [Item.loads(raw) for raw in pipe.lrange(lane_key, 0, -1)]
            for item in items:
                dead.add(lane_id, item, REMOVED_REASON)
            pipe.multi()
            pipe.delete(lane_key)
            pipe.zrem(DUE, lane_id)
            return len(items)

        return self.redis.transaction(move, lane_key, value_from_callable=True)

    def test(self, connection_id: str) -> dict:
        result = check(self.get(connection_id), self.redis, self.session)
        record_check(self.redis, connection_id, result)  # the status shows the latest answer
        log.info(
            "connections.tested",
            extra={
                "connection": connection_id,
                "zalo_ok": result["zalo"]["ok"],
                "freshchat_ok": result["freshchat"]["ok"],
            },
        )
        return result

    # dead letters, per connection; a removed connection's stay reachable by its id
    def dead_letters(self, connection_id: str, limit) -> list[dict]:
        return self._dead(connection_id).list(limit=_limit(limit))

    def replay(self, connection_id: str, item_id: str) -> None:
        dead = self._dead(connection_id)
        if dead.get(item_id) is None:
            raise Problem(404, TEXTS["no_dead_letter"].format(id=item_id))
        if connection_id != DEFAULT and self.store.get(connection_id) is None:
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
            raise Problem(400, "invalid connection", {"connection": TEXTS["bad_id"]})
        k = Keys(connection_id)
        known = connection_id == DEFAULT or self.store.get(connection_id) or self.redis.exists(k.dead_order)
        if not known:
            raise Problem(404, TEXTS["unknown"].format(id=connection_id))
        return DeadLetters(self.redis, self.lanes, keys=k)


def _stored_key(settings, url: str) -> str:
    """A connection's stored FreshChat API key for the topic picker's call to `url`: a 400
    naming api_key (to give again) unless `url` is the URL the key was stored with."""
    try:
        return stored_key_for(settings, url)
    except ForeignUrl:
        raise Problem(400, "cannot load topics", {"api_key": TEXTS["key_again"]}) from None


def _limit(raw) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise Problem(400, TEXTS["bad_limit"]) from None
    if not 1 <= value <= MAX_LIMIT:
        raise Problem(400, TEXTS["bad_limit"])
    return value


def dumps(answer) -> str:
    return json.dumps(answer, indent=2, ensure_ascii=False)
