"""Every `flask bridge …` command (and `bin/bridge`): dead letters, connections, catch-up,
backup, restore, forgetting a person. Registered on the app by create_app, as one `bridge` group."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeVar

import click
from flask.cli import AppGroup, ScriptInfo
from redis.exceptions import RedisError

from app import extensions
from app.bridge.deadletters import DeadLetters
from app.connections.problem import Problem
from app.errors import PartnerError
from app.operations.backup import BackupError, backup, restore
from app.relay.catchup import CatchUpStopped, catch_up, parse_since
from app.web import jobs
from config.redis_url import masked

T = TypeVar("T")


class BridgeGroup(AppGroup):
    """`flask bridge` (and `bin/bridge`): a Redis that does not answer is one line, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RedisError as exc:
            url = masked(ctx.ensure_object(ScriptInfo).load_app().config["SETTINGS"].redis_url)
            raise click.ClickException(
                f"Redis at {url} did not answer ({type(exc).__name__}): is `make run` running? "
                "bin/bridge uses its Redis; REDIS_URL names another"
            ) from None


bridge = BridgeGroup("bridge", help="Operate the bridge: connections, dead letters, catch-up, backups.")
connections_cli = AppGroup("connections", help="Add, list, show, test, disable and remove connections.")
bridge.add_command(connections_cli)


def _dead_letters() -> DeadLetters:
    return DeadLetters(extensions.redis(), extensions.lanes())


@bridge.group("dead-letters")
def dead_letters_cli() -> None:
    """List, inspect, replay and drop items that failed for good."""


@dead_letters_cli.command("list")
def dead_letters_list() -> None:
    for record in _dead_letters().list(limit=1000):
        click.echo(f"{record['id']}\t{record['lane']}\t{record['reason'][:120]}")
    click.echo(f"{_dead_letters().count()} dead letter(s)")


@dead_letters_cli.command("show")
@click.argument("item_id")
def dead_letters_show(item_id: str) -> None:
    record = _dead_letters().get(item_id)
    if record is None:
        raise click.ClickException(f"no dead letter {item_id}")
    click.echo(json.dumps(record, indent=2, ensure_ascii=False))


@dead_letters_cli.command("replay")
@click.argument("item_ids", nargs=-1, required=True)
def dead_letters_replay(item_ids: tuple[str, ...]) -> None:
    for item_id in item_ids:
        click.echo(f"replayed {item_id}" if _dead_letters().replay(item_id) else f"no dead letter {item_id}")


@dead_letters_cli.command("drop")
@click.argument("item_ids", nargs=-1, required=True)
def dead_letters_drop(item_ids: tuple[str, ...]) -> None:
    for item_id in item_ids:
        click.echo(f"dropped {item_id}" if _dead_letters().drop(item_id) else f"no dead letter {item_id}")


@bridge.command("catch-up")
@click.option("--connection", "connection_id", help="One connection (default: every enabled one).")
@click.option("--since", help="Seconds back, or an ISO 8601 time (default: since the last catch-up).")
def cli_catch_up(connection_id: str | None, since: str | None) -> None:
    """Queue what Zalo's history holds and no webhook brought (runs here, not in a worker)."""
    # start-up cost: every web process loads this module, only this command needs the worker's stack
    from workers.context import ConnectionUnavailable, WorkerContext

    try:
        since_ms = parse_since(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    ctx = WorkerContext(extensions.settings(), extensions.redis())
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


@bridge.command("backup")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def cli_backup(out_dir: Path) -> None:
    """Copy every bridge key in Redis, and the local media store, into OUT_DIR."""
    try:
        manifest = backup(extensions.redis(), extensions.settings(), out_dir)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    media = manifest["media"]
    click.echo(f"backed up {manifest['redis_keys']} Redis keys and {media['files']} media files into {out_dir}")
    if media["store"] == "s3":
        click.echo(f"media lives in bucket {media['bucket']}: back it up with bucket versioning or `aws s3 sync`")


@bridge.command("restore")
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="overwrite bridge keys Redis already holds")
def cli_restore(in_dir: Path, replace: bool) -> None:
    """Put a backup made by `bridge backup` back (stop web and worker first)."""
    try:
        done = restore(extensions.redis(), extensions.settings(), in_dir, replace=replace)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {done['redis_keys']} Redis keys and {done['media']['files']} media files from {in_dir}")


