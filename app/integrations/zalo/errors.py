"""Zalo answers failures as HTTP 200 with a negative `error`; map them onto our hierarchy."""

from __future__ import annotations

from app.bridge.ratelimit import FIRST_BACKOFF_MS
from app.integrations.errors import PermanentError, RateLimitedError, RetryableError


class ZaloError(Exception):
    """Mixin marking an error as Zalo's; `code` is Zalo's negative error code."""

    partner = "zalo"


class ZaloRetryable(ZaloError, RetryableError):
    pass


class ZaloRateLimited(ZaloError, RateLimitedError):
    """`pause_cap`: for a per-minute quota refusal (-32), the longest pause that can help."""

    pause_cap: float | None = None


class ZaloAuthError(ZaloError, RetryableError):
    """Access token rejected: refresh once, then retry."""


class ZaloTokenDead(ZaloError, RetryableError):
    """The refresh token no longer works: messages wait until the OA is re-connected."""

    partner_wide = True  # every reply waits alike; none spends its retry budget


class ZaloAttachmentExpired(ZaloError, RetryableError):
    """-100: re-upload the attachment, then retry."""


class ZaloPermanent(ZaloError, PermanentError):
    """Retrying cannot help; `advice` tells the agent what can."""

    @property
    def advice(self) -> str:
        return ADVICE.get(self.code, "Zalo refused the message; see the code in Zalo's error table.")


AUTH_CODES = {-216, -220, -124}
RATE_CODES = {-32}
RETRY_CODES = {-200}  # "send message failed": Zalo-side hiccup, retried with backoff

ADVICE = {
    -201: "Zalo rejected the content as invalid (bad user id, too long, or an unsupported attachment).",
    -213: "The user must open a chat with the OA on mobile (or follow it) before the OA can message them.",
    -217: "The user has blocked messages from this OA.",
    -222: "The user's Zalo account is banned or inactive.",
    -227: "The user's Zalo account is banned or has been inactive for over 45 days.",
    -230: "The user has not interacted with the OA in the last 7 days; wait until they write again.",
    -232: "The user's last interaction with the OA has expired; wait until they write again.",
    -233: "Zalo does not support this message type here.",
    -234: "This message type cannot be sent at night (22:00-06:00); send it after 06:00.",
    -244: "The user has restricted this message type from the OA.",
    -320: "Paid message: connect a Zalo Cloud Account to the app to reply after 48 hours.",
    -321: "Paid message: the Zalo Cloud Account has no funds; top it up, then resend.",
    -210: "A parameter exceeds Zalo's limit (file too large or text too long).",
    -211: "The OA is out of quota for this feature.",
    -223: "The OA has not granted this permission to the app; re-authorise the OA.",
    -224: "The OA's service package does not include this feature.",
}


def error_for(code: int, message: str) -> ZaloError:
    """The exception class for Zalo error `code`."""
    text = f"Zalo error {code}: {message}"
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
    error = ZaloRateLimited(text, code=code, retry_after=min(FIRST_BACKOFF_MS / 1000.0, cap))
    error.pause_cap = cap
    return error


def _seconds_to_next_minute() -> float:
    import time

    return 60.0 - (time.time() % 60.0)
