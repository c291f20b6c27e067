"""One throttle for every wrong token, wherever it is tried: the console's sign-in and the bearer
routes (/api, the old /admin JSON routes, /oauth/zalo/start, /metrics).

Wrong tokens are counted per client address (the real client's behind TRUSTED_PROXIES,
app/web/proxies.py) in Redis, shared by every web process: after FREE_FAILURES, each further try
waits longer, whichever door it knocks on. While a client waits, even the right token is
refused, or the wait would tell a right guess from a wrong one. Another client never waits for
it. Each wrong token and each wait that starts leaves one audit line, with the client's address
and never the token; tries refused during a wait leave none, so a flood cannot fill the logs.
"""

from __future__ import annotations

import hmac
import logging
import math

from flask import abort, jsonify, request
from redis import Redis
from redis.exceptions import RedisError

from app import extensions
from app.bridge import keys
from app.logs import audit

FREE_FAILURES = 5  # a mistyped token or two costs nothing
MAX_WAIT = 15 * 60
FORGET_AFTER = 3600  # failures older than an hour without another are forgotten
log = logging.getLogger("web")


class SignInThrottle:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def wait_left(self, client: str) -> int:
        """Seconds this client must still wait before a token is looked at (0: none)."""
        left = self.redis.pttl(keys.signin_wait(client))
        return math.ceil(left / 1000) if left > 0 else 0

    def failed(self, client: str) -> int:
        """Count a failure; the wait it imposes (doubling from the sixth failure on)."""
        pipe = self.redis.pipeline()
        pipe.incr(keys.signin_failures(client))
        pipe.expire(keys.signin_failures(client), FORGET_AFTER)
        count, _ = pipe.execute()
        if count < FREE_FAILURES:
            return 0
        wait = min(2 ** (count - FREE_FAILURES + 1), MAX_WAIT)
        self.redis.set(keys.signin_wait(client), 1, ex=wait)
        return wait

    def succeeded(self, client: str) -> None:
        self.redis.delete(keys.signin_failures(client), keys.signin_wait(client))


def throttle() -> SignInThrottle:
    return SignInThrottle(extensions.redis())


def client_address() -> str:
    """The client's address: the socket's, or behind TRUSTED_PROXIES the one they saw."""
    return request.remote_addr or "unknown"


def same_token(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def count_failure(client: str, door: str) -> int:
    """Count a wrong token of `client` at `door`; the wait that starts now (0: none)."""
    wait = throttle().failed(client)
    if wait:
        audit("throttled", client=client, door=door, wait_seconds=wait)
    return wait


def bearer_ok(expected: str) -> bool:
    """Whether the request carries `expected` as `Authorization: Bearer …`. A presented wrong
    token is counted and logged; a client that must wait gets a JSON 429 whatever it sent.
    With Redis away the token is still checked, only not counted: /metrics must still answer."""
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header.startswith("Bearer ") else ""
    if not given:
        return False  # nothing tried, nothing to count
    client, door = client_address(), _route()
    try:
        wait = throttle().wait_left(client)
        if not wait and not same_token(given, expected):
            audit("bearer_wrong_token", client=client, route=door)
            wait = count_failure(client, door)
    except RedisError:
        log.warning("web.throttle_unavailable", extra={"route": door})
        wait = 0
    if wait:
        _too_many(wait)
    return same_token(given, expected)


def _route() -> str:
    """The route's rule (never the raw path: a client writes that, line breaks included)."""
    return request.url_rule.rule if request.url_rule else (request.blueprint or "-")


def _too_many(wait: int):
    answer = jsonify({"error": f"too many wrong tokens; try again in {wait} seconds"})
    answer.status_code = 429
    answer.headers["Retry-After"] = str(wait)
    answer.headers["Cache-Control"] = "no-store"
    abort(answer)
