"""The data behind the admin console, through the JSON API: events, dashboard status, Zalo's
domain-verification files, the FreshChat topic picker and the Zalo events to switch on."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
import requests
import requests_mock

from app import create_app
from app.bridge import keys
from app.bridge.deadletters import DeadLetters
from app.bridge.keys import DUE, Keys
from app.bridge.lanes import Item, Lanes, now_ms
from app.integrations import events
from app.integrations.zalo.events_catalog import EVENTS
from app.integrations.zalo.schemas import REACTED, RECEIVED, RECORDED_EVENTS, SEEN, kind_of
from app.operations.journal import Journal
from app.operations.problems import CODES, problem_text
from app.texts import TEXTS
from sandbox.helpers import FC_API, load_fixture, post_zalo
from tests.web.test_api import AUTH, BODY, FC_HCM, SECRETS

USER = "246845883529197922"
CHANNELS = load_fixture("freshchat", "answers", "channels.json")
VERIFIER = b'<html><head><meta name="zalo-platform-site-verification" content="AbC_12-x" /></head></html>\n'
ENV_SECRETS = ["app-secret-example", "oa-secret-key-example", "access-0", "refresh-0", "fc-api-key-example"]


@pytest.fixture
def api_settings(settings):
    return replace(settings, admin_token="admin-token-for-the-api-tests", zalo_site_verification="EnvCode1")


@pytest.fixture
def web(api_settings):
    return create_app(api_settings).test_client()


@pytest.fixture
def shop(web):
    assert web.post("/api/connections", json=BODY, headers=AUTH).status_code == 201
    return "shop-hcm"


def get(web, path: str, **kw):
    return web.get(path, headers=AUTH, **kw)


# -- events ---------------------------------------------------------------------------------------


def test_a_queued_webhook_and_a_recorded_outcome_are_listed(web, redis):
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    assert post_zalo(web, event).status_code == 200
    item = Item(
        "freshchat:a1", "freshchat", load_fixture("freshchat", "webhooks", "message_create__agent_text.json"), now_ms()
    )
    Journal(redis, "default").record("out:conv-1", item, "delivered")

    answer = get(web, "/api/connections/default/events").get_json()
    assert answer["connection"] == "default"
    assert [(e["id"], e["state"], e["direction"]) for e in answer["events"]] == [
        ("freshchat:a1", "delivered", "out"),
        ("zalo:96d3cdf3af150460909", "queued", "in"),
    ]
    only_in = get(web, f"/api/connections/default/events?direction=in&state=queued&find={USER}&limit=5").get_json()
    assert [e["id"] for e in only_in["events"]] == ["zalo:96d3cdf3af150460909"]
    assert get(web, "/api/connections/default/events?state=failed").get_json()["events"] == []


def test_the_bridges_own_timers_are_not_listed_as_events(web, redis):
    assert post_zalo(web, load_fixture("zalo", "webhooks", "user_send_text.json")).status_code == 200
    lanes, later = Lanes(redis), now_ms() + 3600_000
    window = Item(f"window:{USER}:1", "zalo", {"zalo_user": USER}, now_ms(), event=events.WINDOW_CLOSING)
    lanes.schedule(keys.window_lane(USER), window, later, replace=True)
    receipts = Item("receipts:conv-1", "zalo", {"conversation": "conv-1"}, now_ms(), event=events.RECEIPTS_NOTE)
    lanes.schedule(keys.receipts_lane("conv-1"), receipts, later, replace=True)
    Journal(redis, "default").record(keys.window_lane(USER), window, "delivered")  # a timer that ran

    answer = get(web, "/api/connections/default/events").get_json()
    assert [(e["id"], e["state"]) for e in answer["events"]] == [("zalo:96d3cdf3af150460909", "queued")]


@pytest.mark.parametrize("url", ["https://hcm.freshchat.com", "https://hcm.freshchat.com/v1", "https://x.io/v2/x"])
def test_a_freshchat_api_url_not_ending_in_v2_is_refused_as_the_environments_is(web, shop, url):
    resp = web.patch("/api/connections/shop-hcm", json={"freshchat": {"api_url": url}}, headers=AUTH)
    words = "must end in /v2 (the chat URL plus /v2, e.g. https://acme.freshchat.com/v2)"
    assert resp.status_code == 400 and resp.get_json()["fields"] == {"freshchat.api_url": words}
    assert get(web, "/api/connections/shop-hcm").get_json()["freshchat"]["api_url"] == FC_HCM
    ok = web.patch("/api/connections/shop-hcm", json={"freshchat": {"api_url": FC_HCM + "/"}}, headers=AUTH)
    assert ok.status_code == 200 and ok.get_json()["freshchat"]["api_url"] == FC_HCM


@pytest.mark.parametrize(
    "query, field",
    [
        ("direction=up", "direction"),
        ("state=gone", "state"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("limit=501", "limit"),
        ("find=" + "x" * 201, "find"),
    ],
)
def test_bad_event_filters_are_400_with_the_field_named(web, query, field):
    resp = get(web, f"/api/connections/default/events?{query}")
    assert resp.status_code == 400 and list(resp.get_json()["fields"]) == [field]


def test_events_of_an_unknown_connection_are_404(web):
    assert get(web, "/api/connections/nobody/events").status_code == 404


# -- the dashboard's status -----------------------------------------------------------------------


def test_a_connection_shows_relayed_today_last_errors_and_problems(web, redis, shop):
    k = Keys(shop)
    item = Item("zalo:m1", "zalo", load_fixture("zalo", "webhooks", "user_send_text.json"), now_ms(), connection=shop)
    Journal(redis, shop).record(f"{shop}/in:{USER}", item, "delivered")
    DeadLetters(redis, Lanes(redis), k).add(f"{shop}/in:{USER}", item, "permanent: refused")
    redis.lpush(k.errors, '{"error": "FreshChat answered 503"}')
    Lanes(redis).accept(f"{shop}/in:other", Item("zalo:m2", "zalo", {}, now_ms(), connection=shop))
    redis.zadd(DUE, {f"{shop}/in:other": now_ms() - 10 * 60_000})  # due 10 min ago, nobody took it
    redis.set(k.last_webhook("zalo"), 1_700_000_000)

    status = get(web, f"/api/connections/{shop}").get_json()["status"]
    assert status["relayed_today"] == {"in": 1, "out": 0}
    assert status["last_errors"] == ['{"error": "FreshChat answered 503"}']
    assert [(p["code"], p["values"]) for p in status["problems"]] == [
        ("no_freshchat_webhook", {}),
        ("dead_letters", {"count": 1}),
        ("queue_stuck", {"minutes": 10}),
    ]
    assert status["problems"][1]["what"] == "1 message(s) could not be delivered and are waiting."
    assert get(web, "/api/status").get_json()["connections"][shop]["problems"] == status["problems"]


def test_no_token_pair_is_a_problem_but_the_environments_pair_is_one(web):
    tokenless = dict(BODY, id="no-token", zalo=dict(BODY["zalo"], oa_id="777000222", access_token="", refresh_token=""))
    assert web.post("/api/connections", json=tokenless, headers=AUTH).status_code == 201
    codes = lambda cid: [p["code"] for p in get(web, f"/api/connections/{cid}").get_json()["status"]["problems"]]  # noqa: E731
    assert codes("no-token") == ["no_token", "no_zalo_webhook", "no_freshchat_webhook"]
    assert codes("default") == ["no_zalo_webhook", "no_freshchat_webhook"]  # ZALO_*_TOKEN, not yet in Redis


def test_a_dead_token_pair_says_to_connect_again(web, redis):
    redis.hset(Keys("default").zalo_token, mapping={"access_token": "", "dead": "-14014 refresh token invalid"})
    [problem, *_] = get(web, "/api/connections/default").get_json()["status"]["problems"]
    assert problem == {
        "code": "token_dead",
        "values": {"reason": "-14014 refresh token invalid"},
        "what": "The Zalo token pair is dead (-14014 refresh token invalid); replies are waiting.",
        "fix": "Connect the OA again (“Connect with Zalo”).",
    }
    assert problem_text("token_dead", "vi", **problem["values"])["fix"] == "Kết nối lại OA (nút “Kết nối với Zalo”)."


def test_every_problem_reads_in_both_languages():
    for code in CODES:
        for part in ("what", "fix"):
            assert set(TEXTS[f"problem.{code}.{part}"]) == {"vi", "en"}


def test_readyz_shows_no_error_texts(web, redis):
    redis.lpush(Keys("default").errors, '{"error": "something about a user"}')
    shown = web.get("/readyz").get_json()["connections"]["default"]
    assert "last_errors" not in shown and "problems" not in shown


# -- Zalo's domain-verification files -------------------------------------------------------------


def test_an_uploaded_file_is_served_byte_for_byte(web, shop):
    resp = web.put(
        f"/api/connections/{shop}/verification",
        data={"file": (io.BytesIO(VERIFIER), "zalo_verifierAbC_12-x.html")},
        headers=AUTH,
        content_type="multipart/form-data",
    )
    assert resp.status_code == 201
    assert resp.get_json() == {
        "filename": "zalo_verifierAbC_12-x.html",
        "url": "https://bridge.example.com/zalo_verifierAbC_12-x.html",
        "bytes": len(VERIFIER),
    }
    page = web.get("/zalo_verifierAbC_12-x.html")
    assert page.status_code == 200 and page.data == VERIFIER
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Content-Security-Policy"] == "sandbox; default-src 'none'; frame-ancestors 'none'"
    assert "EnvCode1" in web.get("/zalo_verifierEnvCode1.html").get_data(as_text=True)  # the env's still answers
    assert get(web, f"/api/connections/{shop}/verification").get_json()["files"] == [resp.get_json()]


def test_a_raw_body_upload_names_the_file_in_the_query(web):
    path = "/api/connections/default/verification?filename=zalo_verifierRaw9.html"
    assert web.put(path, data=VERIFIER, headers=AUTH).status_code == 201
    assert web.get("/zalo_verifierRaw9.html").data == VERIFIER


@pytest.mark.parametrize(
    "filename, content",
    [
        ("verifier.html", VERIFIER),
        ("zalo_verifier.html", VERIFIER),
        ("zalo_verifierab.cd.html", VERIFIER),
        ("zalo_verifier" + "a" * 65 + ".html", VERIFIER),
        ("zalo_verifierOk.htm", VERIFIER),
        ("zalo_verifierOk.html", b""),
        ("zalo_verifierOk.html", b"x" * (16 * 1024 + 1)),
    ],
)
def test_only_zalos_file_name_and_a_small_file_are_taken(web, filename, content):
    resp = web.put(f"/api/connections/default/verification?filename={filename}", data=content, headers=AUTH)
    assert resp.status_code == 400 and "file" in resp.get_json()["fields"]
    assert get(web, "/api/connections/default/verification").get_json()["files"] == []


ZALO_PAGE = (
    b'<!DOCTYPE html>\n<html lang="vi">\n<head>\n<meta charset="utf-8">\n'
    b"<meta property='zalo-platform-site-verification' content='Q1w_2-E' />\n</head>\n"
    b"<body>There Is No Limit To What You Can Accomplish Using Zalo!</body>\n</html>\n"
)


@pytest.mark.parametrize(
    "content",
    [
        VERIFIER,
        ZALO_PAGE.replace(b' lang="vi"', b""),
        b"\xef\xbb\xbf" + VERIFIER,
        b'<meta property="zalo-platform-site-verification" content="AbC">',
        b'<HTML><HEAD><META NAME="Zalo-Platform-Site-Verification" CONTENT="AbC"></HEAD><BODY><P>ok</P></BODY></HTML>',
    ],
)
def test_the_verification_pages_shape_is_taken(web, content):
    path = "/api/connections/default/verification?filename=zalo_verifierOk1.html"
    assert web.put(path, data=content, headers=AUTH).status_code == 201
    assert web.get("/zalo_verifierOk1.html").data == content


@pytest.mark.parametrize(
    "content",
    [
        VERIFIER.replace(b"</head>", b"<script>alert(1)</script></head>"),
        VERIFIER.replace(b"<head>", b"<head><SCRIPT SRC=//evil.example/x.js></SCRIPT>"),
        VERIFIER.replace(b"</head>", b"</head><body onload=alert(1)>"),
        VERIFIER.replace(b"</head>", b"</head><img src=x onerror=alert(1)>"),
        VERIFIER.replace(b"</head>", b"</head><svg onload=alert(1)>"),
        VERIFIER.replace(b"</head>", b"</head><iframe src=javascript:alert(1)>"),
        VERIFIER.replace(b"</head>", b'<meta http-equiv="refresh" content="0;url=javascript:alert(1)"></head>'),
        VERIFIER.replace(b'content="AbC_12-x"', b'content="AbC" onload="alert(1)"'),
        VERIFIER.replace(b"</head>", b"</head><!-- <script>alert(1)</script> -->"),
        VERIFIER.replace(b"</head>", b"<style>*{}</style></head>"),
        VERIFIER.replace(b"<head>", b"<head x=1>"),
        VERIFIER.replace(b"</head>", b"</head><form action=https://evil.example><input></form>"),
        VERIFIER.replace(b'content="AbC_12-x"', b'content="a b<c"'),
        VERIFIER.replace(b"zalo-platform-site-verification", b"google-site-verification"),
        VERIFIER.replace(b"/></head>", b"/></head><p>a < b</p>"),
        b"<html><body>no meta tag at all</body></html>",
        b"There Is No Limit To What You Can Accomplish Using Zalo!",
        b"\xff\xfe" + VERIFIER,
    ],
)
def test_anything_but_the_verification_pages_shape_is_refused(web, content):
    resp = web.put("/api/connections/default/verification?filename=zalo_verifierBad1.html", data=content, headers=AUTH)
    assert resp.status_code == 400 and "verification page" in resp.get_json()["fields"]["file"]
    assert web.get("/zalo_verifierBad1.html").status_code == 404
    assert get(web, "/api/connections/default/verification").get_json()["files"] == []


def test_a_refused_page_leaves_one_audit_line(web, caplog):
    caplog.set_level("WARNING", logger="bridge.audit")
    bad = VERIFIER.replace(b"</head>", b"<script>alert(1)</script></head>")
    web.put("/api/connections/default/verification?filename=zalo_verifierBad2.html", data=bad, headers=AUTH)
    (line,) = [r for r in caplog.records if r.name == "bridge.audit"]
    assert line.getMessage() == "verification.refused"
    assert (line.connection, line.file, line.reason) == ("default", "zalo_verifierBad2.html", "not_the_page")


def test_a_file_stored_before_the_shape_was_checked_is_not_served(web, redis):
    from app.bridge.keys import VERIFIER_OWNERS

    redis.hset(Keys("default").verifier_files, "Old1", b"<script>alert(1)</script>")
    redis.hset(VERIFIER_OWNERS, "Old1", "default")
    assert web.get("/zalo_verifierOld1.html").status_code == 404


def test_one_connection_cannot_replace_anothers_file(web, shop, caplog):
    caplog.set_level("WARNING", logger="bridge.audit")
    path = "/api/connections/{}/verification?filename=zalo_verifierMine1.html"
    assert web.put(path.format(shop), data=VERIFIER, headers=AUTH).status_code == 201
    other = VERIFIER.replace(b"AbC_12-x", b"Other9")
    resp = web.put(path.format("default"), data=other, headers=AUTH)
    assert resp.status_code == 409 and shop in resp.get_json()["fields"]["file"]
    assert web.get("/zalo_verifierMine1.html").data == VERIFIER
    assert get(web, "/api/connections/default/verification").get_json()["files"] == []
    (line,) = [r for r in caplog.records if r.name == "bridge.audit"]
    assert (line.getMessage(), line.connection, line.reason, line.owner) == (
        "verification.refused",
        "default",
        "taken",
        shop,
    )
    # Its owner may replace it, and once the owner removed it, the code is free for others.
    assert web.put(path.format(shop), data=other, headers=AUTH).status_code == 201
    assert web.get("/zalo_verifierMine1.html").data == other
    web.delete(f"/api/connections/{shop}/verification/zalo_verifierMine1.html", headers=AUTH)
    assert web.put(path.format("default"), data=VERIFIER, headers=AUTH).status_code == 201
    assert web.get("/zalo_verifierMine1.html").data == VERIFIER


def test_a_removed_file_is_no_longer_served(web, shop):
    web.put(f"/api/connections/{shop}/verification?filename=zalo_verifierGone1.html", data=VERIFIER, headers=AUTH)
    assert web.delete(f"/api/connections/{shop}/verification/zalo_verifierGone1.html", headers=AUTH).status_code == 200
    assert web.get("/zalo_verifierGone1.html").status_code == 404
    assert web.delete(f"/api/connections/{shop}/verification/zalo_verifierGone1.html", headers=AUTH).status_code == 404


def test_removing_a_connection_removes_its_files(web, shop):
    web.put(f"/api/connections/{shop}/verification?filename=zalo_verifierShop1.html", data=VERIFIER, headers=AUTH)
    web.delete(f"/api/connections/{shop}", headers=AUTH)
    assert web.get("/zalo_verifierShop1.html").status_code == 404


def test_an_upload_to_an_unknown_connection_is_404(web):
    path = "/api/connections/nobody/verification?filename=zalo_verifierX1.html"
    assert web.put(path, data=VERIFIER, headers=AUTH).status_code == 404


# -- the FreshChat topic picker -------------------------------------------------------------------


def test_topics_are_loaded_with_the_key_the_form_gives(web):
    with requests_mock.Mocker() as m:
        m.get(f"{FC_HCM}/channels", json=CHANNELS)
        resp = web.post("/api/freshchat/topics", json={"api_url": FC_HCM + "/", "api_key": "typed-key"}, headers=AUTH)
    assert resp.status_code == 200
    assert resp.get_json() == {"topics": [{"id": "6c03caf2-a37f-45a2-a9a3-6e03aa7b85f5", "name": "Zalo"}]}
    [call] = m.request_history
    assert call.headers["Authorization"] == "Bearer typed-key"
    assert call.qs == {"page": ["1"], "items_per_page": ["100"]}


def test_a_connections_stored_key_is_used_when_the_form_keeps_it(web):
    with requests_mock.Mocker() as m:
        m.get(f"{FC_API}/channels", json=CHANNELS)
        resp = web.post("/api/freshchat/topics", json={"connection": "default"}, headers=AUTH)
    assert resp.status_code == 200 and resp.get_json()["topics"][0]["name"] == "Zalo"
    assert m.request_history[0].headers["Authorization"] == "Bearer fc-api-key-example"


@pytest.mark.parametrize(
    "answer, words",
    [
        ({"status_code": 401, "json": {"message": "bad"}}, "API key refused (401)"),
        ({"status_code": 404, "text": "nope"}, "the API URL answers 404"),
        ({"exc": requests.ConnectTimeout}, "FreshChat API URL unreachable (ConnectTimeout)"),
        ({"status_code": 200, "text": "<html>"}, "does not answer JSON"),
        ({"status_code": 200, "json": {"channels": "odd", "pagination": {"total_pages": "x"}}}, None),
    ],
)
def test_a_refusal_is_said_in_words_never_a_500(web, answer, words):
    with requests_mock.Mocker() as m:
        m.get(f"{FC_HCM}/channels", **answer)
        resp = web.post("/api/freshchat/topics", json={"api_url": FC_HCM, "api_key": "k"}, headers=AUTH)
    if words is None:
        assert resp.status_code == 200 and resp.get_json() == {"topics": []}
    else:
        assert resp.status_code == 502 and words in resp.get_json()["error"]


@pytest.mark.parametrize(
    "sent",
    [
        None,
        [],
        {"api_url": FC_HCM},
        {"api_url": "ftp://x", "api_key": "k"},
        {"api_url": 5, "api_key": "k"},
        {"api_url": FC_HCM, "api_key": "k", "extra": 1},
        {"connection": 7},
    ],
)
def test_a_bad_topics_body_is_400(web, sent):
    with requests_mock.Mocker() as m:
        resp = web.post("/api/freshchat/topics", json=sent, headers=AUTH)
    assert resp.status_code == 400 and m.request_history == []


def test_topics_of_an_unknown_connection_are_404(web):
    assert web.post("/api/freshchat/topics", json={"connection": "nobody"}, headers=AUTH).status_code == 404


# -- the FreshChat group picker (option freshchat_group_id) ---------------------------------------

GROUPS = load_fixture("freshchat", "answers", "groups.json")


def test_groups_are_loaded_with_the_key_the_form_gives(web):
    with requests_mock.Mocker() as m:
        m.get(f"{FC_HCM}/groups", json=GROUPS)
        resp = web.post("/api/freshchat/groups", json={"api_url": FC_HCM + "/", "api_key": "typed-key"}, headers=AUTH)
    assert resp.status_code == 200
    assert resp.get_json() == {
        "groups": [
            {"id": "c2937604-0a08-43c2-a09c-e77f5f565a0e", "name": "Shop HCM team"},
            {"id": "7d1f0c55-2b6e-4f0e-9a51-2f4c6b1e8a90", "name": "Shop HN team"},
        ]
    }
    [call] = m.request_history
    assert (call.method, call.url.split("?")[0]) == ("GET", f"{FC_HCM}/groups")
    assert call.headers["Authorization"] == "Bearer typed-key"
    assert call.qs == {"page": ["1"], "items_per_page": ["100"]}


def test_groups_use_a_connections_stored_key_only_with_its_stored_url(web):
    with requests_mock.Mocker() as m:
        m.get(f"{FC_API}/groups", json=GROUPS)
        resp = web.post("/api/freshchat/groups", json={"connection": "default"}, headers=AUTH)
        foreign = web.post(
            "/api/freshchat/groups",
            json={"connection": "default", "api_url": "https://collector.example.net/v2"},
            headers=AUTH,
        )
    assert resp.status_code == 200 and resp.get_json()["groups"][0]["name"] == "Shop HCM team"
    assert [r.headers["Authorization"] for r in m.request_history] == ["Bearer fc-api-key-example"]
    assert foreign.status_code == 400 and "api_key" in foreign.get_json()["fields"]


@pytest.mark.parametrize(
    "answer, words",
    [
        ({"status_code": 403, "json": {"message": "no"}}, "API key not allowed to list groups (403)"),
        ({"status_code": 200, "json": {"groups": "odd"}}, None),
    ],
)
def test_a_groups_refusal_is_said_in_words(web, answer, words):
    with requests_mock.Mocker() as m:
        m.get(f"{FC_HCM}/groups", **answer)
        resp = web.post("/api/freshchat/groups", json={"api_url": FC_HCM, "api_key": "k"}, headers=AUTH)
    if words is None:
        assert resp.status_code == 200 and resp.get_json() == {"groups": []}
    else:
        assert resp.status_code == 502 and words in resp.get_json()["error"]


# -- the Zalo events to switch on -----------------------------------------------------------------


def test_the_events_list_says_what_each_is_for_in_either_language(web):
    vi = get(web, "/api/zalo/events?language=vi").get_json()
    en = get(web, "/api/zalo/events").get_json()
    assert [e["name"] for e in vi["events"]] == [e["name"] for e in en["events"]] == [n for n, _ in EVENTS]
    text = next(e for e in en["events"] if e["name"] == "user_send_text")
    assert text == {"name": "user_send_text", "required": True, "purpose": "The user's text and emoji messages."}
    assert "Webhook Retry" in vi["webhook_retry"] and "2 giây" in vi["webhook_retry"]
    assert get(web, "/api/zalo/events?language=fr").status_code == 400


def test_every_listed_event_is_one_the_bridge_knows():
    assert all(kind_of(name) or name in {*RECORDED_EVENTS, RECEIVED, SEEN, REACTED} for name, _ in EVENTS)
    assert {name for name, required in EVENTS if required} == {n for n, _ in EVENTS if n.startswith("user_send_")}


# -- no secret in any answer ----------------------------------------------------------------------


def test_no_answer_holds_a_secret(web, redis, shop):
    redis.lpush(Keys(shop).errors, '{"error": "x"}')
    web.put(f"/api/connections/{shop}/verification?filename=zalo_verifierS1.html", data=VERIFIER, headers=AUTH)
    with requests_mock.Mocker() as m:
        m.get(f"{FC_HCM}/channels", status_code=401, json={"message": BODY["freshchat"]["api_key"]})
        m.get(f"{FC_API}/channels", json=CHANNELS)
        answers = [
            web.post("/api/freshchat/topics", json={"connection": shop}, headers=AUTH),
            web.post("/api/freshchat/topics", json={"connection": "default"}, headers=AUTH),
        ]
    answers += [
        get(web, path)
        for path in (
            f"/api/connections/{shop}",
            "/api/connections/default",
            "/api/status",
            f"/api/connections/{shop}/events",
            f"/api/connections/{shop}/verification",
            "/api/zalo/events",
            "/readyz",
        )
    ]
    assert [a.status_code for a in answers] == [502, 200, 200, 200, 200, 200, 200, 200, 503]  # 503: no worker
    for answer in answers:
        assert not [s for s in SECRETS + ENV_SECRETS if s in answer.get_data(as_text=True)]


def test_a_sandbox_connection_gets_no_production_advice_about_webhooks(settings):
    from app.operations import problems

    status = {"zalo_token": {"present": True}, "last_webhook": {}, "dead_letters": 0, "catch_up": None}
    live = {p["code"] for p in problems.find(status, True, 0.0, settings=replace(settings, sandbox=False))}
    assert {"no_zalo_webhook", "no_freshchat_webhook"} <= live
    sandbox = {p["code"] for p in problems.find(status, True, 0.0, settings=replace(settings, sandbox=True))}
    assert not sandbox & {"no_zalo_webhook", "no_freshchat_webhook"}
