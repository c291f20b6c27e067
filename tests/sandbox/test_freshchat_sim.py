"""The FreshChat simulator over real HTTP: users, conversations, messages, uploads, faults and
signed webhooks; plus the combined server's URL layout."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
import requests

from app.integrations.freshchat.signature import verify_signature
from sandbox.freshchat_sim import FreshchatSimulator, message_event
from sandbox.server import build_partners
from tests.sandbox import PDF, fc, partners, png_bytes, receiver, receiver_server, zalo  # noqa: F401

KEY = "sandbox-freshchat-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def api(partners, method, path, **kw):
    kw.setdefault("headers", AUTH)
    return requests.request(method, partners.fc_url + path, **kw)


def create_user(partners, reference_id="zalo:oa:246845883529197922", **fields):
    body = {"reference_id": reference_id, "first_name": "Minh Khánh Zalo", **fields}
    return api(partners, "POST", "/users", json=body).json()


def user_message(user_id, text="Xin chào", **extra):
    return {
        "message_parts": [{"text": {"content": text}}],
        "message_type": "normal",
        "actor_type": "user",
        "actor_id": user_id,
        "user_id": user_id,
        **extra,
    }


def open_conversation(partners, fc, text="Xin chào"):
    user = create_user(partners)
    body = {"channel_id": fc.channel_id, "users": [{"id": user["id"]}], "messages": [user_message(user["id"], text)]}
    return user, api(partners, "POST", "/conversations", json=body).json()


def post(partners, conversation_id, message):
    return api(partners, "POST", f"/conversations/{conversation_id}/messages", json=message)


def wait_for(receiver, count, seconds=10.0):
    deadline = time.monotonic() + seconds
    while len(receiver.requests) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return [json.loads(r.raw) for r in receiver.requests]


# -- auth and users (docs/interface.md, F1-F3) -----------------------------------------------


def test_bad_or_missing_bearer_token_is_401_json(partners, fc):
    for headers in ({"Authorization": "Bearer wrong"}, {}):
        resp = api(partners, "GET", "/users?reference_id=x", headers=headers)
        assert resp.status_code == 401 and resp.json()["code"] == 401
        assert resp.json()["status"] == "UNAUTHORIZED" and resp.json()["message"]


def test_create_user_answers_201_with_a_uuid(partners, fc):
    resp = api(
        partners,
        "POST",
        "/users",
        json={
            "reference_id": "zalo:1",
            "first_name": "A Zalo",
            "avatar": {"url": "https://a/x.jpg"},
            "properties": [{"name": "zalo_user_id", "value": "1"}],
        },
    )
    assert resp.status_code == 201
    user = resp.json()
    assert UUID.fullmatch(user["id"]) and user["reference_id"] == "zalo:1" and user["created_time"].endswith("Z")
    assert api(partners, "GET", f"/users/{user['id']}").json() == user


def test_reference_id_lookup_returns_a_list_and_is_not_unique(partners, fc):
    first, second = create_user(partners, "zalo:7"), create_user(partners, "zalo:7")
    create_user(partners, "zalo:8")
    found = api(partners, "GET", "/users", params={"reference_id": "zalo:7"}).json()
    assert [u["id"] for u in found["users"]] == [first["id"], second["id"]]
    assert api(partners, "GET", "/users", params={"reference_id": "none"}).json()["users"] == []
    assert api(partners, "GET", "/users").status_code == 400  # no filter: FreshChat errors


def test_unknown_user_is_404_and_bad_properties_are_400(partners, fc):
    missing = api(partners, "GET", "/users/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["status"] == "USER_NOT_FOUND"
    bad = api(partners, "POST", "/users", json={"reference_id": "x", "properties": {"a": 1}})
    assert bad.status_code == 400 and bad.json()["status"] == "INVALID_VALUE"


def test_put_user_merges_properties_and_answers_an_empty_body(partners, fc):
    user = create_user(partners, properties=[{"name": "a", "value": "1"}, {"name": "b", "value": "2"}])
    resp = api(
        partners,
        "PUT",
        f"/users/{user['id']}",
        json={"first_name": "Lan Zalo", "properties": [{"name": "b", "value": "3"}]},
    )
    assert resp.status_code == 200 and resp.content == b""
    stored = api(partners, "GET", f"/users/{user['id']}").json()
    assert stored["first_name"] == "Lan Zalo" and stored["id"] == user["id"]
    assert {p["name"]: p["value"] for p in stored["properties"]} == {"a": "1", "b": "3"}


# -- conversations (docs/interface.md, F4) ----------------------------------------------------


def test_create_conversation_stores_its_first_message(partners, fc):
    user, conv = open_conversation(partners, fc, "Tôi cần hỗ trợ")
    assert UUID.fullmatch(conv["conversation_id"]) and conv["channel_id"] == fc.channel_id
    assert conv["status"] == "new" and conv["users"] == [{"id": user["id"]}]
    assert UUID.fullmatch(conv["messages"][0]["id"]) and conv["messages"][0]["created_time"]
    stored = fc.conversation(conv["conversation_id"])["messages"]
    assert [m["message_parts"][0]["text"]["content"] for m in stored] == ["Tôi cần hỗ trợ"]


def test_create_conversation_needs_a_known_channel_and_users(partners, fc):
    user = create_user(partners)
    wrong_channel = api(partners, "POST", "/conversations", json={"channel_id": "nope", "users": [{"id": user["id"]}]})
    assert wrong_channel.status_code == 400 and wrong_channel.json()["status"] == "INVALID_VALUE"
    unknown_user = api(partners, "POST", "/conversations", json={"channel_id": fc.channel_id, "users": [{"id": "x"}]})
    assert unknown_user.status_code == 400
    assert fc.state()["conversations"] == []


def test_get_and_put_conversation(partners, fc):
    _, conv = open_conversation(partners, fc)
    path = f"/conversations/{conv['conversation_id']}"
    assert api(partners, "GET", path).json()["status"] == "new"
    assert api(partners, "PUT", path, json={"status": "resolved"}).json()["status"] == "resolved"
    assert api(partners, "PUT", path, json={"status": "assigned"}).status_code == 400
    refused = api(partners, "PUT", path, json={"properties": [{"priority": "High"}]})
    assert refused.status_code == 400 and refused.json()["message"] == "Conversation payload not valid"
    assert api(partners, "GET", "/conversations/nope").status_code == 404


# -- messages (docs/interface.md, F5, F6) -----------------------------------------------------


def test_post_message_returns_it_and_lists_newest_first(partners, fc):
    user, conv = open_conversation(partners, fc, "một")
    cid = conv["conversation_id"]
    created = post(partners, cid, user_message(user["id"], "hai")).json()
    assert UUID.fullmatch(created["id"]) and created["created_time"] and created["actor_type"] == "user"
    note = {"message_parts": [{"text": {"content": "ghi chú"}}], "message_type": "private", "actor_type": "system"}
    assert post(partners, cid, note).json()["message_type"] == "private"
    listed = api(partners, "GET", f"/conversations/{cid}/messages").json()["messages"]
    assert [m["message_parts"][0]["text"]["content"] for m in listed] == ["ghi chú", "hai", "một"]


def test_messages_are_paged_with_a_next_link(partners, fc):
    user, conv = open_conversation(partners, fc, "0")
    cid = conv["conversation_id"]
    for n in range(1, 5):
        post(partners, cid, user_message(user["id"], str(n)))
    page = api(partners, "GET", f"/conversations/{cid}/messages", params={"items_per_page": 2}).json()
    assert [m["message_parts"][0]["text"]["content"] for m in page["messages"]] == ["4", "3"]
    following = requests.get(partners.base + "/freshchat" + page["link"]["href"], headers=AUTH).json()
    assert [m["message_parts"][0]["text"]["content"] for m in following["messages"]] == ["2", "1"]


def test_messages_since_a_time_keep_from_time_in_the_next_link(partners, fc):
    user, conv = open_conversation(partners, fc, "old")
    cid = conv["conversation_id"]
    time.sleep(0.01)
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    for n in range(1, 4):
        post(partners, cid, user_message(user["id"], str(n)))
    params = {"items_per_page": 2, "from_time": since}
    page = api(partners, "GET", f"/conversations/{cid}/messages", params=params).json()
    assert [m["message_parts"][0]["text"]["content"] for m in page["messages"]] == ["3", "2"]
    assert f"from_time={quote(since)}" in page["link"]["href"] and page["link"]["rel"] == "next"
    following = requests.get(partners.base + "/freshchat" + page["link"]["href"], headers=AUTH).json()
    assert [m["message_parts"][0]["text"]["content"] for m in following["messages"]] == ["1"]  # not "old"
    assert "link" not in following


def test_invalid_messages_are_refused(partners, fc):
    user, conv = open_conversation(partners, fc)
    cid = conv["conversation_id"]
    assert post(partners, cid, user_message(user["id"], actor_type="robot")).status_code == 400
    assert post(partners, cid, user_message("someone-else")).status_code == 400  # not a member
    no_url = post(partners, cid, {"message_parts": [{"image": {}}], "actor_type": "user", "actor_id": user["id"]})
    assert no_url.status_code == 400 and no_url.json()["message"] == "IMAGE_EMPTY_CONTENT"
    missing = post(partners, "00000000-0000-4000-8000-000000000000", user_message(user["id"]))
    assert missing.status_code == 404 and missing.json()["status"] == "CONVERSATION_NOT_FOUND"
    assert len(fc.conversation(cid)["messages"]) == 1


def test_classic_mode_reopens_a_resolved_conversation_on_a_user_message(partners, fc):
    user, conv = open_conversation(partners, fc)
    cid = conv["conversation_id"]
    api(partners, "PUT", f"/conversations/{cid}", json={"status": "resolved"})
    assert post(partners, cid, user_message(user["id"], "lại đây")).status_code == 200
    assert fc.conversation(cid)["status"] == "reopened"


def test_new_conversation_mode_refuses_a_resolved_or_superseded_conversation(partners, fc):
    fc.reopen_mode = "new_conversation"
    user, conv = open_conversation(partners, fc)
    cid = conv["conversation_id"]
    api(partners, "PUT", f"/conversations/{cid}", json={"status": "resolved"})
    refused = post(partners, cid, user_message(user["id"]))
    assert refused.status_code == 400 and refused.json()["status"] == "INVALID_VALUE"
    assert "not the latest conversation" in refused.json()["message"]
    api(partners, "PUT", f"/conversations/{cid}", json={"status": "reopened"})
    body = {"channel_id": fc.channel_id, "users": [{"id": user["id"]}]}
    api(partners, "POST", "/conversations", json=body)
    assert post(partners, cid, user_message(user["id"])).status_code == 400  # a newer one exists


IMAGE_REFUSED = {"code": 400, "status": "INVALID_VALUE", "message": "IMAGE_EMPTY_CONTENT"}


def test_refused_images_answer_image_empty_content_for_that_user_only(partners, fc):
    user, conv = open_conversation(partners, fc)
    other, other_conv = open_conversation(partners, fc)
    cid = conv["conversation_id"]
    fc.refuse_images(user["id"])
    image = [{"image": {"url": "https://a/b.png"}}, {"text": {"content": "ảnh"}}]
    refused = post(partners, cid, user_message(user["id"], message_parts=image))
    assert refused.status_code == 400 and refused.json() == IMAGE_REFUSED
    link = [{"file": {"name": "b.png", "url": "https://a/b.png"}}, {"text": {"content": "https://a/b.png"}}]
    assert post(partners, cid, user_message(user["id"], message_parts=link)).status_code == 200
    assert post(partners, other_conv["conversation_id"], user_message(other["id"], message_parts=image)).ok
    new = {
        "channel_id": fc.channel_id,
        "users": [{"id": user["id"]}],
        "messages": [user_message(user["id"], message_parts=image)],
    }
    created = api(partners, "POST", "/conversations", json=new)
    assert created.status_code == 400 and created.json() == IMAGE_REFUSED
    assert len(fc.conversations_of(user["id"])) == 1 and len(fc.conversation(cid)["messages"]) == 2
    fc.refuse_images(user["id"], refuse=False)
    assert post(partners, cid, user_message(user["id"], message_parts=image)).status_code == 200


def test_refuse_images_for_every_user_over_http(partners, fc):
    user, conv = open_conversation(partners, fc)
    assert requests.post(partners.base + "/freshchat/_sim/actions/refuse_images", json={}).json()["ok"] is True
    assert fc.state()["image_refusals"] == ["*"]
    message = user_message(user["id"], message_parts=[{"image": {"url": "https://a/b.png"}}])
    assert post(partners, conv["conversation_id"], message).json() == IMAGE_REFUSED
    fc.reset()
    assert fc.state()["image_refusals"] == []


# -- uploads (docs/interface.md, F11) ---------------------------------------------------------


def test_image_upload_returns_a_url_that_serves_the_bytes(partners, fc):
    png = png_bytes()
    answer = api(partners, "POST", "/images/upload", files={"image": ("a.png", png, "image/png")}).json()
    assert answer["url"].startswith(partners.base + "/freshchat/assets/images/")
    assert requests.get(answer["url"]).content == png
    refused = api(partners, "POST", "/images/upload", files={"image": ("a.pdf", PDF, "application/pdf")})
    assert refused.status_code == 400


def test_file_upload_returns_the_flat_object_usable_as_a_part(partners, fc):
    answer = api(partners, "POST", "/files/upload", files={"file": ("hoa-don.pdf", PDF, "application/pdf")}).json()
    assert answer["file_name"] == "hoa-don.pdf" and answer["file_size"] == len(PDF)
    assert answer["file_content_type"] == "application/pdf" and answer["file_extension_type"] == "pdf"
    assert answer["file_security_status"] == "SAFE_FILE" and answer["file_hash"]
    user, conv = open_conversation(partners, fc)
    part = {"file": {"name": "hoa-don.pdf", "fileHash": answer["file_hash"], "fileSource": "FRESHCHAT"}}
    message = {"message_parts": [part], "actor_type": "user", "actor_id": user["id"]}
    assert post(partners, conv["conversation_id"], message).status_code == 200
    part["file"]["fileHash"] = "unknown"
    assert post(partners, conv["conversation_id"], message).status_code == 400


# -- faults ------------------------------------------------------------------------------------


def test_freshchat_faults_answer_json_errors(partners, fc):
    fc.faults.fail_next("users_create", 1, "http503")
    fc.faults.fail_next("users_create", 1, "http429", retry_after=4)
    down = api(partners, "POST", "/users", json={"reference_id": "x"})
    assert down.status_code == 503 and down.json()["code"] == 503
    limited = api(partners, "POST", "/users", json={"reference_id": "x"})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "4"
    assert api(partners, "POST", "/users", json={"reference_id": "x"}).status_code == 201
    assert fc.faults.calls("users_create") == 3 and len(fc.users_by_reference("x")) == 1


def test_freshchat_has_no_zalo_error_codes(partners, fc):
    resp = requests.post(partners.base + "/freshchat/_sim/faults", json={"endpoint": "*", "next": 1, "outcome": -32})
    assert resp.status_code == 400


# -- webhooks (docs/interface.md, F7-F10) ------------------------------------------------------


def test_a_stored_agent_message_signed_by_sign_is_what_deliver_posts(partners, fc, receiver):
    user, conv = open_conversation(partners, fc)
    message = fc.add_agent_message(conv["conversation_id"], "Chào anh")
    assert receiver.requests == []  # stored, not sent
    assert fc.conversation(conv["conversation_id"])["messages"][-1]["id"] == message["id"]
    event = message_event(message)
    raw, headers = fc.sign(event)
    assert json.loads(raw) == event
    assert {k: v for k, v in headers.items() if k != "X-Freshchat-Signature"} == {
        "Content-Type": "application/json",
        "X-Retry-Count": "0",
        "X-Freshchat-Payload-Version": "2022",
    }
    assert verify_signature(headers["X-Freshchat-Signature"], raw_body=raw, public_key_pem=fc.public_key_pem)
    fc.deliver(receiver.url, event, duplicates=2)
    assert [r.raw for r in receiver.requests] == [raw, raw]
    assert [r.headers["x-retry-count"] for r in receiver.requests] == ["0", "1"]


def test_agent_message_is_stored_and_signed_for_both_key_labels(partners, fc, receiver):
    user, conv = open_conversation(partners, fc)
    sent = fc.send_agent_message(receiver.url, conv["conversation_id"], "Chào anh")
    got = receiver.requests[0]
    assert got.raw == sent.raw
    for pem in (fc.public_key_pem, fc.public_key_pem_rsa_label):
        assert verify_signature(got.headers["x-freshchat-signature"], raw_body=got.raw, public_key_pem=pem)
    assert not verify_signature(
        got.headers["x-freshchat-signature"], raw_body=got.raw + b" ", public_key_pem=fc.public_key_pem
    )
    assert "BEGIN RSA PUBLIC KEY" in fc.public_key_pem_rsa_label and "BEGIN PUBLIC KEY" in fc.public_key_pem
    stored = fc.conversation(conv["conversation_id"])["messages"][-1]
    assert stored["id"] == sent["data"]["message"]["id"] and stored["actor_type"] == "agent"


def test_message_create_envelope_matches_the_current_sample(fc, partners, receiver):
    user, conv = open_conversation(partners, fc)
    fc.send_agent_message(receiver.url, conv["conversation_id"], [{"image": {"url": "https://a/b.png"}}])
    event = json.loads(receiver.requests[0].raw)
    assert event["action"] == "message_create" and event["actor"] == {
        "actor_type": "agent",
        "actor_id": fc.default_agent_id,
    }
    message = event["data"]["message"]
    assert message["message_parts"] == [{"image": {"url": "https://a/b.png"}}]
    assert message["conversation_id"] == conv["conversation_id"] and message["user_id"] == user["id"]
    assert "message_type" not in message and message["botsPrivateNote"] is False
    assert {"id", "app_id", "channel_id", "interaction_id", "created_time", "actor_id"} <= set(message)


def test_duplicates_send_identical_bodies_with_retry_counts(fc, partners, receiver):
    _, conv = open_conversation(partners, fc)
    sent = fc.send_agent_message(receiver.url, conv["conversation_id"], "x", duplicates=3)
    assert sent.statuses == [200, 200, 200] and {r.raw for r in receiver.requests} == {sent.raw}
    assert [r.headers["x-retry-count"] for r in receiver.requests] == ["0", "1", "2"]
    assert {r.headers["x-freshchat-signature"] for r in receiver.requests} == {sent.headers[0]["X-Freshchat-Signature"]}
    assert receiver.requests[0].headers["x-freshchat-payload-version"] == "2022"


def test_legacy_payload_uses_msg_parts(fc, partners, receiver):
    _, conv = open_conversation(partners, fc)
    fc.send_agent_message(receiver.url, conv["conversation_id"], "Legacy hello", payload_version="legacy")
    message = json.loads(receiver.requests[0].raw)["data"]["message"]
    assert message["msg_parts"] == [{"part_type": "text", "properties": {"text": "Legacy hello"}}]
    assert "message_parts" not in message and message["message_type"] == "normal"
    assert receiver.requests[0].headers["x-freshchat-payload-version"] == "2018"


def test_private_note_and_bot_message(fc, partners, receiver):
    _, conv = open_conversation(partners, fc)
    note = fc.private_note(receiver.url, conv["conversation_id"], "internal")
    assert note["data"]["message"]["message_type"] == "private"
    bot = fc.send_agent_message(receiver.url, conv["conversation_id"], "Freddy", actor_type="bot", agent_id="bot-1")
    assert bot["actor"] == {"actor_type": "bot", "actor_id": "bot-1"}
    with pytest.raises(KeyError):
        fc.send_agent_message(receiver.url, "missing", "x")


def test_system_message_from_an_agent_with_reply_parts(fc, partners, receiver):
    _, conv = open_conversation(partners, fc)
    lan = fc.add_agent("agent-lan", "Lan")["id"]
    buttons = [{"collection": {"sub_parts": [{"quick_reply_button": {"label": "Yes"}}]}}]
    sent = fc.send_agent_message(
        receiver.url,
        conv["conversation_id"],
        "Conversation was reopened by Lan",
        agent_id=lan,
        message_type="system",
        reply_parts=buttons,
    )
    message = json.loads(receiver.requests[0].raw)["data"]["message"]
    assert sent["actor"] == {"actor_type": "agent", "actor_id": lan}
    assert message["message_type"] == "system" and message["reply_parts"] == buttons
    stored = fc.conversation(conv["conversation_id"])["messages"][-1]
    assert stored["message_type"] == "system" and stored["reply_parts"] == buttons
    plain = fc.send_agent_message(receiver.url, conv["conversation_id"], "hi")
    assert "reply_parts" not in plain["data"]["message"]


def test_resolve_reopen_and_assign_envelopes(fc, partners, receiver):
    user, conv = open_conversation(partners, fc)
    cid = conv["conversation_id"]
    resolved = fc.resolve(receiver.url, cid)
    assert resolved["action"] == "conversation_resolution" and resolved["data"]["resolve"]["resolver"] == "agent"
    assert resolved["data"]["resolve"]["conversation"]["status"] == "resolved"
    reopened = fc.reopen(receiver.url, cid, reopener="user")
    assert reopened["data"]["reopen"]["reopener_id"] == user["id"]
    assert reopened["data"]["reopen"]["conversation"]["status"] == "reopened"
    assigned = fc.assign(receiver.url, cid, "agent-2", group_id="g-1")
    assert assigned["data"]["assignment"]["to_agent_id"] == "agent-2"
    assert assigned["data"]["assignment"]["from_agent_id"] == "" and fc.conversation(cid)["status"] == "assigned"
    assert [json.loads(r.raw)["action"] for r in receiver.requests] == [
        "conversation_resolution",
        "conversation_reopen",
        "conversation_assignment",
    ]


def test_api_messages_are_echoed_to_the_webhook_url_in_order(fc, partners, receiver):
    fc.webhook_url = receiver.url
    user, conv = open_conversation(partners, fc, "first")
    fc.flush_webhooks()  # the echo goes out from a thread; resolve() below posts directly
    fc.resolve(receiver.url, conv["conversation_id"])
    post(partners, conv["conversation_id"], user_message(user["id"], "again"))
    events = wait_for(receiver, 4)
    assert [e["action"] for e in events] == [
        "message_create",
        "conversation_resolution",
        "conversation_reopen",
        "message_create",
    ]
    assert events[3]["actor"]["actor_type"] == "user" and events[2]["data"]["reopen"]["reopener"] == "user"


def test_an_echo_reads_no_proxy_settings_from_the_environment_another_thread_is_changing(
    fc, partners, receiver, monkeypatch
):
    """pytest sets and deletes PYTEST_CURRENT_TEST while the echo thread posts: iterating
    os.environ for proxies then raised KeyError in that thread and the echo was lost."""

    real = requests.sessions.get_environ_proxies

    def environment_changing_under_us(*args, **kwargs):
        if threading.current_thread().name == "freshchat-sim-echo":
            raise KeyError("PYTEST_CURRENT_TEST")
        return real(*args, **kwargs)

    monkeypatch.setattr(requests.sessions, "get_environ_proxies", environment_changing_under_us)
    fc.webhook_url = receiver.url
    open_conversation(partners, fc, "first")
    fc.flush_webhooks()
    assert [e["action"] for e in wait_for(receiver, 1)] == ["message_create"]


def test_state_and_http_actions(partners, fc, receiver):
    _, conv = open_conversation(partners, fc)
    url = partners.base + "/freshchat/_sim/actions/agent_message"
    answer = requests.post(
        url, json={"bridge_url": receiver.url, "conversation_id": conv["conversation_id"], "parts": "từ UI"}
    ).json()
    assert answer["statuses"] == [200]
    state = requests.get(partners.base + "/freshchat/_sim/state").json()
    texts = [m["message_parts"][0]["text"]["content"] for m in state["conversations"][0]["messages"]]
    assert texts == ["Xin chào", "từ UI"] and len(state["users"]) == 1
    assert requests.get(partners.base + "/freshchat/_sim/public_key?label=rsa").text == fc.public_key_pem_rsa_label


# -- the combined server (server.py) ----------------------------------------------------------


def test_index_lists_the_partner_urls(partners, zalo, fc):
    index = requests.get(partners.base + "/").json()
    assert index["zalo"]["api_base_url"] == partners.base + "/zalo" == index["zalo"]["oauth_base_url"]
    assert index["freshchat"]["api_url"] == partners.base + "/freshchat/v2"
    assert requests.get(partners.base + "/v2/users").status_code == 404  # nothing outside the prefixes


def test_build_partners_takes_settings_and_a_signing_key():
    key_owner = FreshchatSimulator("c", "k")
    pem = key_owner.private_key.private_bytes(*_pkcs8())
    _, zalo, fc = build_partners(
        {
            "zalo_app_id": "42",
            "freshchat_channel_id": "topic",
            "freshchat_private_key": pem,
            "reopen_mode": "new_conversation",
        }
    )
    assert zalo.app_id == "42" and zalo.access_token == "sandbox-access-token-0"
    assert fc.channel_id == "topic" and fc.reopen_mode == "new_conversation"
    assert fc.public_key_pem == key_owner.public_key_pem


def _pkcs8():
    from cryptography.hazmat.primitives import serialization

    return (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
