"""Zalo OA token pair: kept in Redis, refreshed ahead of expiry by one process at a time.

Refresh tokens are single use: a refresher that reused an old one would kill the pair. So a
refresh happens under a Redis lock, re-reads the pair after taking the lock (someone else may
have rotated it meanwhile) and stores the new pair before anyone uses it.

Access tokens live 25 h, refresh tokens about 3 months from issue. The pair is refreshed when
a fifth of the access token's lifetime is left, and rotated weekly by `keep_alive()` even
when no message needs it, so an idle OA's refresh token never runs out.

The keeper is handed its store (app/bridge/tokens_store.py: the Redis hash with both tokens
sealed, and the lock). A pair no configured key opens is left as it is: replies wait, as for a
dead pair, until ENCRYPTION_KEY is put back or the OA is re-connected.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import NoReturn, Protocol

import requests
from redis.exceptions import LockError
from redis.lock import Lock

from app.integrations.zalo.errors import ZaloRetryable, ZaloTokenDead
from config.settings import Settings

log = logging.getLogger("zalo.tokens")
REFRESH_FRACTION = 0.2  # refresh when under a fifth of the access token's lifetime is left
REFRESH_TOKEN_LIFETIME = 90 * 86400  # "3 months" from issue, the clock Zalo does not show us
KEEPALIVE_AFTER = 7 * 86400  # rotate a refresh token this old even if nothing needed a call
WARN_BEFORE = 14 * 86400  # alert when the refresh token has less than this left
RETRY_REFRESH_AFTER = 60.0  # a failed early refresh is retried after this; the token still works
LOCK_SECONDS = 30.0  # how long a refresher may hold the lock, and how long others wait
CACHE_SECONDS = 2.0  # a rotation elsewhere is noticed within this, or on the next -216
UNREADABLE = "unreadable"  # set while no key opens the pair, so /readyz can say so
# No pair at all (tokens are optional: an OA connected later): nothing to call Zalo with, and
# nothing to refresh; said in these words (app/connections/checks.py shows the same).
NO_PAIR = (
    'no token yet: connect the OA ("Connect with Zalo" in the console, or a one-time link from '
    "POST /api/connections/<id>/oauth-link) or give access_token and refresh_token"
)


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16] if value else ""


class PairStore(Protocol):
    """Where the pair is kept, tokens sealed: app/bridge/tokens_store.py `TokenStore`."""

    def raw(self) -> dict:
        """Every field as stored, the tokens still sealed."""

    def state(self) -> dict:
        """The pair with its tokens in clear; raises when no key opens them."""

    def opened(self, raw: dict) -> dict | None:
        """`raw` with its tokens in clear; None when no key opens them."""

    def replace(self, fields: dict) -> None:
        """Write a whole new pair at once, sealing its tokens."""

    def mark(self, **fields) -> None:
        """Set bookkeeping fields, leaving the tokens as they are."""

    def unmark(self, field: str) -> None: ...

    def seal_clear(self, raw: dict) -> list[str]:
        """Seal the tokens `raw` found in clear unless they changed meanwhile; the fields sealed."""

    def lock(self, seconds: float) -> Lock: ...


class TokenKeeper:
    def __init__(self, store: PairStore, settings: Settings, session: requests.Session, clock=time.time):
        self.pair_store = store
        self.settings = settings
        self.session = session
        self.clock = clock
        self._cached: tuple[float, dict] = (0.0, {})
        self._retry_at = 0.0

    def state(self) -> dict:
        """The stored pair with its tokens unsealed; the store's UnreadableSecret when no key
        opens them."""
        return self.pair_store.state()

    def access_token(self) -> str:
        """A usable access token, refreshing first when little of its lifetime is left."""
        pair = self._recent_pair()
        if not (pair.get("access_token") or pair.get("refresh_token")):
            raise ZaloTokenDead(NO_PAIR, retry_after=300)
        if pair.get("dead"):
            raise ZaloTokenDead("Zalo refresh token is dead: " + pair["dead"], retry_after=300)
        current = pair.get("access_token", "")
        if self._due(pair):
            try:
                return self.refresh(current)
            except ZaloRetryable as exc:
                if _access_left(pair, self.clock()) <= 0:
                    raise
                self._retry_at = time.monotonic() + RETRY_REFRESH_AFTER  # not on every call
                log.warning("zalo.token.refresh_postponed", extra={"error": str(exc)})
        return current

    def _due(self, pair: dict) -> bool:
        """Little lifetime left (unknown lifetime: only Zalo's -216/-220/-124 tell)."""
        lifetime = _lifetime(pair)
        if not lifetime or time.monotonic() < self._retry_at:
            return False
        return _access_left(pair, self.clock()) < REFRESH_FRACTION * lifetime

    def _recent_pair(self) -> dict:
        """The pair as read at most CACHE_SECONDS ago: one Redis read per call adds up."""
        read_at, pair = self._cached
        if time.monotonic() - read_at > CACHE_SECONDS or not pair:
            pair = self._load()
            self._cached = (time.monotonic(), pair)
        return pair

    def _load(self) -> dict:
        """The stored pair; seeded from the environment until the first rotation."""
        env_refresh = self.settings.zalo_refresh_token
        raw = self.pair_store.raw()
        # Decided on clear fields only: a dead pair is replaced even when its tokens are unreadable.
        reseed = raw.get("dead") and raw.get("seed") != _fingerprint(env_refresh)
        if (not raw or reseed) and (self.settings.zalo_access_token or env_refresh):
            self.store(self.settings.zalo_access_token, env_refresh, None, _fingerprint(env_refresh), accepted=False)
            return self.state()
        pair = self.pair_store.opened(raw)
        if pair is None:
            self._unreadable()
        self._tidy(raw)
        return pair

    def _unreadable(self) -> NoReturn:
        """Keep the pair (the right key may come back) and hold replies like a dead pair does:
        retrying with a token we cannot read would only burn every message's retry budget."""
        self.pair_store.mark(**{UNREADABLE: self.clock()})
        log.critical("zalo.token.unreadable", extra={"error": UNREADABLE_ERROR, "action": UNREADABLE_ACTION})
        raise ZaloTokenDead(UNREADABLE_ERROR, retry_after=300)

    def _tidy(self, raw: dict) -> None:
        """After a successful read: forget an old unreadable mark, seal tokens stored in clear."""
        if UNREADABLE in raw:
            self.pair_store.unmark(UNREADABLE)
        if resealed := self.pair_store.seal_clear(raw):
            log.info("zalo.token.resealed", extra={"fields": ",".join(resealed)})

    def store(
        self,
        access: str,
        refresh: str,
        expires_in,
        seed: str = "",
        refresh_issued_at: float | None = None,
        accepted: bool = True,
    ) -> None:
        """Save a pair atomically (also used by the OAuth callback). `expires_in` is Zalo's
        string of seconds; missing or unreadable means the lifetime is unknown.
        `refresh_issued_at`: when the refresh token was issued (default: now). `accepted`:
        Zalo gave this pair (OAuth, a refresh); False for a pair pasted in settings, which only
        a connection test proves."""
        self._cached = (0.0, {})
        now = self.clock()
        lifetime = _seconds(expires_in)
        self.pair_store.replace(
            {
                "access_token": access,
                "refresh_token": refresh,
                "updated_at": now,
                "expires_at": now + lifetime if lifetime else 0,
                "lifetime": lifetime,
                "refresh_issued_at": refresh_issued_at or now,
                "seed": seed,
                "accepted": "1" if accepted else "",
            }
        )

    def refresh(self, stale_access: str) -> str:
        """Rotate the pair once, whoever asks; return the fresh access token."""
        lock = self._lock()
        if not lock.acquire(blocking_timeout=LOCK_SECONDS):
            raise ZaloRetryable("Zalo token refresh lock busy", retry_after=5)
        try:
            pair = self._load()
            if not (pair.get("access_token") or pair.get("refresh_token") or pair.get("dead")):
                raise ZaloTokenDead(NO_PAIR, retry_after=300)
            if pair.get("access_token") != stale_access and not pair.get("dead"):
                return pair["access_token"]  # another process rotated it while we waited
            if pair.get("dead"):
                raise ZaloTokenDead("Zalo refresh token is dead: " + pair["dead"], retry_after=300)
            return self._rotate(pair)
        finally:
            _release(lock)

    def _lock(self) -> Lock:
        return self.pair_store.lock(LOCK_SECONDS)

    def keep_alive(self) -> bool:
        """Rotate the pair when its refresh token is older than KEEPALIVE_AFTER, so an idle OA's
        pair stays alive; True when it rotated. Partner trouble is logged, never raised: the
        next check tries again. A busy lock means someone is rotating already."""
        try:
            stale = self._stale(self._load())
        except ZaloTokenDead:
            return False  # an unreadable pair: _unreadable has logged it at CRITICAL level
        if not stale:
            return False
        lock = self._lock()
        if not lock.acquire(blocking=False):
            return False
        try:
            pair = self._load()
            if not self._stale(pair):
                return False  # rotated by someone else meanwhile
            self._rotate(pair)
            return True
        except ZaloRetryable as exc:
            log.warning("zalo.token.keepalive_failed", extra={"error": str(exc)})
            return False
        except ZaloTokenDead:
            return False  # _mark_dead has logged it at CRITICAL level
        finally:
            _release(lock)

    def _stale(self, pair: dict) -> bool:
        issued = _refresh_issued_at(pair)
        return bool(
            pair.get("refresh_token") and not pair.get("dead") and issued and self.clock() - issued > KEEPALIVE_AFTER
        )

    def _rotate(self, pair: dict) -> str:
        self.pair_store.mark(refresh_pending=self.clock())
        body = self._call_oauth(pair.get("refresh_token", ""))
        if int(body.get("error") or 0) != 0 or not body.get("access_token"):
            return self._mark_dead(pair, body)
        refresh, issued = body.get("refresh_token"), None
        if not refresh:  # keep the old one, and how old it is
            refresh, issued = pair.get("refresh_token", ""), _refresh_issued_at(pair)
        self.store(body["access_token"], refresh, body.get("expires_in"), pair.get("seed", ""), issued)
        log.info("zalo.token.refreshed", extra={"expires_in": body.get("expires_in")})
        return body["access_token"]

    def _call_oauth(self, refresh_token: str) -> dict:
        url = self.settings.zalo_oauth_base_url + "/v4/oa/access_token"
        data = {"refresh_token": refresh_token, "app_id": self.settings.zalo_app_id, "grant_type": "refresh_token"}
        try:
            resp = self.session.post(url, data=data, headers={"secret_key": self.settings.zalo_app_secret})
        except requests.RequestException as exc:
            raise ZaloRetryable(f"Zalo OAuth unreachable: {type(exc).__name__}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ZaloRetryable(f"Zalo OAuth answered HTTP {resp.status_code}", status=resp.status_code)
        try:
            return resp.json()
        except ValueError:
            raise ZaloRetryable(f"Zalo OAuth answered non-JSON (HTTP {resp.status_code})") from None

    def _mark_dead(self, pair: dict, body: dict) -> str:
        self._cached = (0.0, {})
        reason = f"{body.get('error')} {body.get('error_name') or body.get('message') or ''}".strip()
        self.pair_store.mark(dead=reason, dead_at=self.clock())
        log.critical(
            "zalo.token.dead",
            extra={
                "reason": reason,
                "action": "re-connect the OA at /oauth/zalo/start or set a new ZALO_REFRESH_TOKEN",
            },
        )
        raise ZaloTokenDead("Zalo refresh token is dead: " + reason, retry_after=300)


def _release(lock: Lock) -> None:
    """Give the lock up. Held past LOCK_SECONDS it expired and may be someone else's by now:
    the rotation is done (or failed) either way and failing the message would not undo it,
    so the message goes on and the log says the lock outlived its timeout."""
    try:
        lock.release()
    except LockError:
        log.warning("zalo.token.lock_lost", extra={"lock_seconds": LOCK_SECONDS})


def _seconds(value) -> float:
    try:
        return max(0.0, float(value)) if value not in (None, "") else 0.0
    except (TypeError, ValueError):
        return 0.0


def _lifetime(pair: dict) -> float:
    """The access token's lifetime; pairs stored before it was recorded derive it."""
    if "lifetime" in pair:
        return _seconds(pair["lifetime"])
    expires_at, updated_at = _seconds(pair.get("expires_at")), _seconds(pair.get("updated_at"))
    return max(0.0, expires_at - updated_at) if expires_at and updated_at else 0.0


def _access_left(pair: dict, now: float) -> float:
    return _seconds(pair.get("expires_at")) - now


def _refresh_issued_at(pair: dict) -> float:
    """When the refresh token was issued; older pairs were last stored when it was."""
    return _seconds(pair.get("refresh_issued_at") or pair.get("updated_at"))


# What operators read in /readyz, /admin/status and the logs, with the fix.
UNREADABLE_ERROR = "Zalo token pair cannot be decrypted: ENCRYPTION_KEY (or SECRET_KEY) changed"
UNREADABLE_ACTION = (
    "put the old key back in ENCRYPTION_KEY (after the new one), or re-connect the OA "
    "(admin console: Connect with Zalo)"
)
UNREADABLE_ALERT = UNREADABLE_ERROR + "; " + UNREADABLE_ACTION + " - replies are waiting"
DEAD_ALERT = (
    "zalo refresh token dead: {reason}; re-connect the OA (admin console: Connect with Zalo) - replies are waiting"
)
EXPIRING_ALERT = (
    "zalo refresh token expires in {days:.0f} days and is not being rotated: check that the "
    "worker runs and its zalo.token.keepalive_failed logs, or re-connect the OA "
    "(admin console: Connect with Zalo)"
)
EXPIRED_ALERT = (
    "zalo refresh token is probably expired (issued over 90 days ago); re-connect the OA "
    "(admin console: Connect with Zalo) - replies will wait"
)


def token_health(pair: dict, now: float) -> dict:
    """How long the stored pair has left (seconds, None when unknown) and an alert, if any."""
    if not pair.get("access_token") and not pair.get("refresh_token"):
        return {"access_expires_in": None, "refresh_expires_in": None, "alert": None}
    expires_at, issued = _seconds(pair.get("expires_at")), _refresh_issued_at(pair)
    access_left = round(expires_at - now) if expires_at else None
    refresh_left = round(issued + REFRESH_TOKEN_LIFETIME - now) if issued else None
    alert = None
    if pair.get(UNREADABLE):
        alert = UNREADABLE_ALERT
    elif pair.get("dead"):
        alert = DEAD_ALERT.format(reason=pair["dead"])
    elif refresh_left is not None and refresh_left <= 0:
        alert = EXPIRED_ALERT
    elif refresh_left is not None and refresh_left < WARN_BEFORE:
        alert = EXPIRING_ALERT.format(days=refresh_left / 86400)
    return {"access_expires_in": access_left, "refresh_expires_in": refresh_left, "alert": alert}
