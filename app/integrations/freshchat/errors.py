"""FreshChat answers failures with HTTP status codes; map them onto our hierarchy."""

from __future__ import annotations

from app.errors import OutcomeUnknown, PartnerError, PermanentError, RateLimitedError, RetryableError
from app.integrations.base_client import PartnerErrors, status_error


class FreshchatError(Exception):
    """Mixin marking an error as FreshChat's."""

    partner = "freshchat"


class FreshchatRetryable(FreshchatError, RetryableError):
    pass


class FreshchatOutcomeUnknown(OutcomeUnknown, FreshchatRetryable):
    pass


class FreshchatRateLimited(FreshchatError, RateLimitedError):
    pass


class FreshchatPermanent(FreshchatError, PermanentError):
    pass


class ConversationGone(FreshchatPermanent):
    """The conversation is resolved for good, superseded ("not the latest") or deleted."""


ERRORS = PartnerErrors(FreshchatRetryable, FreshchatOutcomeUnknown, FreshchatRateLimited)


def error_for(status: int, path: str, detail: str, retry_after: float | None) -> PartnerError:
    """The error for an HTTP answer >= 300 to `path`; `detail` is FreshChat's message."""
    text = f"FreshChat HTTP {status} on {path.split('?')[0]}: {detail}"
    if (error := status_error(ERRORS, status, text, retry_after)) is not None:
        return error
    if status in (408, 409):
        return FreshchatRetryable(text, status=status, retry_after=retry_after)
    if "/conversations/" in path and (status == 404 or _superseded(detail)):
        return ConversationGone(text, status=status)
    return FreshchatPermanent(text, status=status)


def _superseded(detail: str) -> bool:
    lowered = detail.lower()
    return "not the latest" in lowered or "resolved" in lowered or "closed" in lowered
