"""What became of one queued item, as the worker hands it to the after-delivery subscribers.

The worker (workers/drain.py) delivers an item and records its fate in the lane (pop or defer);
then it builds one `Outcome` and publishes it once (app/relay/subscribers.py). Everything that
happens *because* of an outcome (journal, counters, last errors, reply-window timer, billed-reply
note, dead-letter note) is a subscriber that reads it; none of them is called from the relay or
drain code. A relay handler tells the subscribers what it learned by returning a `Relayed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.client import Pipeline

from app.bridge.lanes import Item

if TYPE_CHECKING:
    from app.relay.context import RelayContext

# What became of an item (the journal shows the same words, app/bridge/journal.py).
DELIVERED, RETRYING, FAILED = "delivered", "retrying", "failed"
DIRECTION_OF_KIND = {"zalo": "in", "freshchat": "out"}  # an item's kind is the partner it came from


@dataclass(frozen=True)
class Relayed:
    """What a relay handler learned that the subscribers need (its return value)."""

    zalo_user: str = ""
    user_wrote_at: int = 0  # the Zalo user's message (ms) is their newest: their reply window restarts
    reply: dict | None = None  # the agent's FreshChat message that went out...
    sent: tuple[str, ...] = ()  # ...as these Zalo message ids


@dataclass(frozen=True)
class Outcome:
    """One finished (or deferred) item. `ctx` is the item's connection's context, or the
    process's when that connection was removed (`removed`: only the records that name the
    connection apply, nobody can tell its agents)."""

    ctx: RelayContext
    lane: str
    item: Item
    state: str  # DELIVERED, RETRYING or FAILED
    reason: str = ""  # RETRYING: the last error; FAILED: the dead letter's reason
    error: str = ""  # this try failed and counts (an attempt spent or a partner-wide failure)
    next_try: float | None = None  # RETRYING: when (epoch seconds)
    dead_letter: str | None = None  # FAILED: the dead letter's id
    relayed: bool = False  # DELIVERED and a message now is on the other side (what "relayed" counts)
    latency_ms: int = 0  # DELIVERED: from the webhook's acceptance to now
    learned: Relayed | None = None  # what the handler returned
    removed: bool = False

    @property
    def direction(self) -> str:
        """ "in" (Zalo -> FreshChat) or "out", by the partner the item came from."""
        return DIRECTION_OF_KIND.get(self.item.kind, "")


# A subscriber: called once per outcome with a pipeline it may add its Redis writes to (the
# worker executes it once, after every subscriber ran). One that calls a partner does so itself.
Subscriber = Callable[[Outcome, Pipeline], None]
