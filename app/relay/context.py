"""What the relay code is handed as `ctx`: one connection's settings, stores and partner clients.

A Protocol, so the relay does not import the worker that builds it (workers/context.py's
`WorkerContext` is the one implementation; the layer rule is that app/ never imports workers/).
Each attribute is the connection's own, or the process's where every connection shares it
(Redis, the HTTP session, the lanes, the media store).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # types only: importing the clients here would load them with every relay module
    from redis import Redis
    from requests import Session

    from app.bridge.breaker import Breaker
    from app.bridge.deadletters import DeadLetters
    from app.bridge.effects import Effects
    from app.bridge.keys import Keys
    from app.bridge.lanes import Lanes
    from app.bridge.mapping import Mapping, MessageMap
    from app.integrations.freshchat.client import FreshchatClient
    from app.integrations.zalo.client import ZaloClient
    from app.integrations.zalo.tokens import TokenKeeper
    from app.media.store import LocalMediaStore, S3MediaStore
    from app.operations.counters import Counters
    from config.settings import Settings

# What a handler calls between partner calls: renews the lane's lease, or raises LeaseLost.
Progress = Callable[[], None]


class RelayContext(Protocol):
    settings: Settings
    redis: Redis
    keys: Keys

    @property
    def connection(self) -> str: ...
    @property
    def connection_name(self) -> str: ...
    @property
    def session(self) -> Session: ...
    @property
    def lanes(self) -> Lanes: ...
    @property
    def effects(self) -> Effects: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def mapping(self) -> Mapping: ...
    @property
    def messages(self) -> MessageMap: ...
    @property
    def dead_letters(self) -> DeadLetters: ...
    @property
    def tokens(self) -> TokenKeeper: ...
    @property
    def zalo(self) -> ZaloClient: ...
    @property
    def freshchat(self) -> FreshchatClient: ...
    @property
    def media(self) -> LocalMediaStore | S3MediaStore: ...

    def breaker(self, partner: str) -> Breaker: ...