# -- flask bridge connections ... ------------------------------------------------------------------


def dumps(answer: object) -> str:
    return json.dumps(answer, indent=2, ensure_ascii=False)


def _run(action: Callable[[], T]) -> T:
    """Problems become one line per message and exit status 1, as the API's 4xx answers."""
    try:
        return action()
    except Problem as exc:
        lines = [exc.message, *(f"  {name}: {message}" for name, message in exc.fields.items())]
        raise click.ClickException("\n".join(lines)) from None


@connections_cli.command("add")
@click.argument("body", type=click.File("r"), default="-")
def cli_add(body: TextIO) -> None:
    """Add a connection from a JSON file (the body of POST /api/connections; - or none: stdin)."""
    try:
        data = json.load(body)
    except ValueError as exc:
        raise click.ClickException(f"not JSON: {exc}") from None
    click.echo(dumps(_run(lambda: jobs.overview().show(jobs.service().create(data)))))


@connections_cli.command("list")
def cli_list() -> None:
    for conn in _run(lambda: jobs.overview().list()):
        state = "enabled" if conn["enabled"] else "disabled"
        zalo, fc = conn["zalo"], conn["freshchat"]
        click.echo(
            f"{conn['id']}\t{state}\t{conn['name']}\tZalo app {zalo['app_id']} OA {zalo['oa_id']}"
            f"\t{fc['api_url']} channel {fc['channel_id']}"
        )


@connections_cli.command("show")
@click.argument("connection_id")
def cli_show(connection_id: str) -> None:
    click.echo(dumps(_run(lambda: jobs.overview().show(connection_id))))


@connections_cli.command("test")
@click.argument("connection_id")
def cli_test(connection_id: str) -> None:
    """Check the credentials against Zalo and FreshChat; exit status 1 when one fails."""
    result = _run(lambda: jobs.checks().test(connection_id))
    for partner, outcome in result.items():
        click.echo(f"{partner}: {'ok' if outcome['ok'] else 'FAILED'}: {outcome['detail']}")
    if not all(outcome["ok"] for outcome in result.values()):
        sys.exit(1)


@connections_cli.command("disable")
@click.argument("connection_id")
def cli_disable(connection_id: str) -> None:
    _run(lambda: jobs.service().set_enabled(connection_id, False))
    click.echo(f"disabled {connection_id}")


@connections_cli.command("enable")
@click.argument("connection_id")
def cli_enable(connection_id: str) -> None:
    _run(lambda: jobs.service().set_enabled(connection_id, True))
    click.echo(f"enabled {connection_id}")


@connections_cli.command("remove")
@click.argument("connection_id")
def cli_remove(connection_id: str) -> None:
    """Remove a connection; its queued items are kept as its dead letters."""
    done = _run(lambda: jobs.service().remove(connection_id))
    click.echo(
        f"removed {connection_id}; {done['kept_as_dead_letters']} queued item(s) kept as dead letters "
        f"(GET /api/dead-letters?connection={connection_id})"
    )


@bridge.command("forget")
@click.argument("connection_id")
@click.argument("zalo_user_id")
def cli_forget(connection_id: str, zalo_user_id: str) -> None:
    """Forget a person (a data-deletion request): every record of that Zalo user in that
    connection, counted, as DELETE /api/connections/<id>/users/<zalo_user_id> answers it."""
    click.echo(dumps(_run(lambda: jobs.forgetting().person(connection_id, zalo_user_id))))
