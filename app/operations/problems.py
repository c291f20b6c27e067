"""What is wrong with a connection, in words an operator can act on (the console shows them red).

`find` reads a connection's status (app/operations/status.py), its settings and the worker's last
connection test (app/operations/startup.py), and answers one entry per problem:
its `code`, the values its text needs and the English text; `problem_text` gives the same in
either language, so a page can render its visitor's language from the code and values alone.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse

from app.connections.checks import TEXTS as CHECK_TEXTS
from app.integrations.zalo.tokens import WARN_BEFORE
from app.texts import say, vn_time
from config.settings import Settings

STUCK_SECONDS = 120  # due work no worker took for this long: the workers are down or overloaded
CODES = (
    "public_url_local",
    "freshchat_url_no_v2",
    "zalo_refused",
    "freshchat_refused",
    "token_dead",
    "token_expired",
    "token_expiring",
    "no_token",
    "no_zalo_webhook",
    "no_freshchat_webhook",
    "dead_letters",
    "queue_stuck",
    "webhook_off",
    "redis_replicas_short",
)


def problem_text(code: str, language: str, **values) -> dict[str, str]:
    """{"what": ..., "fix": ...} of a problem `code` in `language` ("vi" or "en")."""
    return {part: say(f"problem.{code}.{part}", language, **values) for part in ("what", "fix")}


def find(
    status: dict, token_given: bool, now: float, settings: Settings | None = None, check: dict | None = None
) -> list[dict]:
    """The problems of a connection's `status`; `token_given`: its settings hold a token pair
    (the environment's) that is used although Redis holds none yet; `settings`: the
    connection's; `check`: the last connection test a worker recorded for it."""
    found = [*settings_problems(settings), *_check_problems(check)]
    found += _token_problems(status["zalo_token"], token_given)
    sandbox = bool(settings and settings.sandbox)  # the simulators send webhooks: nothing to paste
    for source in ("zalo", "freshchat"):
        if status["last_webhook"].get(source) is None and not sandbox:
            found.append((f"no_{source}_webhook", {}))
    if status["dead_letters"]:
        found.append(("dead_letters", {"count": status["dead_letters"]}))
    oldest = status.get("oldest_due_at")
    if oldest is not None and now - oldest > STUCK_SECONDS:
        found.append(("queue_stuck", {"minutes": max(1, round((now - oldest) / 60))}))
    if _webhook_off(status["catch_up"], status["last_webhook"].get("zalo")):
        caught_up = status["catch_up"]
        found.append(
            ("webhook_off", {"count": caught_up["missed"], "when": vn_time(caught_up["newest_missed_at"] * 1000)})
        )
    return [dict(code=code, values=values, **problem_text(code, "en", **values)) for code, values in found]


def bridge_problems(replicas: dict | None) -> list[dict]:
    """The whole bridge's problems, not one connection's: too few Redis replicas for
    REDIS_WAIT_REPLICAS (`replicas` as `Lanes.replica_state` gives it), so webhooks get 503."""
    if not replicas or not replicas["short"]:
        return []
    connected = "?" if replicas["connected"] is None else replicas["connected"]
    values = {"connected": connected, "wanted": replicas["wanted"]}
    return [dict(code="redis_replicas_short", values=values, **problem_text("redis_replicas_short", "en", **values))]


def as_alert(problem: dict, language: str) -> str:
    """A problem as one line of a status's "alerts"."""
    text = problem_text(problem["code"], language, **problem["values"])
    return f"{text['what']} {text['fix']}"


def _webhook_off(caught_up: dict | None, last_zalo_webhook: float | None) -> bool:
    """Catch-up had to queue messages that no webhook brought, and no webhook came after the
    newest of them: Zalo may have switched the webhook off. A webhook arriving ends it."""
    if not caught_up or not caught_up["missed"]:
        return False
    return not last_zalo_webhook or last_zalo_webhook < caught_up["newest_missed_at"]


def settings_problems(settings: Settings | None) -> list[tuple[str, dict]]:
    """What no partner can work with, seen from the settings alone (sandbox mode has none)."""
    if settings is None or settings.sandbox:
        return []
    found = []
    if is_local(settings.public_base_url):
        found.append(("public_url_local", {"url": settings.public_base_url}))
    if settings.freshchat_api_url and not has_v2(settings.freshchat_api_url):
        found.append(("freshchat_url_no_v2", {"url": settings.freshchat_api_url}))
    return found


def is_local(url: str) -> bool:
    """Whether `url` names this machine only: partners and customers could never reach it."""
    host = (urlparse(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def has_v2(api_url: str) -> bool:
    return api_url.rstrip("/").endswith("/v2")


def _check_problems(check: dict | None) -> list[tuple[str, dict]]:
    """A refusal in the last connection test; a missing pair is `no_token`'s to say."""
    if not check:
        return []
    found = []
    for partner in ("zalo", "freshchat"):
        result = check.get(partner) or {}
        if result.get("ok") is False and result.get("detail") != CHECK_TEXTS["no_token"]:
            found.append((f"{partner}_refused", {"detail": str(result.get("detail", ""))[:300]}))
    return found


def _token_problems(token: dict, token_given: bool) -> list[tuple[str, dict]]:
    if token.get("dead"):
        return [("token_dead", {"reason": token["dead"][:200]})]
    left = token.get("refresh_expires_in")
    if left is not None and left <= 0:
        return [("token_expired", {})]
    if left is not None and left < WARN_BEFORE:
        return [("token_expiring", {"days": max(0, int(left // 86400))})]
    if not token.get("present") and not token_given:
        return [("no_token", {})]
    return []
