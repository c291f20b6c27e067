"""Per-process worker resources: settings, Redis, clients, media store (built once, reused).

The process's context is the `default` connection's; `for_connection(id)` gives another
connection's, with the same attributes (its own settings, keys, clients, token pair, breakers),
so the relays need not know which connection they work for. Redis, the HTTP session, the lanes
and the media store are the process's, shared by every connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from redis import Redis

from app.bridge import keys
from app.bridge.breaker import Breaker
from app.bridge.deadletters import DeadLetters
from app.bridge.effects import Effects
from app.bridge.keys import DEFAULT, DEFAULT_KEYS, Keys
from app.bridge.lanes import Lanes
from app.bridge.mapping import Mapping, MessageMap
from app.bridge.ratelimit import RateLimiter
from app.bridge.secrets_at_rest import sealer_for
from app.bridge.tokens_store import TokenStore
from app.connections.store import Connection, ConnectionStore, Registry, freshchat_account
from app.extensions import connect_redis
from app.integrations.base_client import ClientHooks
from app.integrations.freshchat.client import FreshchatClient
from app.integrations.http import build_session
from app.integrations.zalo.client import ZaloClient
from app.integrations.zalo.tokens import TokenKeeper
from app.media.store import LocalMediaStore, S3MediaStore, build_media_store
from app.operations.counters import Counters
from app.operations.status import remember_error
from config import load_settings

if TYPE_CHECKING:
    from requests import Session

    from config.settings import Settings


class ConnectionUnavailable(LookupError):
    """An item's connection was removed or disabled: its work cannot be delivered now.
    `removed` tells the two apart: a disabled connection's work waits for it."""

    def __init__(self, message: str, removed: bool):
        super().__init__(message)
        self.removed = removed


