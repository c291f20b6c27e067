"""Which failed calls may still have reached the partner, and FreshChat's message list read
for reconciliation (exact requests)."""

from __future__ import annotations

from http.client import RemoteDisconnected
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from app.bridge.tokens_store import TokenStore
from app.errors import OutcomeUnknown
from app.integrations.freshchat.client import FreshchatClient
from app.integrations.freshchat.errors import error_for
from app.integrations.http import maybe_sent
from app.integrations.zalo.client import ZaloClient
from app.integrations.zalo.tokens import TokenKeeper
from sandbox.helpers import FC_API, ZALO_API

CONV = "7e673110-8c16-4b7a-9f43-2d8e3c1a5b60"
MESSAGES = f"{FC_API}/conversations/{CONV}/messages"


def _refused() -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "refused")))


@pytest.mark.parametrize(
    "exc, sent",
    [
        (requests.ConnectTimeout(), False),
        (_refused(), False),
        (requests.ReadTimeout(), True),
        (requests.ConnectionError(ProtocolError("Connection aborted.", RemoteDisconnected("closed"))), True),
        (requests.exceptions.ChunkedEncodingError(), True),
    ],
)
def test_only_a_connection_never_made_is_surely_not_sent(exc, sent):
    assert maybe_sent(exc) is sent


def test_a_read_timeout_and_a_gateway_504_are_unknown_outcomes_for_zalo(redis, settings):
    session = requests.Session()
    zalo = ZaloClient(session, settings, TokenKeeper(TokenStore.of(redis, settings), settings, session))
    with requests_mock.Mocker() as m:
        m.post(f"{ZALO_API}/v3.0/oa/message/cs", [{"exc": requests.ReadTimeout}, {"status_code": 504, "text": "gw"}])
        for _ in range(2):
            with pytest.raises(OutcomeUnknown):
                zalo.send_text("u1", "hi")
        m.post(f"{ZALO_API}/v3.0/oa/message/cs", exc=requests.ConnectTimeout)
        with pytest.raises(Exception) as refused:
            zalo.send_text("u1", "hi")
        assert not isinstance(refused.value, OutcomeUnknown)


def test_freshchat_504_is_an_unknown_outcome():
    assert isinstance(error_for(504, f"/conversations/{CONV}/messages", "gateway timeout", None), OutcomeUnknown)
    assert not isinstance(error_for(503, f"/conversations/{CONV}/messages", "down", None), OutcomeUnknown)


def test_freshchat_messages_since_a_time_then_the_next_link(settings):
    client = FreshchatClient(requests.Session(), settings)
    href = f"/v2/conversations/{CONV}/messages?page=2&items_per_page=50&from_time=2026-12-02T00%3A00%3A00.000Z"
    with requests_mock.Mocker() as m:
        m.get(
            MESSAGES,
            [
                {"json": {"messages": [{"id": "m3"}, {"id": "m2"}], "link": {"href": href, "rel": "next"}}},
                {"json": {"messages": [{"id": "m1"}]}},
            ],
        )
        first, following = client.messages(CONV, from_time="2026-12-02T00:00:00.000Z")
        last, end = client.messages(CONV, next_page=following)
    assert [x["id"] for x in first] == ["m3", "m2"] and following == href
    assert [x["id"] for x in last] == ["m1"] and end is None
    asked = [parse_qs(urlsplit(r.url).query) for r in m.request_history]
    assert asked[0] == {"page": ["1"], "items_per_page": ["50"], "from_time": ["2026-12-02T00:00:00.000Z"]}
    assert asked[1] == {"page": ["2"], "items_per_page": ["50"], "from_time": ["2026-12-02T00:00:00.000Z"]}
    assert all(r.url.startswith(MESSAGES + "?") for r in m.request_history)
    assert m.request_history[0].headers["Authorization"] == "Bearer fc-api-key-example"


def test_freshchat_user_conversations_lists_their_ids(settings):
    client = FreshchatClient(requests.Session(), settings)
    with requests_mock.Mocker() as m:
        m.get(f"{FC_API}/users/u-1/conversations", json={"conversations": [{"id": "c-1"}, {"id": "c-2"}]})
        assert client.user_conversations("u-1") == ["c-1", "c-2"]
