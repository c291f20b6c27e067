"""The one base under both partner clients: transport, throttle, timeout, hooks, and the
mapping of every failure onto one axis (app/integrations/errors.py):

- no answer, and the request may have arrived (a read timeout, a reset): outcome unknown;
- no answer, and it surely did not arrive, or a 429 / 5xx answer: retryable;
- any other failed answer: whatever the partner's `_answer` says (mostly permanent).

A partner client (zalo/client.py, freshchat/client.py) names its error classes, builds the
request (path, auth header) and reads its answers; it is handed what it needs of the engine
(a `Limiter`, `ClientHooks`) and imports none of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import requests

from app.errors import PartnerError, RateLimitedError, RetryableError
from app.integrations.http import maybe_sent
from app.integrations.limits import Grant, Limiter


def _ignore(*_args) -> None:
    return None


@dataclass(frozen=True)
class ClientHooks:
    """Who hears about a client's calls; each hook is told, never asked (it returns nothing)."""

    on_answer: Callable[[], None] = _ignore  # the partner answered (not 429/5xx): it is up
    on_error: Callable[[PartnerError], None] = _ignore  # a call failed, by any route on the axis
    on_token_rejected: Callable[[PartnerError], None] = _ignore  # before the refresh it causes (Zalo)


@dataclass(frozen=True)
class PartnerErrors:
    """A partner's classes for the parts of the axis the base client decides itself."""

    retryable: type[RetryableError]  # unreachable before sending; a 5xx
    unknown: type[RetryableError]  # unreachable after sending, maybe; a 504
    rate_limited: type[RateLimitedError]  # our own limiter said wait; a 429


def status_error(errors: PartnerErrors, status: int, text: str, retry_after: float | None) -> PartnerError | None:
    """The error for an answer whose HTTP status alone decides (429, 5xx), else None."""
    if status == 429:
        return errors.rate_limited(text, status=status, retry_after=retry_after)
    if status == 504:  # the gateway gave up waiting: the partner may still have done it
        return errors.unknown(text, status=status, retry_after=retry_after)
    if status >= 500:
        return errors.retryable(text, status=status, retry_after=retry_after)
    return None


class BaseClient:
    name: ClassVar[str]  # as errors name the partner: "Zalo unreachable: ReadTimeout"
    errors: ClassVar[PartnerErrors]

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        timeout: float,
        limiter: Limiter | None = None,
        hooks: ClientHooks | None = None,
    ):
        self.session = session
        self.base = base_url
        self.timeout = timeout
        self.limiter = limiter
        self.hooks = hooks or ClientHooks()

    def _request(self, method: str, path: str, base: str = "", **kwargs) -> Any:
        """One call: wait for the shared rate, send, and return what `_answer` reads from the
        answer; every failure raised is a PartnerError the hooks were told of (but the local
        rate limit's: no call was made). `base`: another root of the same partner's API."""
        grant = self._throttle()
        try:
            resp = self.session.request(method, (base or self.base) + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise self._failed(self._unreachable(exc)) from exc
        if resp.status_code < 500 and resp.status_code != 429:
            self.hooks.on_answer()
        try:
            data = self._answer(resp, path)
        except PartnerError as exc:
            self._failed(self._slowed(exc, grant))
            raise
        if grant is not None and grant.streak and self.limiter:  # only then: no extra Redis round trip usually
            self.limiter.calm(grant.at_ms)
        return data

    def _answer(self, resp: requests.Response, path: str) -> Any:
        """The partner's reading of an answer to `path`: its data, or raise its error for it."""
        raise NotImplementedError

    def _throttle(self) -> Grant | None:
        if self.limiter is None:
            return None
        grant = self.limiter.grant()
        if grant.wait_ms:
            raise self.errors.rate_limited(f"local {self.name} rate limit", retry_after=grant.wait_ms / 1000.0)
        return grant

    def _unreachable(self, exc: requests.RequestException) -> PartnerError:
        kind = self.errors.unknown if maybe_sent(exc) else self.errors.retryable
        return kind(f"{self.name} unreachable: {type(exc).__name__}")

    def _slowed(self, error: PartnerError, grant: Grant | None) -> PartnerError:
        """A rate-limit answer slows every worker down, not just this call: a 429 stops them
        for its Retry-After; a quota refusal (`pause_cap` set) pauses them, longer while
        refusals go on, and the error waits as long as that pause."""
        if not isinstance(error, RateLimitedError) or self.limiter is None:
            return error
        if error.status == 429:
            self.limiter.penalise(error.retry_after or 1.0)
        elif error.pause_cap is not None and grant is not None:
            error.retry_after = self.limiter.backoff(grant.at_ms, error.pause_cap)
        return error

    def _failed(self, error: PartnerError) -> PartnerError:
        self.hooks.on_error(error)
        return error