@dataclass
class WorkerContext:
    """One connection's resources; it is what the relay code takes as `ctx`
    (app/relay/context.py `RelayContext`)."""

    settings: Settings
    redis: Redis
    keys: Keys = DEFAULT_KEYS
    root: WorkerContext | None = field(default=None, repr=False, compare=False)  # the process's
    _contexts: dict[str, tuple[Connection, WorkerContext]] = field(
        default_factory=dict, repr=False, compare=False
    )  # id -> (Connection, ctx)

    @property
    def connection(self) -> str:
        return self.keys.connection

    @property
    def connection_name(self) -> str:
        """How agents know this connection's OA: the name operators gave it; the `default`
        connection, named by no one, by its OA id."""
        if self.connection == DEFAULT:
            return f"OA {self.settings.zalo_oa_id}"
        found = self.connections.get(self.connection)
        return found.name if found is not None else self.connection

    @property
    def _process(self) -> WorkerContext:
        return self.root or self

    @cached_property
    def connections(self) -> Registry:
        """Every connection (the process's registry, re-read from Redis every few seconds)."""
        if self.root:
            return self.root.connections
        return Registry(ConnectionStore(self.redis, self.settings, sealer_for(self.settings)), self.settings)

    def for_connection(self, connection_id: str) -> WorkerContext:
        """The context of one connection, kept while its stored definition stays the same;
        ConnectionUnavailable when it no longer exists or is disabled."""
        process = self._process
        if connection_id == DEFAULT:
            return process
        connection = process.connections.get(connection_id)
        if connection is None or not connection.enabled:
            process.connections.forget_cache()  # created or enabled a moment ago? read it again
            connection = process.connections.get(connection_id)
        if connection is None:
            raise ConnectionUnavailable(f"connection {connection_id} no longer exists", removed=True)
        if not connection.enabled:
            raise ConnectionUnavailable(f"connection {connection_id} is disabled", removed=False)
        known = process._contexts.get(connection_id)
        if known is None or known[0] != connection:
            ctx = WorkerContext(connection.settings, process.redis, Keys(connection_id), root=process)
            known = process._contexts[connection_id] = (connection, ctx)
        return known[1]

    def dead_letters_of(self, connection_id: str) -> DeadLetters:
        """A connection's dead letters, whether or not the connection still exists."""
        return DeadLetters(self.redis, self.lanes, Keys(connection_id))

    @cached_property
    def session(self) -> Session:
        if self.root:
            return self.root.session
        return build_session(self.settings.http_timeout_seconds)

    @cached_property
    def lanes(self) -> Lanes:
        if self.root:
            return self.root.lanes
        return Lanes(self.redis, lease_ms=self.settings.lease_seconds * 1000)

    @cached_property
    def effects(self) -> Effects:
        replicas, wait_ms = self.settings.redis_wait_replicas, self.settings.redis_wait_timeout_ms
        return Effects(self.redis, self.settings.dedupe_ttl_seconds, keys=self.keys, replicas=replicas, wait_ms=wait_ms)

    @cached_property
    def counters(self) -> Counters:
        return Counters(self.redis, self.connection)

    @cached_property
    def mapping(self) -> Mapping:
        owners = keys.conversation_owner(freshchat_account(self.settings))
        ttl = self.settings.dedupe_ttl_seconds
        return Mapping(self.redis, sent_ttl=ttl, keys=self.keys, owners=owners, shared=self._account_shared)

    def _account_shared(self) -> bool:
        """Whether another connection is on this one's FreshChat account: only then does the
        account's webhook need a conversation's owner (app/web/webhooks/freshchat.py)."""
        mine = freshchat_account(self.settings)
        return any(c.id != self.connection and c.freshchat_account == mine for c in self.connections.all())

    @cached_property
    def messages(self) -> MessageMap:
        return MessageMap(self.redis, ttl=self.settings.dedupe_ttl_seconds, keys=self.keys)

    @cached_property
    def dead_letters(self) -> DeadLetters:
        return DeadLetters(self.redis, self.lanes, self.keys)

    def _limiter_patience_ms(self) -> int:
        """A worker sleeps for a rate-limit token only while it surely keeps its lane's lease
        (renewed just before the call); a longer wait defers the item instead."""
        return min(5000, self.settings.lease_seconds * 1000 // 3)

    def _limiter_names(self) -> tuple[str, str]:
        """(Zalo's, FreshChat's): Zalo limits per app, FreshChat per account, so connections
        share a limiter exactly when they share the app or account. Those of the `default`
        connection keep the names single-OA bridges used."""
        base = self._process.settings
        app = self.settings.zalo_app_id
        account = freshchat_account(self.settings)
        zalo = "zalo" if app == base.zalo_app_id else keys.zalo_rate_name(app)
        freshchat = "freshchat" if account == freshchat_account(base) else keys.freshchat_rate_name(account)
        return zalo, freshchat

    def _limiter(self, partner: str, name: str, per_minute: int) -> RateLimiter:
        # Named in the shared key space: a limiter belongs to an app or account, not a connection;
        # its waits are counted as the connection's whose call waited.
        limiter = RateLimiter(
            self.redis,
            name,
            per_minute,
            self.settings.rate_window_seconds,
            self._limiter_patience_ms(),
            keys=DEFAULT_KEYS,
        )
        limiter.on_wait = lambda slept_ms: self.counters.limiter_waited(partner, slept_ms)
        return limiter

    @cached_property
    def tokens(self) -> TokenKeeper:
        """This connection's Zalo token pair (and its refresh lock)."""
        return TokenKeeper(TokenStore(self.redis, sealer_for(self.settings), self.keys), self.settings, self.session)

    @cached_property
    def zalo(self) -> ZaloClient:
        limiter = self._limiter("zalo", self._limiter_names()[0], self.settings.zalo_rate_per_minute)
        client = ZaloClient(self.session, self.settings, self.tokens, limiter, self._hooks("zalo"))
        return client

    @cached_property
    def freshchat(self) -> FreshchatClient:
        limiter = self._limiter("freshchat", self._limiter_names()[1], self.settings.freshchat_rate_per_minute)
        return FreshchatClient(self.session, self.settings, limiter, self._hooks("freshchat"))

    def _hooks(self, partner: str) -> ClientHooks:
        """What a partner client tells this connection: an answer proves the partner is up (its
        breaker closes), each failure is counted, a rejected token is remembered for the console."""
        return ClientHooks(
            on_answer=lambda: self.breaker(partner).mark_ok(),
            on_error=lambda exc: self.counters.partner_error(partner, exc),
            on_token_rejected=lambda exc: remember_error(self.redis, self.keys, f"{exc}; refreshing the token"),
        )

    @cached_property
    def breakers(self) -> dict[str, Breaker]:
        """One per partner and connection; each probes its partner with a cheap read (with
        this connection's credentials: a dead token of one OA is not an outage of another)."""
        return {
            "zalo": Breaker(self.redis, "zalo", lambda: self.zalo.get_oa(), keys=self.keys),
            "freshchat": Breaker(self.redis, "freshchat", lambda: self.freshchat.list_channels(), keys=self.keys),
        }

    def breaker(self, partner: str) -> Breaker:
        return self.breakers.get(partner) or _NEVER_OPEN  # type: ignore[return-value]  # quacks as one

    @cached_property
    def media(self) -> LocalMediaStore | S3MediaStore:
        if self.root:
            return self.root.media
        return build_media_store(self.settings)


class _NeverOpen:
    """The breaker of work that delivers to no partner."""

    def open_for(self, seen: object = None) -> float:
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
        settings = load_settings()
        _context = WorkerContext(settings, connect_redis(settings))
    return _context


def set_worker_context(ctx: WorkerContext | None) -> None:
    """Tests and the supervisor install a context explicitly."""
    global _context
    _context = ctx
