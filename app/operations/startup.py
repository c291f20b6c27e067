"""Start-up that tells the truth: what cannot work is said at start, in /readyz and in the console.

Web and worker log the settings' problems when they start (a public URL only this machine can
reach, a FreshChat URL without /v2). The worker also tries every enabled connection's
credentials once at start (app/connections/checks.py: reads only) and records the answer, which
/readyz, the status and the console show as problems; a failed test is tried again every few
minutes, and the console's "Test connection" records its answer too, so a fixed connection
clears. The web only reads the record: it never calls a partner while answering a request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.connections.checks import TEXTS, check, last_check, record_check
from app.connections.store import Connection
from app.operations.problems import settings_problems
from config.settings import Settings

if TYPE_CHECKING:  # types only: the worker runs these tests with its context (workers/supervisor.py)
    from workers.context import WorkerContext

log = logging.getLogger("startup")
TOKEN_REFUSED = TEXTS["token_refused"].split(" (")[0]


def warn_about_settings(settings: Settings, logger: logging.Logger = log) -> None:
    for code, values in settings_problems(settings):
        logger.warning(f"startup.{code}", extra=values)


def failed(result: dict | None) -> bool:
    if not result:
        return False
    return not all(result[p]["ok"] for p in ("zalo", "freshchat"))


class ConnectionTests:
    """The worker's tests of every enabled connection: all at start, then the failed ones."""

    def __init__(self, ctx: WorkerContext):
        self.ctx = ctx

    def run(self, only_failed: bool = False) -> None:
        for connection in self.ctx.connections.all():
            if not connection.enabled:
                continue
            if only_failed and not failed(last_check(self.ctx.redis, connection.id)):
                continue
            try:
                self.test(connection)
            except Exception:  # one connection's trouble must not keep the others untested
                log.exception("startup.check_failed", extra={"connection": connection.id})

    def test(self, connection: Connection) -> dict:
        ctx = self.ctx.for_connection(connection.id)
        result = check(connection, ctx.redis, ctx.session)
        if result["zalo"]["detail"].startswith(TOKEN_REFUSED) and self._refreshed(ctx):
            result = check(connection, ctx.redis, ctx.session)  # a stale access token is no refusal
        record_check(ctx.redis, connection.id, result)
        self._say(connection.id, result)
        return result

    @staticmethod
    def _refreshed(ctx: WorkerContext) -> bool:
        """Rotate the pair as a message would; a dead refresh token is recorded by the keeper."""
        try:
            ctx.tokens.refresh(ctx.tokens.state().get("access_token") or ctx.settings.zalo_access_token)
        except Exception as exc:  # ZaloTokenDead, Zalo unreachable: the second test says it
            log.warning("startup.token_refresh_failed", extra={"connection": ctx.connection, "error": str(exc)})
            return False
        return True

    @staticmethod
    def _say(connection_id: str, result: dict) -> None:
        for partner in ("zalo", "freshchat"):
            outcome = result[partner]
            extra = {"connection": connection_id, "partner": partner, "detail": outcome["detail"]}
            if outcome["ok"]:
                log.info("startup.connection_ok", extra=extra)
            elif outcome["detail"] == TEXTS["no_token"]:
                log.warning("startup.no_token", extra=extra)
            else:
                log.warning("startup.connection_refused", extra=extra)
