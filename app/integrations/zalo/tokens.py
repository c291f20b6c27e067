"""Zalo OA token pair: kept in Redis, refreshed ahead of expiry by one process at a time.

Refresh tokens are single use: a refresher that reused an old one would kill the pair. So a
refresh happens under a Redis lock, re-reads the pair after taking the lock (someone else may
have rotated it meanwhile) and stores the new pair before anyone uses it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

import requests
from redis import Redis

from app.bridge.lanes import PREFIX
from app.integrations.zalo.errors import ZaloRetryable, ZaloTokenDead

log = logging.getLogger("zalo.tokens")
TOKEN = PREFIX + "zalo:token"
LOCK = PREFIX + "zalo:token:lock"
REFRESH_MARGIN = 3600          # refresh when under an hour is left (tokens live 25 h)
LOCK_MS = 30000
CACHE_SECONDS = 2.0            # a rotation elsewhere is noticed within this, or on the next -216

RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16] if value else ""


class TokenKeeper:
    def __init__(self, redis: Redis, settings, session: requests.Session):
        self.redis = redis
        self.settings = settings
        self.session = session
        self._release = redis.register_script(RELEASE_LOCK)
        self._cached: tuple[float, dict] = (0.0, {})

    def state(self) -> dict:
        raw = self.redis.hgetall(TOKEN)
        return {k.decode(): v.decode() for k, v in raw.items()}

    def access_token(self) -> str:
        """A usable access token, refreshing first when it is about to expire."""
        pair = self._recent_pair()
        if pair.get("dead"):
            raise ZaloTokenDead("Zalo refresh token is dead: " + pair["dead"], retry_after=300)
        expires_at = float(pair.get("expires_at") or 0)
        if expires_at and expires_at - time.time() < REFRESH_MARGIN:
            return self.refresh(pair.get("access_token", ""))
        return pair.get("access_token", "")

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
        pair = self.state()
        reseed = pair.get("dead") and pair.get("seed") != _fingerprint(env_refresh)
        if (not pair or reseed) and (self.settings.zalo_access_token or env_refresh):
            self.store(self.settings.zalo_access_token, env_refresh, 0, seed=_fingerprint(env_refresh))
            pair = self.state()
        return pair

    def store(self, access: str, refresh: str, expires_in: float, seed: str = "") -> None:
        """Save a pair atomically (also used by the OAuth callback)."""
        self._cached = (0.0, {})
        mapping = {"access_token": access, "refresh_token": refresh, "updated_at": time.time(),
                   "expires_at": time.time() + expires_in if expires_in else 0, "seed": seed}
        pipe = self.redis.pipeline()
        pipe.delete(TOKEN)
        pipe.hset(TOKEN, mapping=mapping)
        pipe.execute()

    def refresh(self, stale_access: str) -> str:
        """Rotate the pair once, whoever asks; return the fresh access token."""
        token = self._lock()
        try:
            pair = self._load()
            if pair.get("access_token") != stale_access and not pair.get("dead"):
                return pair["access_token"]  # another process rotated it while we waited
            if pair.get("dead"):
                raise ZaloTokenDead("Zalo refresh token is dead: " + pair["dead"], retry_after=300)
            return self._rotate(pair)
        finally:
            self._release(keys=[LOCK], args=[token])

    def _lock(self) -> str:
        token = secrets.token_hex(8)
        deadline = time.monotonic() + LOCK_MS / 1000.0
        while not self.redis.set(LOCK, token, nx=True, px=LOCK_MS):
            if time.monotonic() > deadline:
                raise ZaloRetryable("Zalo token refresh lock busy", retry_after=5)
            time.sleep(0.05)
        return token

    def _rotate(self, pair: dict) -> str:
        self.redis.hset(TOKEN, "refresh_pending", time.time())
        body = self._call_oauth(pair.get("refresh_token", ""))
        if int(body.get("error") or 0) != 0 or not body.get("access_token"):
            return self._mark_dead(pair, body)
        refresh = body.get("refresh_token") or pair.get("refresh_token", "")
        self.store(body["access_token"], refresh, float(body.get("expires_in") or 3600), pair.get("seed", ""))
        log.info("zalo.token.refreshed", extra={"expires_in": body.get("expires_in")})
        return body["access_token"]

    def _call_oauth(self, refresh_token: str) -> dict:
        url = self.settings.zalo_oauth_base_url + "/v4/oa/access_token"
        data = {"refresh_token": refresh_token, "app_id": self.settings.zalo_app_id,
                "grant_type": "refresh_token"}
        try:
            resp = self.session.post(url, data=data, headers={"secret_key": self.settings.zalo_app_secret})
        except requests.RequestException as exc:
            raise ZaloRetryable(f"Zalo OAuth unreachable: {type(exc).__name__}") from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise ZaloRetryable(f"Zalo OAuth answered HTTP {resp.status_code}", status=resp.status_code)
        try:
            return resp.json()
        except ValueError:
            raise ZaloRetryable(f"Zalo OAuth answered non-JSON (HTTP {resp.status_code})")

    def _mark_dead(self, pair: dict, body: dict) -> str:
        self._cached = (0.0, {})
        reason = f"{body.get('error')} {body.get('error_name') or body.get('message') or ''}".strip()
        self.redis.hset(TOKEN, mapping={"dead": reason, "dead_at": time.time()})
        log.critical("zalo.token.dead", extra={"reason": reason, "action":
                     "re-connect the OA at /oauth/zalo/start or set a new ZALO_REFRESH_TOKEN"})
        raise ZaloTokenDead("Zalo refresh token is dead: " + reason, retry_after=300)
