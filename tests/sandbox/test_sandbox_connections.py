"""The sandbox's second connection: stored at start, and the page's calls routed by OA."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace

import pytest

from app import create_app
from app.bridge.secrets_at_rest import is_sealed, sealer_for
from app.connections.store import STORE, ConnectionStore
from config.sandbox import DEFAULTS, published_secret, sandbox_keypair
from sandbox import connections
from sandbox.connections import (
    MERGING,
    SECOND_ID,
    SECOND_OA,
    SPARE_KEY_FILE,
    SPARE_OA,
    keypair,
    spare_values,
    store_second,
)
from sandbox.helpers import make_settings

PARTNERS = "http://127.0.0.1:9100"
DEFAULT_OA = "2000000000000000002"
MERGING_OAS = ["2000000000000000005", "2000000000000000006"]


@pytest.fixture
def sandbox_settings(redis, redis_server, tmp_path):
    return make_settings(
        redis_server.url,
        media_dir=str(tmp_path / "media"),
        sandbox=True,
        zalo_oa_id=DEFAULT_OA,
        zalo_api_base_url=PARTNERS + "/zalo",
        zalo_oauth_base_url=PARTNERS + "/zalo",
        freshchat_api_url=PARTNERS + "/freshchat/v2",
    )


def test_store_second_puts_the_connection_sealed_once(redis, sandbox_settings, tmp_path):
    assert store_second(redis, sandbox_settings)
    conn = ConnectionStore(redis, sandbox_settings, sealer_for(sandbox_settings)).get(SECOND_ID)
    assert (conn.zalo_app_id, conn.zalo_oa_id) == (SECOND_OA["app_id"], SECOND_OA["oa_id"])
    assert conn.settings.zalo_oa_secret_key == SECOND_OA["oa_secret_key"]
    assert conn.settings.freshchat_api_url == PARTNERS + "/freshchat2/v2"
    assert conn.settings.freshchat_channel_id == "sandbox-zalo-topic-2"
    assert conn.settings.freshchat_webhook_public_key == keypair(tmp_path)[1]
    raw = json.loads(redis.hget(STORE, SECOND_ID))
    assert is_sealed(raw["zalo"]["access_token"]) and is_sealed(raw["freshchat"]["api_key"])
    created = conn.created_at
    assert store_second(redis, sandbox_settings)  # a second web worker starting: left as it is
    assert ConnectionStore(redis, sandbox_settings, sealer_for(sandbox_settings)).get(SECOND_ID).created_at == created


def test_store_second_puts_two_merging_connections_of_the_app_on_the_first_account(redis, sandbox_settings, tmp_path):
    """One person writing to both OAs is one FreshChat user: both connections have the option,
    are OAs of the default's app, and are on the default's FreshChat account, a topic each."""
    assert store_second(redis, sandbox_settings)
    store = ConnectionStore(redis, sandbox_settings, sealer_for(sandbox_settings))
    found = [store.get(m["id"]) for m in MERGING]
    assert [c.name for c in found] == ["Sandbox Shop HN", "Sandbox Shop HCM"]
    assert [(c.zalo_app_id, c.zalo_oa_id) for c in found] == [(DEFAULTS["zalo_app_id"], oa) for oa in MERGING_OAS]
    assert [c.settings.freshchat_channel_id for c in found] == ["sandbox-zalo-topic-hn", "sandbox-zalo-topic-hcm"]
    for conn in found:
        assert conn.enabled and conn.settings.merge_users_by_app and not conn.settings.satisfaction_survey
        assert conn.settings.freshchat_api_url == sandbox_settings.freshchat_api_url == PARTNERS + "/freshchat/v2"
        assert conn.settings.freshchat_api_key == DEFAULTS["freshchat_api_key"]
        assert conn.settings.freshchat_webhook_public_key == sandbox_keypair(tmp_path)[1]
        assert conn.settings.zalo_access_token.startswith("sandbox-")
    assert len({c.settings.zalo_oa_secret_key for c in found}) == 2


def test_the_merging_connections_secrets_are_refused_outside_sandbox_mode():
    secrets = [m["oa"][f] for m in MERGING for f in ("oa_secret_key", "access_token", "refresh_token")]
    assert [published_secret(s, "https://openapi.zalo.me") for s in secrets] == [True] * 6
    assert [published_secret(s, PARTNERS + "/zalo") for s in secrets] == [False] * 6


def test_keypair_is_made_once_and_an_existing_key_wins(tmp_path, monkeypatch):
    first = keypair(tmp_path)
    assert keypair(tmp_path) == first
    calls = []
    monkeypatch.setattr(connections.rsa, "generate_private_key", lambda **kw: calls.append(kw))
    assert keypair(tmp_path) == first and calls == []  # an existing file is never regenerated


@pytest.fixture
def page(sandbox_settings):
    return create_app(sandbox_settings).test_client()


def test_the_app_stores_the_second_connection_at_start(redis, page):
    assert redis.hexists(STORE, SECOND_ID)


def test_state_of_the_second_oa_reads_its_phone_and_its_own_freshchat_account(page, requests_mock):
    phone = {
        "users": [{"user_id": "4937104852669371342", "display_name": "Minh Khánh"}],
        "user_messages": [],
        "oa_messages": [],
        "console_messages": [],
        "uploads": {},
        "refresh_count": 0,
    }
    hook = f"http://127.0.0.1:{page.application.config['SETTINGS'].port}/webhooks/freshchat/{SECOND_ID}"
    inbox = {"users": [], "agents": [], "conversations": [], "webhook_url": hook}
    requests_mock.get(f"{PARTNERS}/zalo/_sim/phone?oa_id={SECOND_OA['oa_id']}", json=phone)
    requests_mock.get(f"{PARTNERS}/freshchat2/_sim/state", json=inbox)
    state = page.get(f"/sandbox/api/state?oa={SECOND_OA['oa_id']}").get_json()
    assert state["partners"] == "ok" and state["oa"] == SECOND_OA["oa_id"]
    assert [o["id"] for o in state["oas"]] == [DEFAULT_OA, SECOND_OA["oa_id"], *MERGING_OAS]
    assert [r.url for r in requests_mock.request_history] == [
        f"{PARTNERS}/zalo/_sim/phone?oa_id={SECOND_OA['oa_id']}",
        f"{PARTNERS}/freshchat2/_sim/state",
    ]


def test_a_merging_oas_phone_has_the_person_and_its_inbox_is_the_first_accounts_by_topic(page, requests_mock):
    """The person who follows both merging OAs is put on the phone of each (one `person`, so
    one user id by app); the inbox is the first account's, each conversation named by its
    topic's OA, and the state says which topic is this OA's."""
    hn = MERGING[0]
    phone = {"users": [], "user_messages": [], "oa_messages": [], "console_messages": [], "uploads": {}}
    hook = f"http://127.0.0.1:{page.application.config['SETTINGS'].port}/webhooks/freshchat"
    conversation = {"conversation_id": "c1", "user_id": "u1", "status": "new", "updated_time": "t", "messages": []}
    inbox = {
        "users": [{"id": "u1", "first_name": "Lan Zalo", "reference_id": "zalo:app:1000000000000000001:777"}],
        "agents": [],
        "conversations": [{**conversation, "channel_id": "sandbox-zalo-topic-hcm"}],
        "webhook_url": hook,
    }
    requests_mock.get(f"{PARTNERS}/zalo/_sim/phone?oa_id={hn['oa']['oa_id']}", json=phone)
    requests_mock.get(f"{PARTNERS}/freshchat/_sim/state", json=inbox)
    added = requests_mock.post(f"{PARTNERS}/zalo/_sim/actions/add_user", json={"ok": True})
    state = page.get(f"/sandbox/api/state?oa={hn['oa']['oa_id']}").get_json()
    assert added.last_request.json() == {
        "user_id": "5100000000000000051",
        "display_name": "Lan Zalo",
        "person": "lan",
        "oa_id": hn["oa"]["oa_id"],
    }
    assert state["topic"] == "sandbox-zalo-topic-hn"
    (shown,) = state["inbox"]["conversations"]
    assert (shown["zalo_user_id"], shown["topic"], shown["topic_oa"]) == (
        "777",
        "sandbox-zalo-topic-hcm",
        "Sandbox Shop HCM",
    )
    assert state["status"]["merge_users_by_app"] is True and state["status"]["satisfaction_survey"] is False


def test_with_redis_away_the_state_says_so_once_the_connections_cache_is_stale(page, redis_server, requests_mock):
    """The page shows "Redis unreachable" from the state's status: a state that failed reading
    the connections (every request 2 s after the last read) would never tell it."""
    phone = {"users": [{"user_id": "4937104852669371342", "display_name": "Minh Khánh"}], "user_messages": []}
    phone |= {"oa_messages": [], "console_messages": [], "uploads": {}, "refresh_count": 0}
    hook = f"http://127.0.0.1:{page.application.config['SETTINGS'].port}/webhooks/freshchat"
    requests_mock.get(f"{PARTNERS}/zalo/_sim/phone?oa_id={DEFAULT_OA}", json=phone)
    inbox = {"users": [], "agents": [], "conversations": [], "webhook_url": hook}
    requests_mock.get(f"{PARTNERS}/freshchat/_sim/state", json=inbox)
    redis_server.stop()
    page.application.extensions["connections"].forget_cache()  # as 2 s after the last read
    answer = page.get("/sandbox/api/state")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    state = answer.get_json()
    assert state["status"]["redis"].startswith("unreachable") and [o["id"] for o in state["oas"]] == [
        DEFAULT_OA,
        SECOND_OA["oa_id"],
        *MERGING_OAS,
    ]


def test_actions_name_the_oa_and_go_to_its_freshchat_account(page, requests_mock):
    port = page.application.config["SETTINGS"].port
    zalo = requests_mock.post(f"{PARTNERS}/zalo/_sim/actions/phone_send", json={"statuses": [200]})
    agent = requests_mock.post(f"{PARTNERS}/freshchat2/_sim/actions/agent_message", json={"statuses": [200]})
    second = SECOND_OA["oa_id"]
    sent = page.post("/sandbox/api/zalo/send", json={"oa": second, "user_id": "49", "kind": "text", "text": "alo"})
    assert sent.get_json()["ok"]
    assert zalo.last_request.json() == {
        "user_id": "49",
        "kind": "text",
        "text": "alo",
        "bridge_url": f"http://127.0.0.1:{port}/webhooks/zalo",
        "oa_id": second,
    }
    page.post("/sandbox/api/agent/reply", json={"oa": second, "conversation_id": "c1", "text": "dạ"})
    assert agent.last_request.json() == {
        "conversation_id": "c1",
        "parts": "dạ",
        "bridge_url": f"http://127.0.0.1:{port}/webhooks/freshchat/{SECOND_ID}",
    }


def test_actions_of_the_first_oa_are_as_before(page, requests_mock):
    zalo = requests_mock.post(f"{PARTNERS}/zalo/_sim/actions/expire_access_token", json={"ok": True})
    fc = requests_mock.post(f"{PARTNERS}/freshchat/_sim/actions/resolve", json={"statuses": [200]})
    assert page.post("/sandbox/api/zalo/expire-token", json={}).status_code == 200
    assert zalo.last_request.json() == {}
    page.post("/sandbox/api/agent/resolve", json={"conversation_id": "c1"})
    assert fc.last_request.json()["conversation_id"] == "c1"
    assert fc.last_request.json()["bridge_url"].endswith("/webhooks/freshchat")


def test_the_spare_oa_joins_the_page_once_a_connection_holds_it(page, redis, sandbox_settings, requests_mock, tmp_path):
    phone = {"users": [], "user_messages": [], "oa_messages": [], "console_messages": [], "uploads": {}}
    requests_mock.get(f"{PARTNERS}/zalo/_sim/phone", json=phone)
    requests_mock.get(f"{PARTNERS}/freshchat/_sim/state", json={"users": [], "agents": [], "conversations": []})
    requests_mock.post(f"{PARTNERS}/freshchat/_sim/actions/settings", json={})
    requests_mock.post(f"{PARTNERS}/zalo/_sim/actions/add_user", json={})
    assert page.get(f"/sandbox/api/state?oa={SPARE_OA['oa_id']}").status_code == 400
    shown = spare_values(PARTNERS, tmp_path)
    record = {
        "id": "shop-3",
        "name": "Shop 3",
        "enabled": True,
        "zalo": {**SPARE_OA, "access_token": "a", "refresh_token": "r"},
        "freshchat": {f: shown[f"freshchat.{f}"] for f in ("api_url", "api_key", "channel_id", "webhook_public_key")},
        "options": {},
    }
    ConnectionStore(redis, sandbox_settings, sealer_for(sandbox_settings)).put(record)
    page.application.extensions["connections"].forget_cache()
    state = page.get("/sandbox/api/state").get_json()
    assert [o["id"] for o in state["oas"]] == [DEFAULT_OA, SECOND_OA["oa_id"], *MERGING_OAS, SPARE_OA["oa_id"]]
    agent = requests_mock.post(f"{PARTNERS}/freshchat3/_sim/actions/agent_message", json={"statuses": [200]})
    page.post("/sandbox/api/agent/reply", json={"oa": SPARE_OA["oa_id"], "conversation_id": "c1", "text": "dạ"})
    port = sandbox_settings.port
    assert agent.last_request.json()["bridge_url"] == f"http://127.0.0.1:{port}/webhooks/freshchat/shop-3"


def test_an_unknown_oa_is_refused(page):
    assert page.get("/sandbox/api/state?oa=999").status_code == 400
    assert page.post("/sandbox/api/zalo/send", json={"oa": "999", "user_id": "1"}).status_code == 400


def test_the_phone_going_anonymous_asks_zalo_for_a_visitors_event(page, requests_mock):
    port = page.application.config["SETTINGS"].port
    zalo = requests_mock.post(f"{PARTNERS}/zalo/_sim/actions/phone_send", json={"statuses": [200]})
    body = {"user_id": "49", "kind": "text", "text": "alo", "anonymous": True}
    assert page.post("/sandbox/api/zalo/send", json=body).get_json()["ok"]
    assert zalo.last_request.json() == {**body, "bridge_url": f"http://127.0.0.1:{port}/webhooks/zalo"}


def test_a_message_written_hours_ago_moves_zalos_clock_back_for_it_alone(page, requests_mock):
    clock = requests_mock.post(f"{PARTNERS}/zalo/_sim/actions/advance_clock", json={"offset_seconds": 0})
    send = requests_mock.post(f"{PARTNERS}/zalo/_sim/actions/phone_send", json={"statuses": [200]})
    sent = page.post("/sandbox/api/zalo/send", json={"user_id": "49", "kind": "text", "text": "alo", "hours_ago": 47})
    assert sent.get_json()["ok"]
    calls = [(r.path, r.json()) for r in requests_mock.request_history]
    assert calls[0] == ("/zalo/_sim/actions/advance_clock", {"seconds": -47 * 3600})
    assert calls[1][0] == "/zalo/_sim/actions/phone_send" and "hours_ago" not in calls[1][1]
    assert calls[2] == ("/zalo/_sim/actions/advance_clock", {"seconds": 47 * 3600})
    assert clock.call_count == 2 and send.call_count == 1
    assert page.post("/sandbox/api/zalo/send", json={"user_id": "49", "hours_ago": 900}).status_code == 400


# -- the console's new-connection form shows the spare OA's values to paste ------------------------


@pytest.fixture
def console(sandbox_settings):
    from tests.web.console.test_console import ADMIN, sign_in

    web = create_app(replace(sandbox_settings, admin_token=ADMIN)).test_client()
    assert sign_in(web).status_code == 302
    return web


def spare_shown(page: str) -> dict:
    """The copy fields of the form's sandbox card, by the form field they go into."""
    shown = dict(re.findall(r'<input id="sandbox-([\w-]+)" type="text" value="([^"]*)" readonly>', page))
    key = re.search(r'<textarea id="sandbox-freshchat-webhook_public_key" rows="4" readonly>([^<]*)</textarea>', page)
    return {**shown, "freshchat-webhook_public_key": html.unescape(key.group(1))} if key else shown


