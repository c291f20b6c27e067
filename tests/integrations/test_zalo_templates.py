"""Zalo's template API and template send, on the client: the exact requests and how the answers
read (reference zalo.md §3.7; fixtures named in tests/fixtures/README.md)."""

from __future__ import annotations

import pytest
import requests
import requests_mock

from app.integrations.zalo.client import ZaloClient
from app.integrations.zalo.errors import ZaloPermanent
from app.integrations.zalo.templates import Param, Template, check, from_info, listed_ids, send_body
from sandbox.helpers import ZALO_API, load_fixture

BUSINESS = "https://business.openapi.zalo.me"


class Tokens:
    def access_token(self) -> str:
        return "access-0"


def answer(name: str) -> dict:
    return load_fixture("zalo", "answers", f"{name}.json")


@pytest.fixture
def client(settings):
    return ZaloClient(requests.Session(), settings, Tokens())


def test_the_list_and_a_detail_are_read_from_the_business_root_with_the_oa_token(client):
    with requests_mock.Mocker() as m:
        m.get(f"{BUSINESS}/template/all", json=answer("template_all"))
        m.get(f"{BUSINESS}/template/info/v2", json=answer("template_info__order"))
        assert client.template_ids() == ["412503", "412877"]
        template = client.template_info("412503")
    first, second = m.request_history
    assert (first.method, first.url) == ("GET", f"{BUSINESS}/template/all?offset=0&limit=100&status=1")
    assert (second.method, second.url) == ("GET", f"{BUSINESS}/template/info/v2?template_id=412503")
    assert first.headers["access_token"] == second.headers["access_token"] == "access-0"
    assert template == Template(
        "412503",
        "Xác nhận đơn hàng",
        "ENABLE",
        (Param("customer_name", True, 30), Param("order_code", True, 10), Param("note", False, 100)),
        "300.0",
    )


def test_the_send_is_top_level_user_id_and_answers_the_id_and_quota(client):
    with requests_mock.Mocker() as m:
        m.post(f"{ZALO_API}/v3.0/oa/message/template", json=answer("message_template__sent"))
        sent = client.send_template("246845883529197922", "412503", {"customer_name": "An"})
    assert m.request_history[0].json() == send_body("246845883529197922", "412503", {"customer_name": "An"})
    assert send_body("u", "t", {"a": "b"}) == {"user_id": "u", "template_id": "t", "template_data": {"a": "b"}}
    assert sent == "a91f0c2e6d3b4f5a8c7e" and sent.quota == {"quota_type": "purchase_quota", "remain": "120"}


def test_a_refusal_is_permanent_with_its_code(client):
    with requests_mock.Mocker() as m:
        m.post(f"{ZALO_API}/v3.0/oa/message/template", json=answer("message_template__not_by_uid"))
        with pytest.raises(ZaloPermanent) as refused:
            client.send_template("1", "387650", {})
    assert refused.value.code == -249


def test_the_price_by_user_id_wins_and_odd_fields_are_read_plainly():
    assert from_info(answer("template_info__thanks")["data"]).price == "200.0"
    odd = from_info({"templateId": 7, "templateName": "x", "status": 4, "listParams": [{"name": "a"}, {"x": 1}]})
    assert (odd.status, odd.params, odd.price, odd.enabled) == ("DISABLE", (Param("a", False, None),), "", False)
    assert listed_ids({"not": "a list"}) == [] and listed_ids([{"templateId": 1}, {"name": "no id"}]) == ["1"]


def test_the_parameter_check_names_missing_unknown_and_too_long():
    template = from_info(answer("template_info__order")["data"])
    assert check(template, {"customer_name": "An", "order_code": "DH-1"}) == {
        "missing": [],
        "unknown": [],
        "too_long": [],
    }
    assert check(template, {"customer_name": " ", "order_code": "DH-10240000001", "colour": "red"}) == {
        "missing": ["customer_name"],
        "unknown": ["colour"],
        "too_long": ["order_code"],
    }
