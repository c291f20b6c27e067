"""change_template_status: Zalo's word on a template, through the real webhook and the real drain,
kept per connection and shown on the connection's console page; never a message for anyone."""

from __future__ import annotations

import re
import time
from dataclasses import replace

import pytest
import requests_mock

from app import create_app
from app.bridge import keys
from app.integrations.zalo import schemas
from app.operations.template_status import MAX_TEMPLATES, template_statuses
from sandbox.helpers import load_fixture, post_zalo
from tests.web.console.test_console import ADMIN, sign_in
from workers.drain import Drainer

LANE = "tpl:203972"
APPROVED = {"status": "ENABLE", "previous": "PENDING_REVIEW", "reason": "", "at_ms": 1700000020000}
REJECTED = {
    "status": "REJECT",
    "previous": "ENABLE",
    "reason": "Nội dung mẫu tin chứa thông tin quảng cáo",
    "at_ms": 1700000080000,
}


@pytest.fixture
def m():
    """Recording a template's status calls no partner: any HTTP call fails the test."""
    with requests_mock.Mocker() as mock:
        yield mock
        assert mock.call_count == 0


def change(name: str = "change_template_status", **fields) -> dict:
    return {**load_fixture("zalo", "webhooks", f"{name}.json"), **fields}


def drain(ctx, lane: str = LANE, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while ctx.redis.zscore(keys.DUE, lane) is not None:
        assert time.monotonic() < deadline, f"{lane} did not drain"
        Drainer(ctx).drain(lane)


def test_a_status_change_is_accepted_and_kept_per_template(client, ctx, m):
    resp = post_zalo(client, change())
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "duplicate": False}
    drain(ctx)
    assert template_statuses(ctx.redis, "default") == {"203972": APPROVED}
    assert ctx.redis.zcard(ctx.keys.dead_order) == 0


def test_a_later_change_replaces_it_and_a_late_redelivery_of_an_earlier_one_does_not(client, ctx, m):
    post_zalo(client, change("change_template_status__rejected"))
    drain(ctx)
    post_zalo(client, change())  # the approval, redelivered after the rejection
    drain(ctx)
    assert template_statuses(ctx.redis, "default") == {"203972": REJECTED}


def test_a_change_drops_the_kept_copy_of_the_approved_templates(client, ctx, m):
    """A template Zalo just disabled must not be offered from a copy read minutes ago: the next
    reader (/template, the API, the console) reads Zalo afresh."""
    ctx.redis.set(ctx.keys.zalo_templates, '{"at": 1, "templates": []}', ex=300)
    other = keys.Keys("other").zalo_templates
    ctx.redis.set(other, '{"at": 1, "templates": []}', ex=300)
    post_zalo(client, change("change_template_status__rejected"))
    drain(ctx)
    assert ctx.redis.exists(ctx.keys.zalo_templates) == 0
    assert ctx.redis.exists(other) == 1  # another connection's copy is its own


def test_the_same_change_twice_is_a_duplicate(client, ctx, m):
    assert post_zalo(client, change()).get_json() == {"ok": True, "duplicate": False}
    assert post_zalo(client, change()).get_json() == {"ok": True, "duplicate": True}


def test_the_template_apis_numbers_are_kept_as_names():
    event = schemas.load_event(change(status={"prev_status": 1, "new_status": "4"}))
    got = schemas.template_change(event)
    assert (got.status, got.previous) == ("DISABLE", "ENABLE")


@pytest.mark.parametrize("previous", ["", None])
def test_a_new_template_may_have_no_previous_status(previous):
    got = schemas.template_change(
        schemas.load_event(change(status={"prev_status": previous, "new_status": "PENDING_REVIEW"}))
    )
    assert (got.status, got.previous) == ("PENDING_REVIEW", "")


@pytest.mark.parametrize(
    "fields",
    [
        {"template_id": None},
        {"template_id": "../../etc"},
        {"status": {"prev_status": "ENABLE"}},
        {"status": "ENABLE"},
        {"status": {"new_status": "<b>ENABLE</b>"}},
        {"status": {"new_status": ""}},
        {"status": {"new_status": True}},
    ],
)
def test_a_malformed_change_is_400_and_nothing_is_kept(client, ctx, m, fields):
    event = {k: v for k, v in change(**fields).items() if v is not None}
    resp = post_zalo(client, event)
    assert resp.status_code == 400 and resp.get_json()["error"].startswith("invalid event")
    assert ctx.redis.zcard(keys.DUE) == 0


def test_templates_beyond_the_bound_are_not_kept(ctx, m):
    from app.bridge.lanes import Item, now_ms

    ctx.redis.hset(ctx.keys.template_statuses, mapping={str(n): "{}" for n in range(MAX_TEMPLATES)})
    ctx.redis.set(ctx.keys.zalo_templates, '{"at": 1, "templates": []}', ex=300)
    event = schemas.load_event(change(template_id="999999"))
    ctx.lanes.accept("tpl:999999", Item("zalo:t", "zalo", event, now_ms(), event="template_status"))
    drain(ctx, "tpl:999999")
    assert ctx.redis.hlen(ctx.keys.template_statuses) == MAX_TEMPLATES
    assert ctx.redis.hget(ctx.keys.template_statuses, "999999") is None
    assert ctx.redis.exists(ctx.keys.zalo_templates) == 0  # not kept, yet the change is real


def test_the_connection_page_shows_what_zalo_reported(settings, ctx, client, m):
    web = create_app(replace(settings, admin_token=ADMIN)).test_client()
    assert sign_in(web).status_code == 302
    page = web.get("/admin/connections/default").get_data(as_text=True)
    assert 'id="no-template-statuses"' in page and 'id="template-statuses"' not in page
    post_zalo(client, change("change_template_status__rejected"))
    drain(ctx)
    page = web.get("/admin/connections/default").get_data(as_text=True)
    row = page[page.index('<tr id="template-status-203972"') :].split("</tr>")[0]
    cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in row.split("</td>")[:-1]]
    assert cells == ["203972", "REJECT", "ENABLE", "Nội dung mẫu tin chứa thông tin quảng cáo", cells[4]]
    assert cells[4].endswith("ago")  # Zalo's time of the change, 2023's in the fixture
