"""The small error hierarchy every partner client maps its failures onto."""

from __future__ import annotations

# The shared pause after the first rate-limit answer of a streak: the limiter's first backoff
# (app/bridge/ratelimit.py) and what a partner's quota refusal first waits (zalo/errors.py).
FIRST_BACKOFF_MS = 1000


class PartnerError(Exception):
    """A call to Zalo or FreshChat failed."""

    partner = "partner"
    partner_wide = False  # True: every conversation of this partner fails alike (see workers/drain.py)

    def __init__(self, message: str, *, code: int | str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class RetryableError(PartnerError):
    """Worth trying again later: rate limits, 5xx, timeouts, connection errors."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class OutcomeUnknown(Exception):
    """Mixin: the request may have reached the partner, but its answer never came (a timeout
    or a reset after sending). Not a failure to repeat blindly: the next attempt looks first."""


class ReconcilePending(RetryableError):
    """An earlier send's outcome is still unknown and the partner may still be working on it:
    look in its conversation once it surely has finished, not before. A known wait, not a
    failure, so it spends no retry budget (workers/drain.py)."""

    waiting = True

    def __init__(self, message: str, *, partner: str, retry_after: float):
        super().__init__(message, retry_after=retry_after)
        self.partner = partner


class RateLimitedError(RetryableError):
    """The partner asked us to slow down (HTTP 429, Zalo -32)."""

    partner_wide = True
    pause_cap: float | None = None  # a quota refusal's (not a 429's): the longest pause that can help


class PermanentError(PartnerError):
    """Retrying the same request cannot succeed."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; only the delta-seconds form is used by partners."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
