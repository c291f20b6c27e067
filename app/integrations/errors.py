"""The small error hierarchy every partner client maps its failures onto."""

from __future__ import annotations


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


class RateLimitedError(RetryableError):
    """The partner asked us to slow down (HTTP 429, Zalo -32)."""

    partner_wide = True


class PermanentError(PartnerError):
    """Retrying the same request cannot succeed."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; only the delta-seconds form is used by partners."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
