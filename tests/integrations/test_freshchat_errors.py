"""FreshChat's HTTP answers mapped onto the error hierarchy (app/integrations/freshchat/errors.py)."""

from __future__ import annotations

import pytest

from app.errors import PermanentError, RateLimitedError, RetryableError
from app.integrations.freshchat.errors import (
    ConversationGone,
    FreshchatPermanent,
    FreshchatRateLimited,
    FreshchatRetryable,
    error_for,
)

CONV = "/conversations/c-1/messages"


@pytest.mark.parametrize(
    "status, path, detail, kind",
    [
        (429, CONV, "Too many requests", FreshchatRateLimited),
        (500, CONV, "oops", FreshchatRetryable),
        (503, "/users", "down", FreshchatRetryable),
        (408, "/users", "timeout", FreshchatRetryable),
        (409, "/users", "conflict", FreshchatRetryable),
        (404, CONV, "not found", ConversationGone),
        (400, CONV, "Conversation is not the latest", ConversationGone),
        (400, CONV, "conversation resolved", ConversationGone),
        (404, "/users/u-1", "not found", FreshchatPermanent),
        (400, CONV, "message_parts is required", FreshchatPermanent),
    ],
)
def test_status_and_detail_pick_the_error(status, path, detail, kind):
    error = error_for(status, path, detail, None)
    assert type(error) is kind and error.status == status and error.partner == "freshchat"


def test_the_message_names_status_and_path_without_the_query():
    error = error_for(400, "/users?reference_id=zalo:1", "bad", None)
    assert str(error) == "FreshChat HTTP 400 on /users: bad"


def test_retry_after_is_kept_for_retryable_answers_and_the_base_classes_match():
    limited = error_for(429, CONV, "slow down", 7.0)
    assert limited.retry_after == 7.0 and isinstance(limited, RateLimitedError) and limited.partner_wide
    assert error_for(502, CONV, "bad gateway", 3.0).retry_after == 3.0
    assert isinstance(error_for(502, CONV, "", None), RetryableError)
    assert isinstance(error_for(404, CONV, "", None), PermanentError)
