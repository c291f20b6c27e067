"""What a partner client needs of a rate limiter, named here so the client imports no engine.

app/bridge/ratelimit.py's `RateLimiter` (a token bucket shared through Redis) satisfies it;
the worker hands one to each client it builds (workers/context.py).
"""

from __future__ import annotations

from typing import Protocol


class Grant(Protocol):
    """A limiter's answer to one call asking to go."""

    @property
    def wait_ms(self) -> int:
        """0 when the call may go now, else how long it would still have to wait."""

    @property
    def at_ms(self) -> int:
        """When it was granted: what `backoff()` and `calm()` compare with."""

    @property
    def streak(self) -> int:
        """Quota refusals in a row so far: only then must a success say so."""


class Limiter(Protocol):
    """A rate shared by every worker calling one partner account."""

    def grant(self) -> Grant:
        """Wait briefly for a turn; a grant with `wait_ms` > 0 when the wait would be too long."""

    def penalise(self, seconds: float) -> None:
        """The partner answered 429: nobody calls it for `seconds`."""

    def backoff(self, granted_at_ms: int, max_seconds: float) -> float:
        """A quota refusal: pause everyone, longer while refusals go on; the pause in seconds."""

    def calm(self, granted_at_ms: int) -> None:
        """A call granted at `granted_at_ms` went through: the refusal streak is over."""
