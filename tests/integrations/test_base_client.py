"""The one base client (app/integrations/base_client.py): every failure lands on one axis,
hooks hear of every answer and failure, the shared limiter is asked before every call."""

from __future__ import annotations

import json

import pytest
import requests
import requests_mock

from app.bridge.ratelimit import RateLimiter
from app.bridge.tokens_store import TokenStore
from app.errors import (
    OutcomeUnknown,
    PermanentError,
    RateLimitedError,
    RetryableError,
    parse_retry_after,
)
from app.integrations.base_client import BaseClient, ClientHooks, PartnerErrors, status_error
from app.integrations.freshchat.client import FreshchatClient
from app.integrations.freshchat.errors import FreshchatPermanent
from app.integrations.zalo.client import ZaloClient
from app.integrations.zalo.errors import ZaloAuthError
from app.integrations.zalo.tokens import TokenKeeper
from sandbox.helpers import FC_API, ZALO_API, ZALO_OAUTH

BASE = "https://partner.example/api"
CS = f"{ZALO_API}/v3.0/oa/message/cs"


class ShopRetryable(RetryableError):
    partner = "shop"


class ShopUnknown(OutcomeUnknown, ShopRetryable):
    pass


class ShopRateLimited(RateLimitedError):
    partner = "shop"


class ShopPermanent(PermanentError):
    partner = "shop"


class ShopClient(BaseClient):
    """A partner as small as one can be: it names its errors and reads its answers."""

    name = "Shop"
    errors = PartnerErrors(ShopRetryable, ShopUnknown, ShopRateLimited)

    def order(self, order_id: str, item: dict) -> dict:
        return self._request("PUT", f"/orders/{order_id}", headers={"X-Key": "k1"}, json=item)

    def _answer(self, resp: requests.Response, path: str) -> dict:
        if resp.status_code >= 300:
            text = f"Shop HTTP {resp.status_code} on {path}"
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            error = status_error(self.errors, resp.status_code, text, retry_after)
            raise error or ShopPermanent(text, status=resp.status_code)
        return resp.json()


class Heard:
    """What the hooks were told, in order."""

    def __init__(self):
        self.events: list = []

    def hooks(self) -> ClientHooks:
        return ClientHooks(
            on_answer=lambda: self.events.append("answer"),
            on_error=lambda exc: self.events.append(exc),
            on_token_rejected=lambda exc: self.events.append(("token_rejected", exc)),
        )


class Asked:
    """The real shared limiter, noting each time it is asked for a turn."""

    def __init__(self, limiter: RateLimiter, events: list):
        self.limiter, self.events = limiter, events

    def grant(self):
        self.events.append("grant")
        return self.limiter.grant()

    def penalise(self, seconds: float) -> None:
        self.limiter.penalise(seconds)

    def backoff(self, granted_at_ms: int, max_seconds: float) -> float:
        return self.limiter.backoff(granted_at_ms, max_seconds)

    def calm(self, granted_at_ms: int) -> None:
        self.limiter.calm(granted_at_ms)


def shop(session=None, limiter=None, heard: Heard | None = None) -> ShopClient:
    hooks = heard.hooks() if heard else None
    return ShopClient(session or requests.Session(), BASE, 4.5, limiter, hooks)


def test_a_call_goes_out_exactly_as_built_with_the_timeout():
    with requests_mock.Mocker() as m:
        m.put(f"{BASE}/orders/o-1", json={"ok": True})
        assert shop().order("o-1", {"sku": "A", "qty": 2}) == {"ok": True}
    [sent] = m.request_history
    assert (sent.method, sent.url, sent.headers["X-Key"]) == ("PUT", f"{BASE}/orders/o-1", "k1")
    assert sent.json() == {"sku": "A", "qty": 2} and sent.timeout == 4.5


@pytest.mark.parametrize(
    "failure, kind, unknown",
    [
        (requests.ReadTimeout, ShopUnknown, True),  # it may have arrived: look before repeating
        (requests.exceptions.ChunkedEncodingError, ShopUnknown, True),
        (requests.ConnectTimeout, ShopRetryable, False),  # never connected: it surely did not
    ],
)
def test_no_answer_is_an_unknown_outcome_or_retryable_and_the_hook_hears_it(failure, kind, unknown):
    heard = Heard()
    with requests_mock.Mocker() as m:
        m.put(f"{BASE}/orders/o-1", exc=failure)
        with pytest.raises(kind) as raised:
            shop(heard=heard).order("o-1", {"sku": "A"})
    assert isinstance(raised.value, OutcomeUnknown) is unknown and isinstance(raised.value, RetryableError)
    assert str(raised.value) == f"Shop unreachable: {failure.__name__}"
    assert heard.events == [raised.value]  # no answer: the breaker is not told the partner is up
    assert len(m.request_history) == 1


