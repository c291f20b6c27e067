"""Zalo history reads: the exact requests sent and the lists parsed from Zalo's answers."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock

from app.bridge.tokens_store import TokenStore
from app.integrations.zalo.client import ZaloClient
from app.integrations.zalo.errors import ZaloPermanent
from app.integrations.zalo.tokens import TokenKeeper
from sandbox.helpers import ZALO_API, load_fixture

RECENT = f"{ZALO_API}/v2.0/oa/listrecentchat"
CONVERSATION = f"{ZALO_API}/v2.0/oa/conversation"


@pytest.fixture
def zalo(redis, settings):
    session = requests.Session()
    return ZaloClient(session, settings, TokenKeeper(TokenStore.of(redis, settings), settings, session))


def query(request) -> dict:
    """The `data` parameter Zalo reads the page from, decoded."""
    (data,) = parse_qs(urlsplit(request.url).query)["data"]
    return json.loads(data)


def test_recent_chats_asks_for_one_page_and_returns_its_rows(zalo):
    answer = load_fixture("zalo", "answers", "listrecentchat.json")
    with requests_mock.Mocker() as m:
        m.get(RECENT, json=answer)
        rows = zalo.recent_chats(offset=20, count=10)
    (sent,) = m.request_history
    assert sent.method == "GET" and sent.headers["access_token"] == "access-0"
    assert query(sent) == {"offset": 20, "count": 10}
    assert rows == answer["data"]
    assert [(r["src"], r["message_id"]) for r in rows] == [(1, "92a905608e14174c4e03"), (0, "5f1c7a0e2b9d44c3a1e0")]


def test_conversation_names_the_user_and_keeps_zalo_order(zalo):
    answer = load_fixture("zalo", "answers", "conversation.json")
    with requests_mock.Mocker() as m:
        m.get(CONVERSATION, json=answer)
        items = zalo.conversation("3103741396296991610", offset=10, count=5)
    (sent,) = m.request_history
    assert query(sent) == {"user_id": "3103741396296991610", "offset": 10, "count": 5}
    assert [i["time"] for i in items] == sorted((i["time"] for i in items), reverse=True)
    assert items[1]["type"] == "photo" and items[1]["url"].endswith("ao-thun.jpg")
    assert json.loads(items[2]["location"]) == {"latitude": "10.7769", "longitude": "106.7009"}


@pytest.mark.parametrize("data", [[], None])
def test_past_the_last_page_is_an_empty_list(zalo, data):
    with requests_mock.Mocker() as m:
        m.get(CONVERSATION, json={"error": 0, "message": "Success", "data": data})
        assert zalo.conversation("1", offset=500) == []


@pytest.mark.parametrize("count", [0, 11, 50])
def test_a_page_larger_than_zalo_serves_is_refused_before_any_call(zalo, count):
    with requests_mock.Mocker() as m, pytest.raises(ValueError):
        zalo.recent_chats(count=count)
    assert m.call_count == 0


def test_an_expired_token_is_refreshed_once_and_the_page_read_again(zalo, settings):
    answer = load_fixture("zalo", "answers", "conversation.json")
    with requests_mock.Mocker() as m:
        m.get(CONVERSATION, [{"json": {"error": -216, "message": "Access token is invalid"}}, {"json": answer}])
        m.post(
            f"{settings.zalo_oauth_base_url}/v4/oa/access_token",
            json={"access_token": "access-1", "refresh_token": "refresh-1", "expires_in": "90000"},
        )
        assert len(zalo.conversation("3103741396296991610")) == 4
    reads = [r for r in m.request_history if r.method == "GET"]
    assert [r.headers["access_token"] for r in reads] == ["access-0", "access-1"]
    assert query(reads[0]) == query(reads[1]) == {"user_id": "3103741396296991610", "offset": 0, "count": 10}


def test_a_refused_read_raises_zalos_error(zalo):
    with requests_mock.Mocker() as m:
        m.get(RECENT, json={"error": -201, "message": "Parameters are invalid"})
        with pytest.raises(ZaloPermanent) as caught:
            zalo.recent_chats()
    assert caught.value.code == -201
