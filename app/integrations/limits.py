"""What a partner client needs of a shared rate limiter, as an interface: the clients are handed
one (app/bridge/ratelimit.py `RateLimiter`, built by workers/context.py) and import nothing of
the delivery engine."""

from __future__ import annotations

from typing import Protocol


class Grant(Protocol):
    wait_ms: int  # 0 when the call may go now
    at_ms: int  # when it was granted (what backoff() and calm() compare with)
    streak: int  # rate-limit answers in a row so far; only then must a success say so


class Limiter(Protocol):
    def grant(self) -> Grant:
        """Wait for a token; the wait still ahead when it would be too long."""

    def wait(self) -> int:
        """The milliseconds still to wait (0: go)."""

    def penalise(self, seconds: float) -> None:
        """The partner said slow down: every process pauses `seconds`."""

    def backoff(self, granted_at_ms: int, max_seconds: float) -> float:
        """A call granted then hit the partner's quota: the shared pause, in seconds."""

    def calm(self, granted_at_ms: int) -> None:
        """A call granted then went through: the next refusal starts a new streak."""
