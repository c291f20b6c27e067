"""The JSON admin API (docs/interface.md §7): a thin layer over the operator's jobs, each called
directly (as `flask bridge connections`, app/cli.py, and the console call them): connections
(app/connections/service.py), their test and topics (checks.py), verification files
(verification.py); what operations reads of them (app/operations/overview.py) and dead letters
(app/operations/dead_letters.py).

Every /api path answers 404 while ADMIN_TOKEN is unset (the API does not exist then) and 401
for a missing or wrong bearer token; no answer is cached anywhere (Cache-Control: no-store,
set for every /api, /admin and /oauth answer in app/__init__.py).
"""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from app import extensions
from app.bridge.keys import DEFAULT
from app.connections import verification
from app.connections.problem import Problem
from app.errors import PartnerError
from app.integrations.zalo.events_catalog import catalog, webhook_retry_advice
from app.relay import catchup
from app.web import jobs
from app.web.oauth import LINK_TTL, start_link
from app.web.wrong_tokens import bearer_ok
from config.settings import LANGUAGES

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.before_request
def _require_token() -> ResponseReturnValue | None:
    expected = extensions.settings().admin_token
    if not expected:
        abort(404)
    if not bearer_ok(expected):
        return jsonify({"error": "missing or wrong bearer token"}), 401, {"WWW-Authenticate": "Bearer"}
    return None


@bp.errorhandler(Problem)
def _problem(exc: Problem):
    return jsonify(exc.answer()), exc.status


@bp.get("/connections")
def list_connections() -> ResponseReturnValue:
    return jsonify({"connections": jobs.overview().list()})


@bp.post("/connections")
def create_connection() -> ResponseReturnValue:
    created = jobs.service().create(request.get_json(silent=True))
    return jsonify(jobs.overview().show(created)), 201


@bp.get("/connections/<connection_id>")
def show_connection(connection_id: str):
    return jsonify(jobs.overview().show(connection_id))


@bp.patch("/connections/<connection_id>")
def update_connection(connection_id: str):
    jobs.service().update(connection_id, request.get_json(silent=True))
    return jsonify(jobs.overview().show(connection_id))


@bp.delete("/connections/<connection_id>")
def remove_connection(connection_id: str):
    return jsonify(jobs.service().remove(connection_id))


@bp.post("/connections/<connection_id>/test")
def test_connection(connection_id: str):
    return jsonify(jobs.checks().test(connection_id))


@bp.get("/connections/<connection_id>/templates")
def connection_templates(connection_id: str):
    """The approved Zalo templates, as `/templates` shows them (CONTRACT §7). Zalo refusing the
    template API is a 502 with its words."""
    try:
        listing = jobs.template_catalogue(connection_id).current()
    except PartnerError as exc:
        return jsonify({"error": f"Zalo's template API: {exc}"}), 502
    return jsonify(listing.view())


@bp.get("/connections/<connection_id>/events")
def connection_events(connection_id: str):
    args = request.args
    found = jobs.overview().events(
        connection_id, args.get("direction"), args.get("state"), args.get("find"), args.get("limit", 100)
    )
    return jsonify({"connection": connection_id, "events": found})


@bp.delete("/connections/<connection_id>/users/<path:zalo_user_id>")
def forget_person(connection_id: str, zalo_user_id: str):
    """A data-deletion request: every record of that Zalo user in that connection, counted
    (app/operations/forget.py); FreshChat's own copy is FreshChat's to delete."""
    return jsonify(jobs.forgetting().person(connection_id, zalo_user_id))


@bp.get("/connections/<connection_id>/verification")
def list_verification(connection_id: str):
    return jsonify({"connection": connection_id, "files": jobs.uploads().files(connection_id)})


@bp.put("/connections/<connection_id>/verification")
def upload_verification(connection_id: str):
    """Multipart field `file` (as a browser form sends it), or the raw body with ?filename=."""
    upload = request.files.get("file")
    if upload is not None:
        filename, content = upload.filename or "", upload.read(verification.MAX_BYTES + 1)
    else:
        filename, content = request.args.get("filename", ""), request.get_data()
    stored = jobs.uploads().upload(connection_id, filename, content, client=request.remote_addr or "-")
    return jsonify(stored), 201


