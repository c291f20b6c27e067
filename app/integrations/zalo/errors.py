"""Zalo answers failures as HTTP 200 with a negative `error`; map them onto our hierarchy."""

from __future__ import annotations

import time

from app.errors import FIRST_BACKOFF_MS, OutcomeUnknown, PermanentError, RateLimitedError, RetryableError
from app.integrations.base_client import PartnerErrors

FIRST_PAUSE = FIRST_BACKOFF_MS / 1000  # a first -32 waits when no shared limiter decides: the limiter's own first pause


class ZaloError(Exception):
    """Mixin marking an error as Zalo's; `code` is Zalo's negative error code."""

    partner = "zalo"


class ZaloRetryable(ZaloError, RetryableError):
    pass


class ZaloOutcomeUnknown(OutcomeUnknown, ZaloRetryable):
    pass


class ZaloRateLimited(ZaloError, RateLimitedError):
    """An HTTP 429, or a per-minute quota refusal (-32, with its `pause_cap`)."""


class ZaloAuthError(ZaloError, RetryableError):
    """Access token rejected: refresh once, then retry."""


class ZaloTokenDead(ZaloError, RetryableError):
    """The refresh token no longer works: messages wait until the OA is re-connected."""

    partner_wide = True  # every reply waits alike; none spends its retry budget


class ZaloAttachmentExpired(ZaloError, RetryableError):
    """-100: re-upload the attachment, then retry."""


class ZaloPermanent(ZaloError, PermanentError):
    """Retrying cannot help; app/texts.py ZALO_ADVICE tells the agent what can, by code."""


ERRORS = PartnerErrors(ZaloRetryable, ZaloOutcomeUnknown, ZaloRateLimited)


ZALO_ERROR = "Zalo error {code}: {message}"  # app/wording.py translates it, code and all
AUTH_CODES = {-216, -220, -124}
RATE_CODES = {-32}
RETRY_CODES = {-200}  # "send message failed": Zalo-side hiccup, retried with backoff


def error_for(code: int, message: str) -> ZaloError:
    """The exception class for Zalo error `code`."""
    text = ZALO_ERROR.format(code=code, message=message)
    if code in AUTH_CODES:
        return ZaloAuthError(text, code=code)
    if code in RATE_CODES:
        return _quota_refusal(text, code)
    if code == -100:
        return ZaloAttachmentExpired(text, code=code)
    if code in RETRY_CODES:
        return ZaloRetryable(text, code=code)
    return ZaloPermanent(text, code=code)


def _quota_refusal(text: str, code: int) -> ZaloRateLimited:
    """-32 counts calls per minute, fixed or sliding: a short pause usually suffices (the
    client's shared limiter doubles it while refusals continue); waiting past the next
    minute never helps."""
    cap = _seconds_to_next_minute()
    error = ZaloRateLimited(text, code=code, retry_after=min(FIRST_PAUSE, cap))
    error.pause_cap = cap
    return error


def _seconds_to_next_minute() -> float:
    return 60.0 - (time.time() % 60.0)