@pytest.mark.parametrize(
    "status, kind, answered",
    [
        (500, ShopRetryable, False),
        (503, ShopRetryable, False),
        (504, ShopUnknown, False),  # the gateway gave up: the partner may still have done it
        (429, ShopRateLimited, False),
        (400, ShopPermanent, True),  # the partner's own mapping decides the rest
        (404, ShopPermanent, True),
    ],
)
def test_answers_land_on_the_axis_and_the_hooks_hear_them(status, kind, answered):
    heard = Heard()
    with requests_mock.Mocker() as m:
        m.put(f"{BASE}/orders/o-1", status_code=status, json={})
        with pytest.raises(kind) as raised:
            shop(heard=heard).order("o-1", {"sku": "A"})
    assert type(raised.value) is kind and raised.value.status == status
    assert isinstance(raised.value, RetryableError) is (status >= 429)
    assert heard.events == (["answer"] if answered else []) + [raised.value]


def test_a_success_is_heard_as_an_answer_and_nothing_else():
    heard = Heard()
    with requests_mock.Mocker() as m:
        m.put(f"{BASE}/orders/o-1", json={"ok": True})
        shop(heard=heard).order("o-1", {"sku": "A"})
    assert heard.events == ["answer"]


def test_the_limiter_is_asked_before_every_call(redis):
    heard = Heard()
    limiter = Asked(RateLimiter(redis, "shop", 600), heard.events)
    client = shop(limiter=limiter, heard=heard)
    with requests_mock.Mocker() as m:
        m.put(f"{BASE}/orders/o-1", json=lambda request, context: heard.events.append("sent") or {"ok": True})
        client.order("o-1", {"sku": "A"})
        client.order("o-1", {"sku": "B"})
    assert heard.events == ["grant", "sent", "answer"] * 2
    assert [json.loads(r.body) for r in m.request_history] == [{"sku": "A"}, {"sku": "B"}]


def test_a_local_limit_sends_nothing_and_is_no_partner_failure(redis):
    heard = Heard()
    limiter = RateLimiter(redis, "shop", 600, max_wait_ms=0)
    limiter.penalise(5.0)  # another worker met a 429 a moment ago
    with requests_mock.Mocker() as m, pytest.raises(ShopRateLimited) as raised:
        shop(limiter=limiter, heard=heard).order("o-1", {"sku": "A"})
    assert str(raised.value) == "local Shop rate limit" and 4.0 < raised.value.retry_after <= 5.0
    assert m.request_history == [] and heard.events == []


def test_a_429_stops_every_worker_for_its_retry_after(redis):
    limiter = RateLimiter(redis, "shop", 600, max_wait_ms=0)
    with requests_mock.Mocker() as m:
        m.put(f"{BASE}/orders/o-1", status_code=429, headers={"Retry-After": "3"}, json={})
        with pytest.raises(ShopRateLimited) as raised:
            shop(limiter=limiter).order("o-1", {"sku": "A"})
    assert raised.value.retry_after == 3.0
    other_worker = RateLimiter(redis, "shop", 600, max_wait_ms=0)
    assert 2000 < other_worker.grant().wait_ms <= 3000


def test_freshchat_hooks_are_given_at_construction(settings):
    heard = Heard()
    client = FreshchatClient(requests.Session(), settings, hooks=heard.hooks())
    with requests_mock.Mocker() as m:
        m.get(f"{FC_API}/agents/a-1", json={"id": "a-1"})
        m.get(f"{FC_API}/agents/a-2", status_code=403, json={"message": "forbidden"})
        assert client.get_agent("a-1") == {"id": "a-1"}
        with pytest.raises(FreshchatPermanent) as raised:
            client.get_agent("a-2")
    assert heard.events == ["answer", "answer", raised.value]
    assert [(r.method, r.url, r.headers["Authorization"]) for r in m.request_history] == [
        ("GET", f"{FC_API}/agents/a-1", f"Bearer {settings.freshchat_api_key}"),
        ("GET", f"{FC_API}/agents/a-2", f"Bearer {settings.freshchat_api_key}"),
    ]


def test_zalo_tells_of_a_rejected_token_before_the_refresh_it_causes(redis, settings):
    heard = Heard()
    session = requests.Session()
    keeper = TokenKeeper(TokenStore.of(redis, settings), settings, session)
    keeper.store("a1", "r1", None)
    client = ZaloClient(session, settings, keeper, hooks=heard.hooks())
    oauth = f"{ZALO_OAUTH}/v4/oa/access_token"
    with requests_mock.Mocker() as m:
        m.post(
            CS, [{"json": {"error": -216, "message": "Access token is invalid"}}, {"json": {"error": 0, "data": {}}}]
        )
        m.post(oauth, json=lambda request, context: heard.events.append("refresh") or {"access_token": "a2"})
        client.send_text("u1", "hi")
    rejected = heard.events[1]
    assert heard.events == ["answer", rejected, ("token_rejected", rejected), "refresh", "answer"]
    assert isinstance(rejected, ZaloAuthError)
    assert [(r.url, r.headers.get("access_token")) for r in m.request_history] == [
        (CS, "a1"),
        (oauth, None),
        (CS, "a2"),
    ]
    assert m.request_history[2].json() == {"recipient": {"user_id": "u1"}, "message": {"text": "hi"}}
