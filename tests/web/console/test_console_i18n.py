"""The Vietnamese console holds no English: every page, in every state a real Redis can be put in,
renders no English catalogue text and none of the bridge's own English words (a dead letter's
reason, a Test connection detail, a form error, an event's state, the default connection's name).
The English an operator cannot be spared is a partner's own words, which the data here avoids."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

import pytest
import requests
import requests_mock
from babel.messages.pofile import read_po

from app import create_app
from app.bridge import keys
from app.bridge.deadletters import DeadLetters
from app.bridge.keys import DUE, Keys
from app.bridge.lanes import Item, Lanes, now_ms
from app.connections.checks import record_check
from app.operations.journal import Journal
from app.operations.status import remember_error
from app.wording import SHAPES, said
from sandbox.helpers import FC_PUBLIC_PEM, ZALO_API, load_fixture
from tests.english import PLACEHOLDER, catalogue, english_left

ADMIN = "console-i18n-admin-Tq52"
CHANNEL = "6c03caf2-a37f-45a2-a9a3-6e03aa7b85f5"  # the topic in freshchat/answers/channels.json
FC_HCM = "https://hcm.freshchat.com/v2"
FORM = {
    "id": "shop-hcm",
    "name": "Shop HCM",
    "zalo.app_id": "999000111",
    "zalo.app_secret": "app-secret-vi",
    "zalo.oa_id": "777000111",
    "zalo.oa_secret_key": "oa-secret-vi",
    "zalo.access_token": "access-vi",
    "zalo.refresh_token": "refresh-vi",
    "freshchat.api_url": FC_HCM,
    "freshchat.api_key": "fc-key-vi",
    "freshchat.channel_id": CHANNEL,
    "freshchat.webhook_public_key": FC_PUBLIC_PEM,
    "options.receipts": "note",
    "options.customer_language": "vi",
    "options.agent_language": "vi",
}
READ_ATTRIBUTES = {"placeholder", "aria-label", "title", "data-confirm", "data-done"}


class Visible(HTMLParser):
    """The text a person reads on a page: its words and the attributes a browser shows, not the
    raw JSON of a dead letter (<pre>) nor scripts."""

    def __init__(self):
        super().__init__()
        self.parts, self.hidden = [], 0

    def handle_starttag(self, tag, attrs):
        if tag in ("pre", "script", "style"):
            self.hidden += 1
        self.parts += [value for name, value in attrs if name in READ_ATTRIBUTES and value]

    def handle_endtag(self, tag):
        if tag in ("pre", "script", "style"):
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def visible(html: str) -> str:
    reader = Visible()
    reader.feed(html)
    return "\n".join(reader.parts)


def english_in(html: str) -> list[str]:
    return english_left(visible(html))


@pytest.fixture
def web(settings):
    chosen = replace(settings, admin_token=ADMIN, public_base_url="http://localhost:8000")
    client = create_app(chosen).test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "vi-VN,vi;q=0.9"
    return client


def csrf_of(resp) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', resp.get_data(as_text=True)).group(1)


def post(web, path: str, data: dict, page: str = "/admin/", **kw):
    return web.post(path, data={"csrf_token": csrf_of(web.get(page)), **data}, **kw)


@pytest.fixture
def created(web):
    page = web.get("/admin/sign-in")
    web.post("/admin/sign-in", data={"csrf_token": csrf_of(page), "token": ADMIN})
    assert post(web, "/admin/connections/new", FORM, "/admin/connections/new").status_code == 302
    return web


def zalo_item(item_id: str, text: str, **kw) -> Item:
    payload = {"event_name": "user_send_text", "message": {"text": text}}
    return Item(item_id, "zalo", payload, now_ms(), connection="shop-hcm", **kw)


def fc_item(item_id: str) -> Item:
    return Item(item_id, "freshchat", {"event": "message_create"}, now_ms(), connection="shop-hcm")


REASONS = [
    "permanent: FreshChat refused even the plainest form: FreshChat HTTP 400 on /v2/conversations/c-1/messages: x-400",
    "gave up after 9 attempts: FreshChat HTTP 503 on /v2/conversations/c-2/messages: x-503",
    "permanent: Zalo error -230: x-230",
    "unexpected: KeyError: 'x-key'",
    "connection removed",
    "connection shop-hcm no longer exists",
    "Zalo refresh token is dead: -14014 x-14014",
    "copying Zalo media failed: FreshChat unreachable: ConnectTimeout",
]


def in_every_state(redis):
    """Events in every state, dead letters with every kind of reason, and every problem a card shows."""
    # The lease of the lane a worker holds outlasts the test however slow the machine: a worker's
    # 30 s lease running out mid-test would turn that event from "received" to "queued".
    k, lanes, journal = Keys("shop-hcm"), Lanes(redis, lease_ms=3_600_000), Journal(redis, "shop-hcm")
    journal.record("shop-hcm/in:u-1", zalo_item("zalo:d1", "Xin chào shop"), "delivered")
    journal.record("shop-hcm/out:c-2", fc_item("freshchat:r1"), "retrying", reason=REASONS[1])
    dead = DeadLetters(redis, lanes, keys=k)
    for n, reason in enumerate(REASONS):
        journal.record(
            f"shop-hcm/out:c-{n}", fc_item(f"freshchat:f{n}"), "failed", reason, dead_letter=f"freshchat:f{n}"
        )
        dead.add(f"shop-hcm/out:c-{n}", fc_item(f"freshchat:f{n}"), reason)
    lanes.accept("shop-hcm/in:u-2", zalo_item("zalo:q1", "Cho hỏi giá"))  # received: a worker holds it
    lanes.accept("shop-hcm/in:u-2", zalo_item("zalo:q2", "Còn hàng không ạ"))  # queued behind it
    assert lanes.acquire("shop-hcm/in:u-2")
    lanes.accept("shop-hcm/in:u-3", zalo_item("zalo:w1", "Alo", attempts=2, last_error=REASONS[2][11:]))
    redis.zadd(DUE, {"shop-hcm/in:u-3": now_ms() + 60_000})
    redis.zadd(DUE, {"shop-hcm/in:u-4": now_ms() - 600_000})  # due long ago: the queue is stuck
    redis.rpush(keys.lane("shop-hcm/in:u-4"), zalo_item("zalo:s1", "Chờ lâu").dumps())
    redis.hset(k.zalo_token, "dead", "-14014 x-14014")
    for reason in REASONS:
        remember_error(redis, k, reason, lane="shop-hcm/out:c-1")
    now = time.time()
    redis.set(k.last_webhook("zalo"), now - 3 * 3600)
    outcome = {"reason": "quiet", "since": 0, "started_at": 0, "finished_at": int(now * 1000) - 120_000}
    outcome |= {"chats": 2, "found": 3, "queued": 2, "missed": 2, "newest_missed": int((now - 3600) * 1000)}
    redis.hset(k.catchup, mapping=outcome)
    refused = {"ok": False, "detail": "token refused (-216 x-216): the worker refreshes it when a message needs it; "}
    refused["detail"] += "if this persists, connect the OA again"
    channel = {"ok": False, "detail": "API key refused (401): generate a new one under Admin, APIs for chat"}
    record_check(redis, "shop-hcm", {"zalo": refused, "freshchat": channel})


def test_every_console_page_reads_in_vietnamese(created, redis):
    in_every_state(redis)
    seen = {}
    events = "/admin/connections/shop-hcm/events"
    seen["dashboard"] = created.get("/admin/")
    seen["events"] = created.get(events)
    for state in ("received", "queued", "delivered", "retrying", "failed"):
        seen[f"events {state}"] = created.get(f"{events}?state={state}")
        assert f'class="state-{state}"' in seen[f"events {state}"].get_data(as_text=True)
    post(created, "/admin/connections/shop-hcm/dead-letters", {"replay_one": "freshchat:nobody"}, events)
    post(created, "/admin/connections/shop-hcm/dead-letters", {"action": "drop"}, events)
    seen["events after a refused replay"] = created.get(events)
    post(created, "/admin/connections/shop-hcm/dead-letters", {"drop_one": "freshchat:f7"}, events)
    seen["events dropped"] = created.get(f"{events}?state=dropped")
    assert 'class="state-dropped"' in seen["events dropped"].get_data(as_text=True)
    seen["new"] = created.get("/admin/connections/new")
    bad = dict(FORM, id="Bad Id", name="x" * 201, **{"zalo.app_id": "abc", "freshchat.api_url": "nope"})
    bad["freshchat.webhook_public_key"], bad["freshchat.channel_id"] = "khóa sai", ""
    seen["new, refused"] = post(created, "/admin/connections/new", bad, "/admin/connections/new")
    seen["new, id taken"] = post(created, "/admin/connections/new", FORM, "/admin/connections/new")
    same_oa = dict(FORM, id="shop-hn")
    seen["new, OA taken"] = post(created, "/admin/connections/new", same_oa, "/admin/connections/new")
    edit = "/admin/connections/shop-hcm"
    seen["edit"] = created.get(edit)
    seen["edit, refused"] = post(created, edit, {"freshchat.api_url": "nope", "zalo.oa_id": "x"}, edit)
    post(created, edit + "/catch-up", {}, edit)
    seen["edit, catch-up refused"] = created.get(edit)
    post(created, edit + "/enabled", {"enabled": "1"}, edit)
    post(created, edit + "/catch-up", {}, edit)
    seen["edit, activated and catching up"] = created.get(edit)
    token = csrf_of(created.get(edit))
    upload = {"csrf_token": token, "file": (BytesIO(b"<html></html>"), "index.html")}
    created.post(edit + "/verification", data=upload, content_type="multipart/form-data")
    seen["edit, verification refused"] = created.get(edit)
    seen["default connection"] = created.get("/admin/connections/default")
    seen["default connection's events"] = created.get("/admin/connections/default/events")
    seen["unknown connection"] = created.get("/admin/connections/nobody")
    seen["form expired"] = created.post(edit, data={"csrf_token": "forged"})
    problems = seen["dashboard"].get_data(as_text=True)
    assert "Webhook Zalo không đến nữa" in problems and "Cặp token Zalo đã hết hiệu lực" in problems
    assert "Mặc định (biến môi trường)" in problems
    left = {name: english_in(resp.get_data(as_text=True)) for name, resp in seen.items()}
    assert {name: words for name, words in left.items() if words} == {}


def test_sign_in_with_a_wrong_token_reads_in_vietnamese(web):
    page = web.get("/admin/sign-in")
    resp = web.post("/admin/sign-in", data={"csrf_token": csrf_of(page), "token": "wrong"})
    assert "Mã quản trị không đúng." in resp.get_data(as_text=True)
    assert english_in(resp.get_data(as_text=True)) == [] and english_in(page.get_data(as_text=True)) == []


def test_what_never_was_and_a_secret_not_set_read_chua_co(created):
    """A webhook or a catch-up that never came, and a secret not given, read "chưa có", not
    "Zalo chưa báo" (Zalo has not reported: the templates' text)."""
    dashboard = created.get("/admin/").get_data(as_text=True)
    assert "Zalo: chưa có · FreshChat: chưa có" in dashboard
    new = created.get("/admin/connections/new").get_data(as_text=True)
    assert 'id="f-zalo-app_secret-state">chưa có</span>' in new and "Zalo chưa báo" not in dashboard + new


def with_a_word(pem: str) -> str:
    """`pem` whose third line of base64 holds "+the+" and no "/": as a random key's does about
    once in 8 000 keys (sandbox/helpers.py makes a new one per test process). Still a key."""
    lines = pem.strip().splitlines()
    groups = ["AAAA" if "/" in g else g for g in re.findall(".{4}", lines[2])]  # 4 characters: 3 bytes
    groups[6:8] = ["AAA+", "the+"]
    lines[2] = "".join(groups)
    return "\n".join(lines) + "\n"


def test_a_public_keys_base64_is_no_english(created):
    """The page shows the FreshChat webhook key as given: its base64 is no text to translate."""
    edit, key = "/admin/connections/shop-hcm", with_a_word(FC_PUBLIC_PEM)
    assert post(created, edit, dict(FORM, **{"freshchat.webhook_public_key": key}), edit).status_code == 302
    page = created.get(edit).get_data(as_text=True)
    assert "AAA+the+" in page and english_in(page) == []


GETOA = f"{ZALO_API}/v2.0/oa/getoa"
CHANNELS = f"{FC_HCM}/channels"


def zalo_answer(**data):
    answer = load_fixture("zalo", "answers", "getoa.json")
    answer["data"].update({"oa_id": "777000111", "name": "Shop Hồ Chí Minh", **data})
    return {"json": answer}


def channels(*named):
    return {"json": {"channels": [{"id": i, "name": n} for i, n in named], "pagination": {"total_pages": 1}}}


OURS = channels((CHANNEL, "Kênh Zalo"))
CASES = {  # what Zalo and FreshChat answer -> what each side says
    "both work": (zalo_answer(), OURS),
    "token refused, key refused": ({"json": {"error": -216, "message": "x-216"}}, {"status_code": 401}),
    "call refused, no right to list topics": ({"json": {"error": -201, "message": "x-201"}}, {"status_code": 403}),
    "HTTP errors, URL without /v2": ({"status_code": 500}, {"status_code": 404}),
    "not JSON on both sides": ({"text": "<html>"}, {"text": "<html>"}),
    "another OA, FreshChat down": (zalo_answer(oa_id="123"), {"status_code": 502}),
    "unreachable": ({"exc": requests.ConnectionError}, {"exc": requests.ConnectTimeout}),
    "no topic of that id": (zalo_answer(), channels(("other", "Kênh khác"))),
    "no topics at all": (zalo_answer(), channels()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_test_connection_result_reads_in_vietnamese(created, case):
    zalo, freshchat = CASES[case]
    edit = "/admin/connections/shop-hcm"
    with requests_mock.Mocker() as mock:
        mock.get(GETOA, **zalo)
        mock.get(CHANNELS, **freshchat)
        resp = post(created, edit + "/test", {}, edit)
    page = resp.get_data(as_text=True)
    start = page.index('<section class="card" id="test-result">')
    result = page[start : page.index("</section>", start)]
    assert english_in(result) == [] and english_in(page) == []


def test_a_dead_token_and_a_token_never_given_read_in_vietnamese(created, redis):
    edit = "/admin/connections/shop-hcm"
    redis.hset(Keys("shop-hcm").zalo_token, "dead", "-14014 x-14014")
    with requests_mock.Mocker() as mock:
        mock.get(CHANNELS, **OURS)
        page = post(created, edit + "/test", {}, edit).get_data(as_text=True)
    assert "cặp token đã hết hiệu lực (-14014 x-14014)" in page and english_in(page) == []


def test_the_topic_pickers_refusals_read_in_vietnamese(created):
    token = csrf_of(created.get("/admin/connections/shop-hcm"))
    refused = created.post("/admin/topics", json={"api_url": "nope"}, headers={"X-CSRFToken": token})
    assert refused.status_code == 400
    assert (
        refused.get_json()["error"]
        == "api_url: cần URL API FreshChat (URL chat thêm /v2 ở cuối); api_key: cần khóa API FreshChat"
    )
    with requests_mock.Mocker() as mock:
        mock.get(CHANNELS, status_code=401)
        answer = created.post("/admin/topics", json={"connection_id": "shop-hcm"}, headers={"X-CSRFToken": token})
    assert answer.status_code == 502 and answer.get_json()["error"].startswith("khóa API bị từ chối (401)")


def test_the_api_keeps_its_english(created):
    """The API's answers are unchanged: only what the console shows is translated."""
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    answer = created.post("/api/connections", json=dict(id="Bad Id"), headers=bearer).get_json()
    assert answer["fields"]["id"] == "1 to 40 characters of a-z, 0-9 and -"
    assert created.get("/api/connections/default", headers=bearer).get_json()["name"] == "Default (environment)"


# -- the catalogue itself ---------------------------------------------------------------------------


def test_the_catalogue_has_no_empty_or_fuzzy_entry():
    messages = catalogue()
    assert len(messages) > 200
    assert [m.id for m in messages if not m.string or m.fuzzy] == []


def vietnamese(text: str) -> bool:
    return bool(re.search(r"[àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ]", text, re.I))


@pytest.mark.parametrize("shape", sorted(set(SHAPES)))
def test_each_english_text_the_bridge_writes_has_its_vietnamese(web, shape):
    """Every reason, detail and refusal the console translates (app/wording.py) has a
    Vietnamese of its own, with the same {fields}."""
    found = {m.id: m.string for m in catalogue()}
    assert shape in found and vietnamese(found[shape]) and found[shape] != shape
    assert sorted(PLACEHOLDER.findall(found[shape])) == sorted(PLACEHOLDER.findall(shape))
    filled = re.sub(r"\{(\w+)\}", r"x-\1", shape)
    with web.application.test_request_context(headers={"Accept-Language": "vi"}):
        assert vietnamese(said(filled))
    with web.application.test_request_context(headers={"Accept-Language": "en"}):
        assert said(filled) == filled  # English readers see the text as written


def test_a_reason_inside_a_reason_is_translated_and_a_partners_words_are_kept(web):
    with web.application.test_request_context(headers={"Accept-Language": "vi"}):
        assert said(REASONS[0]) == (
            "không thể thử lại: FreshChat từ chối cả dạng tin đơn giản nhất: "
            "FreshChat trả lời HTTP 400 cho /v2/conversations/c-1/messages: x-400"
        )
        assert said("something a partner said") == "something a partner said"
