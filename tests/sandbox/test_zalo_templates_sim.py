"""The Zalo simulator's template messages over real HTTP: the template API, the send by user id
and its refusals, and the phone showing what was sent."""

from __future__ import annotations

import requests

from sandbox.routes import oa_item
from tests.sandbox import partners, zalo  # noqa: F401

USER = "246845883529197922"
TOKEN = "sandbox-access-token-0"


def get(partners, path, token=TOKEN, **params):
    return requests.get(f"{partners.zalo_url}/business{path}", params=params, headers={"access_token": token}).json()


def send(partners, body, token=TOKEN):
    url = partners.zalo_url + "/v3.0/oa/message/template"
    return requests.post(url, json=body, headers={"access_token": token}).json()


def test_the_approved_list_leaves_the_disabled_template_out(partners, zalo):
    listed = get(partners, "/template/all", offset=0, limit=100, status=1)
    assert listed["error"] == 0 and listed["metadata"] == {"total": 3}
    assert [row["templateId"] for row in listed["data"]] == [412503, 412877, 387650]
    assert {row["status"] for row in listed["data"]} == {"ENABLE"}
    assert len(get(partners, "/template/all", offset=0, limit=100)["data"]) == 4


def test_a_templates_detail_names_its_parameters_status_and_price(partners, zalo):
    order = get(partners, "/template/info/v2", template_id="412503")["data"]
    assert order["listParams"][0] == {
        "name": "customer_name",
        "require": True,
        "type": "STRING",
        "maxLength": 30,
        "minLength": 0,
    }
    assert (order["status"], order["price"], order["price_uid"]) == ("ENABLE", "300.0", "200.0")
    assert get(partners, "/template/info/v2", template_id="398120")["data"]["status"] == "DISABLE"
    assert get(partners, "/template/info/v2", template_id="1")["error"] == -109


def test_the_template_api_needs_the_access_token(partners, zalo):
    assert get(partners, "/template/all", token="wrong", status=1)["error"] == -216


def test_a_send_by_user_id_is_recorded_with_its_quota(partners, zalo):
    zalo.add_user(USER, "Nguyễn Văn An")
    body = {"user_id": USER, "template_id": "412503", "template_data": {"customer_name": "An", "order_code": "DH-1"}}
    answer = send(partners, body)
    assert answer["error"] == 0 and answer["data"]["quota"] == {"quota_type": "purchase_quota", "remain": "199"}
    (sent,) = zalo.state()["messages"]
    assert sent["message"] == {
        "template": {
            "id": "412503",
            "name": "Xác nhận đơn hàng",
            "text": "Chào An, đơn hàng DH-1 của bạn đã được xác nhận.",
        }
    }
    assert sent["template_request"] == body


def test_zalos_refusals(partners, zalo):
    zalo.add_user(USER, "Nguyễn Văn An")
    refusals = {
        "387650": {"user_id": USER, "template_id": "387650", "template_data": {"time": "10:00"}},
        "398120": {"user_id": USER, "template_id": "398120", "template_data": {"voucher": "GIAM20"}},
        "missing": {"user_id": USER, "template_id": "412503", "template_data": {"customer_name": "An"}},
        "nobody": {"user_id": "1", "template_id": "412877", "template_data": {}},
        "recipient": {"recipient": {"user_id": USER}, "template_id": "412877", "template_data": {}},
    }
    codes = {name: send(partners, body)["error"] for name, body in refusals.items()}
    assert codes == {"387650": -249, "398120": -131, "missing": -111, "nobody": -114, "recipient": -201}
    assert zalo.state()["messages"] == []


def test_the_phone_shows_a_template_message_as_a_card(partners, zalo):
    zalo.add_user(USER, "Nguyễn Văn An")
    send(partners, {"user_id": USER, "template_id": "412877", "template_data": {}})
    (sent,) = zalo.phone()["oa_messages"]
    item = oa_item(None, sent, {})
    assert (item["kind"], item["title"]) == ("template", "Cảm ơn khách hàng")
    assert item["text"].startswith("Cảm ơn bạn đã tin dùng")