def test_the_new_connection_form_shows_the_spare_oa_and_account_in_sandbox_mode(console, tmp_path):
    page = console.get("/admin/connections/new").get_data(as_text=True)
    public = keypair(tmp_path, SPARE_KEY_FILE)[1]
    assert spare_shown(page) == {
        "zalo-app_id": "1000000000000000001",
        "zalo-app_secret": "sandbox-app-secret",
        "zalo-oa_secret_key": "sandbox-oa3-secret-key",
        "zalo-oa_id": "2000000000000000004",
        "freshchat-api_url": PARTNERS + "/freshchat3/v2",
        "freshchat-api_key": "sandbox-freshchat3-api-key",
        "freshchat-channel_id": "sandbox-zalo-topic-3",
        "freshchat-webhook_public_key": public.replace("PUBLIC KEY-----", "RSA PUBLIC KEY-----"),
    }
    assert "allow Sandbox OA 3 on the simulated Zalo page" in page
    vi = console.get("/admin/connections/new", headers={"Accept-Language": "vi"}).get_data(as_text=True)
    assert "Sandbox: một OA mô phỏng để kết nối" in vi and "chọn cho phép Sandbox OA 3 trên trang Zalo mô phỏng" in vi


def test_an_existing_connections_page_shows_no_spare(console):
    page = console.get(f"/admin/connections/{SECOND_ID}").get_data(as_text=True)
    assert 'id="connection-title"' in page and 'id="sandbox-spare"' not in page


def test_outside_sandbox_mode_the_form_shows_no_spare(settings):
    from tests.web.console.test_console import ADMIN, sign_in

    web = create_app(replace(settings, admin_token=ADMIN)).test_client()
    assert sign_in(web).status_code == 302
    page = web.get("/admin/connections/new").get_data(as_text=True)
    assert 'id="f-zalo-app_id"' in page and 'id="sandbox-spare"' not in page and "sandbox-oa3" not in page
