"""user_submit_info (issue 26 point 1): the exact PUT /users and the agents' note, whatever the form."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
import requests_mock

from app.bridge.lanes import Item, now_ms
from app.integrations.zalo.schemas import to_event
from sandbox.helpers import CHANNEL, FC_API, ZALO_API, load_fixture, partners_answer_probes
from workers.context import WorkerContext
from workers.drain import Drainer

USER = "246845883529197922"
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
OA_LABEL = "OA 388613280878808645"


def run(ctx, event: dict) -> str:
    classified = to_event(event)
    item = Item(f"zalo:{classified.dedupe_id}", "zalo", event, now_ms(), event=classified.kind)
    ctx.lanes.accept(classified.lane, item)
    return Drainer(ctx).drain(classified.lane)


def form(name: str = "user_submit_info", **info) -> dict:
    event = load_fixture("zalo", "webhooks", f"{name}.json")
    return {**event, "info": {**event["info"], **info}} if info else event


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        mock.put(f"{FC_API}/users/{FC_USER}", status_code=200, text="")
        mock.post(f"{FC_API}/conversations/{CONV}/messages", json={"id": "note-1"})
        partners_answer_probes(mock)
        yield mock


def known_user(ctx):
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER, created="2026-11-01T00:00:00Z")
    ctx.mapping.link_conversation(USER, CONV)


def puts(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.method == "PUT"]


def notes(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.method == "POST" and r.url.startswith(FC_API)]


def props(body: dict) -> dict:
    return {p["name"]: p["value"] for p in body["properties"]}


def note(text: str) -> dict:
    return {
        "message_parts": [{"text": {"content": text}}],
        "message_type": "private",
        "actor_type": "system",
        "user_id": FC_USER,
    }


def test_the_phone_goes_to_the_user_the_rest_to_properties_and_agents_read_it(ctx, m):
    known_user(ctx)
    assert run(ctx, form()) == "empty"
    (put,) = puts(m)
    assert put["phone"] == "+84912345678"
    assert props(put) == {
        "external_user_provider": "zalo",
        "zalo_user_id": USER,
        "last_seen": props(put)["last_seen"],
        "created": "2026-11-01T00:00:00Z",
        "zalo_oa": OA_LABEL,
        "shared_name": "Nguyễn Thị Lan",
        "shared_address": "12 Lý Thái Tổ",
        "shared_district": "Hoàn Kiếm",
        "shared_city": "Hà Nội",
    }
    assert set(put) == {"phone", "properties"}
    assert notes(m) == [
        note(
            "📇 The customer shared their information with the OA:\nName: Nguyễn Thị Lan\nPhone: +84912345678\n"
            "Address: 12 Lý Thái Tổ\nDistrict: Hoàn Kiếm\nCity: Hà Nội\n"
            "It is saved on the customer's FreshChat profile."
        )
    ]
    assert [r.url for r in m.request_history] == [
        f"{FC_API}/users/{FC_USER}",
        f"{FC_API}/conversations/{CONV}/messages",
    ]


def test_the_note_is_in_the_agents_language(settings, redis, m):
    ctx = WorkerContext(dataclasses.replace(settings, agent_language="vi"), redis)
    known_user(ctx)
    run(ctx, form())
    assert notes(m)[0]["message_parts"][0]["text"]["content"] == (
        "📇 Khách hàng đã chia sẻ thông tin với OA:\nHọ tên: Nguyễn Thị Lan\nSố điện thoại: +84912345678\n"
        "Địa chỉ: 12 Lý Thái Tổ\nQuận/huyện: Hoàn Kiếm\nTỉnh/thành phố: Hà Nội\n"
        "Thông tin này đã được lưu vào hồ sơ khách hàng trong FreshChat."
    )


def test_the_other_field_set_is_read_and_birthday_and_gender_are_not(ctx, m):
    known_user(ctx)
    run(ctx, form("user_submit_info__full_address"))
    (put,) = puts(m)
    shared = {k: v for k, v in props(put).items() if k.startswith("shared_")}
    assert shared == {
        "shared_name": "Nguyễn Thị Lan",
        "shared_address": "5 Lê Lợi, Phường Bến Nghé",
        "shared_city": "Hồ Chí Minh",
    }
    assert put["phone"] == "+84912345678"
    assert "1990" not in json.dumps(put) + json.dumps(notes(m)) and "female" not in json.dumps(notes(m))


def test_missing_fields_are_left_out_and_junk_is_dropped_with_a_log_line_naming_it(ctx, m, caplog):
    known_user(ctx)
    event = load_fixture("zalo", "webhooks", "user_submit_info.json")
    event["info"] = {"name": {"x": 1}, "phone": "call me maybe", "city": "Đà Nẵng"}
    caplog.set_level(logging.WARNING, logger="relay.shared_info")
    assert run(ctx, event) == "empty"
    (put,) = puts(m)
    assert "phone" not in put and {k: v for k, v in props(put).items() if k.startswith("shared_")} == {
        "shared_city": "Đà Nẵng"
    }
    assert "City: Đà Nẵng" in notes(m)[0]["message_parts"][0]["text"]["content"]
    (line,) = [r for r in caplog.records if r.getMessage() == "relay.shared_info_dropped"]
    assert line.fields == ["name", "phone"] and "call me" not in caplog.text


def test_a_form_with_nothing_readable_still_tells_the_agent_and_puts_nothing(ctx, m):
    known_user(ctx)
    event = {**load_fixture("zalo", "webhooks", "user_submit_info.json"), "info": "junk"}
    assert run(ctx, event) == "empty"
    assert puts(m) == []
    assert notes(m) == [note("📇 The customer sent Zalo's information form, but nothing in it could be read.")]


def test_shared_properties_survive_the_hourly_last_seen_put(ctx, m):
    """PUT may replace the property list: the next one still carries what was shared."""
    known_user(ctx)
    run(ctx, form())
    text = load_fixture("zalo", "webhooks", "user_send_text.json")
    run(ctx, text)  # last_seen is due: no refresh was recorded
    later = puts(m)[-1]
    assert "phone" not in later and props(later)["shared_name"] == "Nguyễn Thị Lan"
    assert props(later)["zalo_oa"] == OA_LABEL


def test_a_user_the_bridge_never_met_is_created_with_a_conversation_holding_the_note(ctx, m):
    m.get(f"{ZALO_API}/v3.0/oa/user/detail", json={"error": 0, "data": {"display_name": "Lan"}})
    m.get(f"{FC_API}/users", json={"users": []})
    m.post(f"{FC_API}/users", json={"id": FC_USER})
    m.post(f"{FC_API}/conversations", json={"conversation_id": CONV, "messages": [{"id": "m0"}]})
    assert run(ctx, form()) == "empty"
    methods = [(r.method, r.url.split("?")[0]) for r in m.request_history]
    assert methods == [
        ("GET", f"{FC_API}/users"),
        ("GET", f"{ZALO_API}/v3.0/oa/user/detail"),
        ("POST", f"{FC_API}/users"),
        ("PUT", f"{FC_API}/users/{FC_USER}"),
        ("POST", f"{FC_API}/conversations"),
    ]
    created = m.request_history[2].json()
    assert "phone" not in created and props(created)["zalo_oa"] == OA_LABEL  # creation stays as a message's
    conversation = m.request_history[4].json()
    assert conversation["channel_id"] == CHANNEL and conversation["users"] == [{"id": FC_USER}]
    assert conversation["messages"][0]["message_type"] == "private"
    assert conversation["messages"][0]["message_parts"][0]["text"]["content"].startswith("📇 The customer shared")
    assert ctx.mapping.zalo_user(USER)["fc_conversation_id"] == CONV


def test_a_redelivered_form_is_one_note(ctx, m):
    known_user(ctx)
    run(ctx, form())
    run(ctx, form())
    assert len(notes(m)) == 1