@bp.delete("/connections/<connection_id>/verification/<filename>")
def remove_verification(connection_id: str, filename: str):
    jobs.uploads().remove(connection_id, filename)
    return jsonify({"removed": filename, "connection": connection_id})


@bp.post("/freshchat/topics")
def freshchat_topics() -> ResponseReturnValue:
    return jsonify({"topics": jobs.checks().topics(*_picker_body())})


@bp.post("/freshchat/groups")
def freshchat_groups() -> ResponseReturnValue:
    """The account's groups (`GET /groups`), for the option freshchat_group_id: as the topics."""
    return jsonify({"groups": jobs.checks().groups(*_picker_body())})


def _picker_body() -> tuple:
    """(api_url, api_key, connection) of a picker's body: a typed key, or a saved connection's."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or set(body) - {"api_url", "api_key", "connection"}:
        raise Problem(400, "the body is {api_url, api_key} or {connection}, a JSON object")
    connection = body.get("connection")
    if connection is not None and not isinstance(connection, str):
        raise Problem(400, "invalid connection", {"connection": "a connection id"})
    return body.get("api_url"), body.get("api_key"), connection


@bp.get("/zalo/events")
def zalo_events() -> ResponseReturnValue:
    """The Zalo webhook events to switch on, each with what it is for, and the retry advice."""
    language = request.args.get("language", "en")
    if language not in LANGUAGES:
        raise Problem(400, "invalid query", {"language": " or ".join(LANGUAGES)})
    return jsonify({"events": catalog(language), "webhook_retry": webhook_retry_advice(language)})


@bp.post("/connections/<connection_id>/oauth-link")
def oauth_link(connection_id: str):
    """A single-use URL, valid 10 minutes, that sends an OA admin to Zalo to connect the OA."""
    if extensions.connections().get(connection_id) is None:
        return jsonify({"error": f"no connection {connection_id}"}), 404
    url = start_link(extensions.redis(), extensions.settings(), connection_id)
    return jsonify({"url": url, "expires_in": LINK_TTL}), 201


@bp.post("/connections/<connection_id>/catch-up")
def catch_up_connection(connection_id: str):
    """Queue a catch-up from Zalo's history (a worker reads it: the web never calls Zalo).
    Optional body `{"since": seconds back | ISO 8601 time}`; default: since the last one."""
    body = request.get_json(silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict) or set(body) - {"since"}:
        raise Problem(400, "the body is {since}, a JSON object, or empty")
    since_ms = catchup.on_demand(jobs.redis(), jobs.connections(), connection_id, body.get("since"))
    return jsonify({"queued": True, "connection": connection_id, "since": since_ms / 1000 if since_ms else None}), 202


@bp.get("/status")
def status() -> ResponseReturnValue:
    try:
        return jsonify(jobs.overview().status())
    except RedisError as exc:
        return jsonify({"redis": f"unreachable ({type(exc).__name__})"}), 503


def _connection_arg() -> str:
    return request.args.get("connection", DEFAULT)


@bp.get("/dead-letters")
def list_dead_letters() -> ResponseReturnValue:
    connection = _connection_arg()
    found = jobs.dead_letter_desk().list(connection, request.args.get("limit", 100))
    return jsonify({"connection": connection, "dead_letters": found})


@bp.post("/dead-letters/<path:item_id>/replay")
def replay_dead_letter(item_id: str):
    jobs.dead_letter_desk().replay(_connection_arg(), item_id)
    return jsonify({"replayed": item_id, "connection": _connection_arg()})


@bp.delete("/dead-letters/<path:item_id>")
def drop_dead_letter(item_id: str):
    jobs.dead_letter_desk().drop(_connection_arg(), item_id)
    return jsonify({"dropped": item_id, "connection": _connection_arg()})
