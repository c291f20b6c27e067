"""The FreshChat user carries the OA(s) the person wrote to (issue 26 point 4), as `zalo_oa`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests_mock

from app.bridge.lanes import Item, now_ms
from app.integrations.zalo.schemas import to_event
from app.relay.inbound import reference_id, user_update
from app.relay.user_properties import with_oa
from sandbox.helpers import ZALO_API, partners_answer_probes
from tests.multi import HCM, HCM_API, HCM_OA, store, zalo_event
from workers.drain import Drainer

USER = "246845883529197922"
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"


def run(ctx, event: dict, lane_prefix: str = "hcm/") -> str:
    classified = to_event(event)
    item = Item(f"zalo:{classified.dedupe_id}", "zalo", event, now_ms(), connection="hcm", event=classified.kind)
    ctx.lanes.accept(lane_prefix + classified.lane, item)
    return Drainer(ctx).drain(lane_prefix + classified.lane)


@pytest.fixture
def hcm(ctx, settings, redis, public_dns):
    store(redis, settings, HCM)
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        mock.get(f"{ZALO_API}/v3.0/oa/user/detail", json={"error": 0, "data": {"display_name": "Lan"}})
        mock.post(f"{HCM_API}/conversations", json={"conversation_id": CONV, "messages": [{"id": "m0"}]})
        mock.put(f"{HCM_API}/users/{FC_USER}", text="")
        yield mock


def props(body: dict) -> dict:
    return {p["name"]: p["value"] for p in body["properties"]}


def text_to_hcm() -> dict:
    return zalo_event("user_send_text", app_id=HCM["zalo"]["app_id"], oa_id=HCM_OA)


def test_a_new_user_names_the_connection_they_wrote_to(ctx, hcm):
    hcm.get(f"{HCM_API}/users", json={"users": []})
    hcm.post(f"{HCM_API}/users", json={"id": FC_USER})
    assert run(ctx, text_to_hcm()) == "empty"
    (created,) = [r for r in hcm.request_history if r.method == "POST" and r.url == f"{HCM_API}/users"]
    assert props(created.json())["zalo_oa"] == "Shop HCM"
    assert [r for r in hcm.request_history if r.method == "PUT"] == []


def test_a_found_user_known_through_another_oa_gets_this_one_added(ctx, hcm):
    reference = reference_id(ctx.for_connection("hcm").settings, USER)
    theirs = {"id": FC_USER, "reference_id": reference, "properties": [{"name": "zalo_oa", "value": "Shop HN"}]}
    hcm.get(f"{HCM_API}/users", json={"users": [theirs]})
    run(ctx, text_to_hcm())
    (put,) = [r for r in hcm.request_history if r.method == "PUT"]
    assert put.url == f"{HCM_API}/users/{FC_USER}"
    assert props(put.json())["zalo_oa"] == "Shop HN; Shop HCM"


def test_a_found_user_already_naming_this_oa_is_not_written_again(ctx, hcm):
    reference = reference_id(ctx.for_connection("hcm").settings, USER)
    theirs = {"id": FC_USER, "reference_id": reference, "properties": [{"name": "zalo_oa", "value": "Shop HCM"}]}
    hcm.get(f"{HCM_API}/users", json={"users": [theirs]})
    run(ctx, text_to_hcm())
    assert [r for r in hcm.request_history if r.method == "PUT"] == []


@pytest.mark.parametrize(
    "names, oa, joined",
    [
        ("", "Shop HCM", "Shop HCM"),
        ("Shop HN", "Shop HN", "Shop HN"),
        ("Shop HN; Shop HCM", "Shop HCM", "Shop HN; Shop HCM"),
    ],
)
def test_oa_names_are_joined_once_each(names, oa, joined):
    assert with_oa(names, oa) == joined


def test_a_user_of_one_oa_keeps_no_copy_of_its_name_and_every_put_still_carries_it(ctx, hcm):
    """Bytes per user: the OA's own name is the connection's, added back to each property list."""
    hcm.get(f"{HCM_API}/users", json={"users": []})
    hcm.post(f"{HCM_API}/users", json={"id": FC_USER})
    run(ctx, text_to_hcm())
    oa = ctx.for_connection("hcm")
    stored = oa.redis.hgetall(oa.keys.zalo_user(USER))
    assert [name for name in stored if b"zalo_oa" in name] == []
    body = user_update(oa, USER)
    created = datetime.fromtimestamp(int(stored[b"n"]), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert props(body)["zalo_oa"] == "Shop HCM" and props(body)["created"] == created


def test_a_user_of_several_oas_keeps_their_names(ctx, hcm):
    reference = reference_id(ctx.for_connection("hcm").settings, USER)
    theirs = {"id": FC_USER, "reference_id": reference, "properties": [{"name": "zalo_oa", "value": "Shop HN"}]}
    hcm.get(f"{HCM_API}/users", json={"users": [theirs]})
    run(ctx, text_to_hcm())
    oa = ctx.for_connection("hcm")
    assert oa.redis.hget(oa.keys.zalo_user(USER), "p:zalo_oa") == b"Shop HN; Shop HCM"
    assert props(user_update(oa, USER))["zalo_oa"] == "Shop HN; Shop HCM"
