"""GET /api/connections/<id>/templates and the console's templates page: the approved Zalo
templates as agents' /templates lists them, from the kept copy or read from Zalo."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

import pytest
import requests_mock
from babel.dates import format_timedelta

from app import create_app
from app.bridge.keys import Keys
from app.commands.catalogue import CACHE_SECONDS
from sandbox.helpers import ZALO_API, load_fixture, post_zalo
from tests.operations.test_template_status import drain
from tests.web.console.test_console_i18n import csrf_of, english_in

ADMIN = "admin-token-for-the-template-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
BUSINESS = "https://business.openapi.zalo.me"
LIST = f"{BUSINESS}/template/all?offset=0&limit=100&status=1"
INFO = f"{BUSINESS}/template/info/v2?template_id="
ORDER = {
    "id": "412503",
    "name": "Xác nhận đơn hàng",
    "params": [
        {"name": "customer_name", "required": True, "max_length": 30},
        {"name": "order_code", "required": True, "max_length": 10},
        {"name": "note", "required": False, "max_length": 100},
    ],
    "price": "300.0",
}
THANKS = {"id": "412877", "name": "Cảm ơn khách hàng", "params": [], "price": "200.0"}


def answer(name: str) -> dict:
    return load_fixture("zalo", "answers", f"{name}.json")


@pytest.fixture
def web(settings):
    return create_app(replace(settings, admin_token=ADMIN)).test_client()


@pytest.fixture
def zalo():
    with requests_mock.Mocker() as mock:
        mock.get(LIST, json=answer("template_all"), complete_qs=True)
        mock.get(INFO + "412503", json=answer("template_info__order"), complete_qs=True)
        mock.get(INFO + "412877", json=answer("template_info__thanks"), complete_qs=True)
        yield mock


def test_the_route_needs_the_admin_token(web, zalo):
    assert web.get("/api/connections/default/templates").status_code == 401
    assert zalo.request_history == []


def test_an_unknown_connection_is_a_404(web, zalo):
    assert web.get("/api/connections/nobody/templates", headers=AUTH).status_code == 404


def test_the_route_reads_zalo_once_then_answers_from_the_kept_copy(web, zalo, redis):
    first = web.get("/api/connections/default/templates", headers=AUTH)
    assert first.status_code == 200 and first.get_json() == {"templates": [ORDER, THANKS]}
    assert [(r.method, r.url) for r in zalo.request_history] == [
        ("GET", LIST),
        ("GET", INFO + "412503"),
        ("GET", INFO + "412877"),
    ]
    assert all(r.headers["access_token"] == "access-0" for r in zalo.request_history)
    assert 0 < redis.ttl(Keys().zalo_templates) <= CACHE_SECONDS
    again = web.get("/api/connections/default/templates", headers=AUTH)
    assert again.get_json() == first.get_json() and len(zalo.request_history) == 3


def test_zalo_refusing_the_template_api_is_a_502_with_its_words(web, zalo):
    zalo.get(LIST, json={"error": -135, "message": "OA is not allowed"}, complete_qs=True)
    resp = web.get("/api/connections/default/templates", headers=AUTH)
    assert resp.status_code == 502
    assert resp.get_json() == {"error": "Zalo's template API: Zalo error -135: OA is not allowed"}
    assert "access-0" not in resp.get_data(as_text=True)


def test_a_connection_without_a_token_pair_is_a_502_saying_so_and_zalo_is_not_called(settings, zalo):
    """Tokens are optional (connect later with OAuth): a listing then has nothing to read with."""
    web = create_app(replace(settings, admin_token=ADMIN, zalo_access_token="", zalo_refresh_token="")).test_client()
    resp = web.get("/api/connections/default/templates", headers=AUTH)
    assert resp.status_code == 502
    assert resp.get_json()["error"].startswith("Zalo's template API: no token yet: connect the OA")
    assert zalo.request_history == []


# -- the console page ---------------------------------------------------------------------------


def signed_in(web):
    page = web.get("/admin/sign-in")
    web.post("/admin/sign-in", data={"csrf_token": csrf_of(page), "token": ADMIN})
    return web


def test_the_console_lists_name_parameters_price_status_and_when_read(web, zalo):
    html = signed_in(web).get("/admin/connections/default/templates").get_data(as_text=True)
    assert '<tr id="template-412503">' in html and '<tr id="template-412877">' in html
    assert "Xác nhận đơn hàng <code>412503</code>" in html
    assert "<code>customer_name</code>* <small>(≤ 30)</small>, <code>order_code</code>* <small>(≤ 10)</small>" in html
    assert "<td>300.0</td>" in html and '<span class="badge good">ENABLE</span>' in html
    assert 'id="templates-refreshed">Last refreshed: ' in html


def test_refresh_reads_zalo_again(web, zalo):
    signed_in(web).get("/admin/connections/default/templates")
    web.get("/admin/connections/default/templates?refresh=1")
    assert [r.url for r in zalo.request_history].count(LIST) == 2


def test_the_page_reads_in_vietnamese(web, zalo, redis):
    web.environ_base["HTTP_ACCEPT_LANGUAGE"] = "vi-VN,vi;q=0.9"
    signed_in(web)
    pages = [web.get("/admin/connections/default/templates")]
    redis.set(Keys().zalo_templates, json.dumps({"at": 0, "templates": []}))
    pages.append(web.get("/admin/connections/default/templates"))
    redis.delete(Keys().zalo_templates)
    zalo.get(LIST, json={"error": -135, "message": "Không được phép"}, complete_qs=True)
    pages.append(web.get("/admin/connections/default/templates"))
    assert "Cập nhật lần cuối" in pages[0].get_data(as_text=True)
    assert "OA này chưa có mẫu tin nào được duyệt." in pages[1].get_data(as_text=True)
    assert "Zalo không trả về danh sách mẫu tin:" in pages[2].get_data(as_text=True)
    assert [english_in(p.get_data(as_text=True)) for p in pages] == [[], [], []]


# -- what Zalo reported of each template (change_template_status) -------------------------------


def cells_of(html: str, row_id: str) -> list[str]:
    """The text of each cell of the row `row_id`, tags dropped."""
    row = html[html.index(f'<tr id="{row_id}"') :].split("</tr>")[0]
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in row.split("</td>")[:-1]]


def report(client, ctx, name: str, **fields) -> None:
    """Zalo's change_template_status through the real webhook and the real drain."""
    event = {**load_fixture("zalo", "webhooks", f"{name}.json"), **fields}
    assert post_zalo(client, event).status_code == 200
    drain(ctx, f"tpl:{event['template_id']}")


