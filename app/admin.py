"""The old bearer JSON routes under /admin (superseded by /api, kept for callers of these paths;
404 without the right `Authorization: Bearer $ADMIN_TOKEN`) and the `flask bridge` CLI group
(dead letters, connections, backup and restore)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Blueprint, abort, current_app, jsonify, request
from flask.cli import AppGroup, ScriptInfo
from redis.exceptions import RedisError

from app.api import connections_cli
from app.backup import BackupError, backup, restore
from app.bridge.deadletters import DeadLetters
from app.bridge.status import bridge_status
from app.connections_admin import MAX_LIMIT
from app.wrong_tokens import bearer_ok
from config.redis_url import masked


class BridgeGroup(AppGroup):
    """`flask bridge` (and `bin/bridge`): a Redis that does not answer is one line, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except RedisError as exc:
            url = masked(ctx.ensure_object(ScriptInfo).load_app().config["SETTINGS"].redis_url)
            raise click.ClickException(
                f"Redis at {url} did not answer ({type(exc).__name__}): is `make run` running? "
                "bin/bridge uses its Redis; REDIS_URL names another"
            ) from None


bp = Blueprint("admin", __name__, url_prefix="/admin", cli_group="bridge")
bp.cli = BridgeGroup()
bp.cli.add_command(connections_cli)  # one `bridge` group: a second blueprint's would replace this one


@bp.before_request
def _require_token():
    expected = current_app.config["SETTINGS"].admin_token
    if not expected or not bearer_ok(expected):
        abort(404)


def _dead_letters() -> DeadLetters:
    return DeadLetters(current_app.extensions["redis"], current_app.extensions["lanes"])


@bp.get("/status")
def status():
    return jsonify(bridge_status(current_app.extensions["redis"], current_app.extensions["connections"]))


@bp.get("/dead-letters")
def list_dead_letters():
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


@bp.cli.group("dead-letters")
def dead_letters_cli():
    """List, inspect, replay and drop items that failed for good."""


@dead_letters_cli.command("list")
def cli_list():
    for record in _dead_letters().list(limit=1000):
        click.echo(f"{record['id']}\t{record['lane']}\t{record['reason'][:120]}")
    click.echo(f"{_dead_letters().count()} dead letter(s)")


@dead_letters_cli.command("show")
@click.argument("item_id")
def cli_show(item_id):
    record = _dead_letters().get(item_id)
    if record is None:
        raise click.ClickException(f"no dead letter {item_id}")
    click.echo(json.dumps(record, indent=2, ensure_ascii=False))


@dead_letters_cli.command("replay")
@click.argument("item_ids", nargs=-1, required=True)
def cli_replay(item_ids):
    for item_id in item_ids:
        click.echo(f"replayed {item_id}" if _dead_letters().replay(item_id) else f"no dead letter {item_id}")


@dead_letters_cli.command("drop")
@click.argument("item_ids", nargs=-1, required=True)
def cli_drop(item_ids):
    for item_id in item_ids:
        click.echo(f"dropped {item_id}" if _dead_letters().drop(item_id) else f"no dead letter {item_id}")


@bp.cli.command("catch-up")
@click.option("--connection", "connection_id", help="One connection (default: every enabled one).")
@click.option("--since", help="Seconds back, or an ISO 8601 time (default: since the last catch-up).")
def cli_catch_up(connection_id, since):
    """Queue what Zalo's history holds and no webhook brought (runs here, not in a worker)."""
    from app.integrations.errors import PartnerError
    from app.relay.catchup import CatchUpStopped, catch_up, parse_since
    from workers.context import ConnectionUnavailable, WorkerContext

    try:
        since_ms = parse_since(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    ctx = WorkerContext(current_app.config["SETTINGS"], current_app.extensions["redis"])
    ids = [connection_id] if connection_id else [c.id for c in ctx.connections.all() if c.enabled]
    for cid in ids:
        try:
            done = catch_up(ctx.for_connection(cid), since_ms, "command_line")
        except ConnectionUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        except (PartnerError, CatchUpStopped) as exc:  # nothing recorded: the next run reads it again
            raise click.ClickException(f"{cid}: Zalo did not answer the history reads: {exc}") from None
        if done is None:
            click.echo(f"{cid}: a catch-up is already running")
            continue
        click.echo(f"{cid}: {done['chats']} chat(s), {done['found']} message(s) read, {done['queued']} queued")


@bp.cli.command("backup")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def cli_backup(out_dir: Path):
    """Copy every bridge key in Redis, and the local media store, into OUT_DIR."""
    try:
        manifest = backup(current_app.extensions["redis"], current_app.config["SETTINGS"], out_dir)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    media = manifest["media"]
    click.echo(f"backed up {manifest['redis_keys']} Redis keys and {media['files']} media files into {out_dir}")
    if media["store"] == "s3":
        click.echo(f"media lives in bucket {media['bucket']}: back it up with bucket versioning or `aws s3 sync`")


@bp.cli.command("restore")
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="overwrite bridge keys Redis already holds")
def cli_restore(in_dir: Path, replace: bool):
    """Put a backup made by `bridge backup` back (stop web and worker first)."""
    try:
        done = restore(current_app.extensions["redis"], current_app.config["SETTINGS"], in_dir, replace=replace)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {done['redis_keys']} Redis keys and {done['media']['files']} media files from {in_dir}")
