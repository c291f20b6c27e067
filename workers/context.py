"""Per-process worker resources: settings, Redis, clients, media store (built once, reused)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from redis import Redis

from app.bridge.breaker import Breaker
from app.bridge.deadletters import DeadLetters
from app.bridge.effects import Effects
from app.bridge.lanes import Lanes
from app.bridge.mapping import Mapping
from app.bridge.ratelimit import RateLimiter
from app.integrations.http import build_session


@dataclass
class WorkerContext:
    settings: object
    redis: Redis

    @cached_property
    def session(self):
        return build_session(self.settings.http_timeout_seconds)

    @cached_property
    def lanes(self) -> Lanes:
        return Lanes(self.redis, lease_ms=self.settings.lease_seconds * 1000)

    @cached_property
    def effects(self) -> Effects:
        return Effects(self.redis, self.settings.dedupe_ttl_seconds)

    @cached_property
    def mapping(self) -> Mapping:
        return Mapping(self.redis, sent_ttl=self.settings.dedupe_ttl_seconds)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self.redis, self.lanes)

    def _limiter_patience_ms(self) -> int:
        """A worker sleeps for a rate-limit token only while it surely keeps its lane's lease
        (renewed just before the call); a longer wait defers the item instead."""
        return min(5000, self.settings.lease_seconds * 1000 // 3)

    @cached_property
    def zalo(self):
        from app.integrations.zalo.client import ZaloClient
        from app.integrations.zalo.tokens import TokenKeeper

        tokens = TokenKeeper(self.redis, self.settings, self.session)
        limiter = RateLimiter(
            self.redis,
            "zalo",
            self.settings.zalo_rate_per_minute,
            self.settings.rate_window_seconds,
            self._limiter_patience_ms(),
        )
        return ZaloClient(self.session, self.settings, tokens, limiter)

    @cached_property
    def freshchat(self):
        from app.integrations.freshchat.client import FreshchatClient

        limiter = RateLimiter(
            self.redis,
            "freshchat",
            self.settings.freshchat_rate_per_minute,
            self.settings.rate_window_seconds,
            self._limiter_patience_ms(),
        )
        return FreshchatClient(self.session, self.settings, limiter)

    @cached_property
    def breakers(self) -> dict[str, Breaker]:
        """One per partner; each probes its partner with a cheap read."""
        return {
            "zalo": Breaker(self.redis, "zalo", lambda: self.zalo.get_oa()),
            "freshchat": Breaker(self.redis, "freshchat", lambda: self.freshchat.list_channels()),
        }

    def breaker(self, partner: str) -> Breaker:
        return self.breakers.get(partner) or _NEVER_OPEN

    @cached_property
    def media(self):
        from app.media.store import build_media_store

        return build_media_store(self.settings)


class _NeverOpen:
    """The breaker of work that delivers to no partner."""

    def open_for(self) -> float:
        return 0.0

    def partner_down(self) -> bool:
        return False

    def mark_ok(self) -> None:
        pass


_NEVER_OPEN = _NeverOpen()
_context: WorkerContext | None = None


def worker_context() -> WorkerContext:
    """The process-wide context; the RQ worker process builds it once from the environment."""
    global _context
    if _context is None:
        from app.extensions import connect_redis
        from config import load_settings

        settings = load_settings()
        _context = WorkerContext(settings, connect_redis(settings))
    return _context


def set_worker_context(ctx: WorkerContext | None) -> None:
    """Tests and the supervisor install a context explicitly."""
    global _context
    _context = ctx