def test_a_status_change_shows_on_the_page_at_once(web, zalo, client, ctx):
    """The page read Zalo and kept its copy; the approval arriving after it drops that copy, so
    the next page reads Zalo again and shows the change beside the template."""
    html = signed_in(web).get("/admin/connections/default/templates").get_data(as_text=True)
    assert cells_of(html, "template-412503")[4] == "none reported"
    assert 'id="templates-not-approved"' not in html
    report(client, ctx, "change_template_status", template_id="412503")
    html = web.get("/admin/connections/default/templates").get_data(as_text=True)
    assert [r.url for r in zalo.request_history].count(LIST) == 2
    cells = cells_of(html, "template-412503")
    assert cells[3:] == ["ENABLE", f"PENDING_REVIEW → ENABLE, {ago(1700000020)}"]
    assert cells_of(html, "template-412877")[4] == "none reported"


def test_templates_changed_but_not_approved_are_listed_apart(web, zalo, client, ctx):
    report(client, ctx, "change_template_status__rejected")  # 203972: not in Zalo's approved list
    report(client, ctx, "change_template_status", template_id="412877", status={"new_status": "DISABLE"})
    html = signed_in(web).get("/admin/connections/default/templates").get_data(as_text=True)
    assert 'id="templates-not-approved"' in html and 'id="template-412877"' in html
    # 412877 is still in this (mocked) approved list: its change shows in its row, not apart
    assert cells_of(html, "template-412877")[4] == f"— → DISABLE, {ago(1700000020)}"
    assert html.count('<tr id="template-other-') == 1
    assert cells_of(html, "template-other-203972") == [
        "203972",
        "REJECT",
        "ENABLE",
        "Nội dung mẫu tin chứa thông tin quảng cáo",
        ago(1700000080),
    ]


def test_the_changes_show_when_zalo_refuses_the_list(web, zalo, client, ctx):
    report(client, ctx, "change_template_status__rejected")
    zalo.get(LIST, json={"error": -135, "message": "OA is not allowed"}, complete_qs=True)
    html = signed_in(web).get("/admin/connections/default/templates").get_data(as_text=True)
    assert 'id="templates-error"' in html
    assert cells_of(html, "template-other-203972")[:2] == ["203972", "REJECT"]


def test_the_changes_read_in_vietnamese(web, zalo, client, ctx):
    report(client, ctx, "change_template_status__rejected")
    web.environ_base["HTTP_ACCEPT_LANGUAGE"] = "vi-VN,vi;q=0.9"
    html = signed_in(web).get("/admin/connections/default/templates").get_data(as_text=True)
    assert "<th>Thay đổi gần nhất Zalo báo</th>" in html
    assert cells_of(html, "template-412503")[4] == "Zalo chưa báo"
    assert "<h2>Mẫu tin Zalo báo đã đổi trạng thái, hiện không gửi được</h2>" in html
    assert english_in(html) == []


def ago(at: int) -> str:
    """The console's "… ago" of a time in the past, in English (babel's own wording)."""
    return format_timedelta(at - time.time(), add_direction=True, locale="en")
