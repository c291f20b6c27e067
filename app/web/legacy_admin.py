"""The old bearer JSON routes under /admin (superseded by /api, kept for callers of these paths;
404 without the right `Authorization: Bearer $ADMIN_TOKEN`). The `flask bridge` commands
are in app/cli.py."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request
from flask.typing import ResponseReturnValue

from app import extensions
from app.bridge.deadletters import DeadLetters
from app.operations.dead_letters import MAX_LIMIT
from app.operations.status import bridge_status
from app.web.wrong_tokens import bearer_ok

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _require_token() -> None:
    expected = extensions.settings().admin_token
    if not expected or not bearer_ok(expected):
        abort(404)


def _dead_letters() -> DeadLetters:
    return DeadLetters(extensions.redis(), extensions.lanes())


@bp.get("/status")
def status() -> ResponseReturnValue:
    return jsonify(bridge_status(extensions.redis(), extensions.connections()))


@bp.get("/dead-letters")
def list_dead_letters() -> ResponseReturnValue:
    limit = request.args.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        return jsonify({"error": f"limit must be a whole number from 1 to {MAX_LIMIT}"}), 400
    return jsonify({"dead_letters": _dead_letters().list(limit=int(limit))})


@bp.post("/dead-letters/<path:item_id>/replay")
def replay_dead_letter(item_id: str):
    return jsonify({"replayed": item_id}) if _dead_letters().replay(item_id) else abort(404)


@bp.delete("/dead-letters/<path:item_id>")
def drop_dead_letter(item_id: str):
    return jsonify({"dropped": item_id}) if _dead_letters().drop(item_id) else abort(404)
