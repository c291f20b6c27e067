"""Forgetting a person (CONTRACT §7): a user's footprint is laid down by relaying real messages
through the webhooks and the drain (real Redis; media in a local folder or moto's S3), then
`DELETE /api/connections/default/users/<id>` must leave nothing of them, count it, and leave
another user alone."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import re
import time

import pytest
import requests_mock
from moto import mock_aws

from app import create_app
from app.bridge import keys
from app.bridge.keys import DEFAULT_KEYS, NOT_PERSONAL, PERSONAL, Keys
from app.bridge.lanes import now_ms
from app.operations.forget import OTHER_FAMILIES, _names
from sandbox.helpers import (
    FC_API,
    PNG,
    ZALO_API,
    load_fixture,
    partners_answer_probes,
    post_freshchat,
    post_zalo,
    redis_dump,
)
from sandbox.procs import wait_until
from workers.context import WorkerContext
from workers.drain import Drainer

ADMIN = "admin-token-for-forget-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
USER, OTHER = "246845883529197922", "7000000000000000001"
FC_USER, FC_OTHER = "9047e655-1e83-463e-b1b6-4a44beb1f07f", "11111111-2222-4333-8444-555555555555"
CONV, CONV_OTHER = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f", "66666666-7777-4888-8999-000000000000"
REPLY = "a834cd45-0000-4000-8000-000000000001"  # the agent's FreshChat message
SENT = "41b2c3d4e5f6a7b8c9d0"  # what Zalo named the reply (user_received_message names it)
LATER = "f00dcafe0000000000000001"  # a message still queued when the person is forgotten
CDN = "https://cdn.zalo-example.vn"
BUCKET = "forget-media"


@pytest.fixture(params=["local", "s3"])
def media_settings(request, settings, monkeypatch):
    if request.param == "local":
        yield dataclasses.replace(settings, admin_token=ADMIN)
        return
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        import boto3  # inside moto's mock: the client it makes must be a mocked one

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield dataclasses.replace(settings, admin_token=ADMIN, media_bucket=BUCKET)


@pytest.fixture
def api(media_settings):
    return create_app(media_settings).test_client()


@pytest.fixture
def worker(media_settings, redis):
    return WorkerContext(media_settings, redis)


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker(real_http=False) as mock:
        partners_answer_probes(mock)
        mock.get(f"{ZALO_API}/v3.0/oa/user/detail", json={"error": 0, "data": {"display_name": "Minh Khánh"}})
        mock.get(f"{FC_API}/users", json={"users": []})
        mock.post(f"{FC_API}/users", [{"json": {"id": FC_OTHER}}, {"json": {"id": FC_USER}}])
        mock.post(
            f"{FC_API}/conversations",
            [
                {"json": {"conversation_id": CONV_OTHER, "messages": [{"id": "fc-other"}]}},
                {"json": {"conversation_id": CONV, "messages": [{"id": "fc-first"}]}},
            ],
        )
        mock.post(f"{FC_API}/conversations/{CONV}/messages", json={"id": "fc-image"})
        image = {"content": PNG, "headers": {"Content-Type": "image/jpeg"}}
        mock.get(f"{CDN}/img/p1.jpg", [{"status_code": 503}, image])  # once down: a retry, a last error
        answer = load_fixture("zalo", "answers", "message_cs__reply_quota.json")
        answer["data"]["message_id"] = SENT
        mock.post(f"{ZALO_API}/v3.0/oa/message/cs", json=answer)
        yield mock


def zalo(name: str, sender: str = USER, msg_id: str = "") -> dict:
    event = load_fixture("zalo", "webhooks", f"{name}.json")
    event["timestamp"] = str(now_ms())
    side = "recipient" if name == "user_received_message" else "sender"
    event[side]["id"] = sender
    if msg_id:
        event["message"]["msg_id"] = msg_id
    return event


def relay(api, worker, event: dict, lane: str) -> None:
    post = post_freshchat if "action" in event else post_zalo
    assert post(api, event).status_code == 200
    Drainer(worker).drain(lane)


def agent_reply(text: str) -> dict:
    event = load_fixture("freshchat", "webhooks", "message_create__agent_text.json")
    event["data"]["message"] = {**event["data"]["message"], "id": REPLY, "message_parts": [{"text": {"content": text}}]}
    return event


def seed(api, worker) -> None:
    """USER: a first message (new FreshChat user and conversation), a long agent reply (a media
    copy of its text, a receipt, the message maps), its receipt (a receipts-note timer), an image
    (a media copy, the reply window's timer) and one message still queued. OTHER: one message."""
    relay(api, worker, zalo("user_send_text", OTHER, msg_id="other0000000000000001"), f"in:{OTHER}")
    relay(api, worker, zalo("user_send_text"), f"in:{USER}")
    relay(api, worker, agent_reply("Dạ " * 1100), f"out:{CONV}")
    relay(api, worker, zalo("user_received_message", msg_id=SENT), f"in:{USER}")
    relay(api, worker, zalo("user_send_image"), f"in:{USER}")  # the CDN fails once: a last error
    drain_until_gone(worker, f"in:{USER}")
    assert post_zalo(api, zalo("user_send_text", msg_id=LATER)).status_code == 200


TEXT_MSG, IMAGE_MSG = "96d3cdf3af150460909", "a1b2c3d4e5f6a7b8c9d0"  # the fixtures' message ids


def drain_until_gone(worker, lane: str) -> None:
    """Drain what is due until the lane is empty (a retry is due a few ms later)."""

    def drained() -> bool:
        claimed = worker.lanes.claim()
        if claimed:
            Drainer(worker).drain_held(*claimed)
        return not worker.redis.exists(keys.lane(lane))

    wait_until(drained, timeout=10, interval=0.01, what=f"{lane} drained")


def the_persons_names(worker) -> set[bytes]:
    return {n.encode() for n in (USER, FC_USER, CONV, REPLY, SENT, LATER, TEXT_MSG, IMAGE_MSG)}


def leftovers(redis, names: set[bytes]) -> list[bytes]:
    """Every key name, field, member or value that still holds one of `names`."""
    kept = [DEFAULT_KEYS.forgotten.encode()]
    found = []
    for key in redis.scan_iter():
        if key in kept:
            continue
        found += [v for v in redis_dump_of(redis, key) if isinstance(v, bytes) and any(n in v for n in names)]
    return found


def redis_dump_of(redis, key: bytes) -> list[bytes]:
    return [key, *[v for v in _values(redis, key)]]


def _values(redis, key):
    kind = redis.type(key).decode()
    if kind == "string":
        return [redis.get(key)]
    if kind == "hash":
        return [i for pair in redis.hgetall(key).items() for i in pair]
    if kind == "list":
        return redis.lrange(key, 0, -1)
    if kind == "set":
        return list(redis.smembers(key))
    return redis.zrange(key, 0, -1)


def media_names(worker) -> list[str]:
    store = worker.media
    if hasattr(store, "root"):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    return sorted(o["Key"] for o in store.client.list_objects_v2(Bucket=store.bucket).get("Contents", []))


def test_a_conversations_owner_on_a_shared_account_goes_with_the_person(api, worker, redis, m):
    worker.mapping.shared = lambda: True  # another connection on the account: owners are recorded
    relay(api, worker, zalo("user_send_text"), f"in:{USER}")
    conversation = worker.mapping.zalo_user(USER)["fc_conversation_id"]
    assert redis.hget(worker.mapping.owners, conversation) == b"default"
    answer = api.delete(f"/api/connections/default/users/{USER}", headers=AUTH)
    assert answer.get_json()["deleted"]["conversation_owner"] == 1
    assert redis.hget(worker.mapping.owners, conversation) is None


def test_hashes_the_previous_version_wrote_are_found_and_forgotten(api, worker, redis, m):
    """fc5f0b4's long field names: the user's hash names the conversation, and an older
    conversation, replaced since, still names the person in its own hash."""
    k = worker.keys
    redis.hset(k.zalo_user(USER), mapping={"fc_user_id": FC_USER, "fc_conversation_id": CONV})
    redis.hset(k.conversation(CONV), mapping={"zalo_user_id": USER, "status": "open"})
    redis.hset(k.conversation("older-conv"), mapping={"zalo_user_id": USER, "status": "resolved"})
    redis.hset(k.conversation("someone-elses"), mapping={"zalo_user_id": OTHER})
    answer = api.delete(f"/api/connections/default/users/{USER}", headers=AUTH)
    assert answer.get_json()["deleted"]["conversation"] == 2
    assert answer.get_json()["freshchat"]["user"] == FC_USER
    assert [redis.exists(k.conversation(c)) for c in (CONV, "older-conv", "someone-elses")] == [0, 0, 1]


def test_forgetting_deletes_every_record_of_the_person_counts_them_and_leaves_others(api, worker, redis, m, caplog):
    seed(api, worker)
    assert leftovers(redis, the_persons_names(worker))  # the footprint is there to forget
    person = keys.person_folder(USER)
    assert [n for n in media_names(worker) if n.startswith(person)]  # both copies, in the person's folder
    other_before = {k: _values(redis, k) for k in redis.scan_iter() if OTHER.encode() in k}

    with caplog.at_level(logging.WARNING, logger="bridge.audit"):
        answer = api.delete(f"/api/connections/default/users/{USER}", headers=AUTH)

    assert answer.status_code == 200
    body = answer.get_json()
    deleted = body["deleted"]
    assert set(deleted) == set(PERSONAL) | set(OTHER_FAMILIES)
    assert {
        f: deleted[f] for f in ("zalo_user", "conversation", "replies", "receipts_of", "receipt", "sending_to")
    } == {
        "zalo_user": 1,
        "conversation": 1,
        "replies": 1,  # receipts: one hash per conversation
        "receipts_of": 0,  # receipts as kept before issue 3: none written any more
        "receipt": 0,
        "sending_to": 1,
    }
    assert deleted["media"] == 2  # the image and the long reply's text
    assert deleted["journal_entries"] == 4  # text, reply, receipt, image
    assert deleted["queued_items"] == 3  # the queued message, the window's and the receipts note's timers
    assert deleted["lanes"] == 3  # in:<user>, win:<user>, rcpt:<conv>
    assert deleted["seen"] == 5 and deleted["last_errors"] == 1
    assert deleted["conversation_owner"] == 0  # one connection on the account: no owner recorded
    assert body["freshchat"]["user"] == FC_USER and body["freshchat"]["conversations"] == [CONV]
    assert "FreshChat" in body["freshchat"]["note"]

    assert leftovers(redis, the_persons_names(worker)) == []
    assert not [n for n in media_names(worker) if n.startswith(person)]
    assert {k: _values(redis, k) for k in redis.scan_iter() if OTHER.encode() in k} == other_before
    assert [r.message for r in caplog.records if r.name == "bridge.audit"] == ["person_forgotten"]
    [line] = [r for r in caplog.records if r.name == "bridge.audit"]
    assert (line.connection, line.zalo_user, line.deleted["journal_entries"]) == ("default", USER, 4)
    assert redis.smembers(DEFAULT_KEYS.forgotten) == {FC_USER.encode()}


def test_a_person_the_bridge_does_not_know_is_404_and_nothing_is_deleted(api, redis, worker, m):
    seed(api, worker)
    before = sorted(redis_dump(redis))
    answer = api.delete("/api/connections/default/users/123456789", headers=AUTH)
    assert answer.status_code == 404
    assert answer.get_json()["error"] == "the bridge knows no Zalo user 123456789 in connection default"
    assert sorted(redis_dump(redis)) == before
    assert api.delete(f"/api/connections/default/users/{USER}").status_code == 401
    assert api.delete(f"/api/connections/nope/users/{USER}", headers=AUTH).status_code == 404


@pytest.mark.parametrize("word", ["zalo", "fc", "msg", "out", "0"])
def test_an_id_that_is_a_word_of_the_keys_names_deletes_nobody_elses_records(api, redis, worker, m, word):
    """Effects are found by the parts of their names ("zalo:out:<message>:0"): an unknown id
    that is one of those words must not reach every effect holding it (their redelivery would
    send twice)."""
    seed(api, worker)
    before = sorted(redis_dump(redis))
    assert api.delete(f"/api/connections/default/users/{word}", headers=AUTH).status_code == 404
    assert sorted(redis_dump(redis)) == before


def test_an_anonymous_visitors_id_is_found_whole_in_an_effects_name():
    """An anonymous visitor's id holds a ":" ("anon:<id>"): the window note's effect names it."""
    assert _names("fc:window:anon:2a8f6c1d:1700000100000", {"anon:2a8f6c1d"}, ["anon:2a8f6c1d"])
    assert not _names("fc:window:anon:2a8f6c1dff:1700000100000", {"anon:2a8f6c1d"}, ["anon:2a8f6c1d"])


def test_the_next_message_of_a_forgotten_person_makes_a_new_freshchat_user(api, worker, redis, m):
    seed(api, worker)
    api.delete(f"/api/connections/default/users/{USER}", headers=AUTH)
    m.get(f"{FC_API}/users", json={"users": [{"id": FC_USER, "reference_id": f"zalo:388613280878808645:{USER}"}]})
    m.post(f"{FC_API}/users", json={"id": "a-new-user"})
    m.post(f"{FC_API}/conversations", json={"conversation_id": "a-new-conversation", "messages": [{"id": "x"}]})
    m.reset_mock()
    relay(api, worker, zalo("user_send_text", msg_id="again0000000000000001"), f"in:{USER}")
    posted = [(r.method, r.url.partition("?")[0]) for r in m.request_history if r.url.startswith(FC_API)]
    assert posted == [
        ("GET", f"{FC_API}/users"),
        ("POST", f"{FC_API}/users"),
        ("POST", f"{FC_API}/conversations"),
    ]
    assert worker.mapping.zalo_user(USER)["fc_user_id"] == "a-new-user"


def _family(member) -> bool:
    return callable(member) or isinstance(member, property)


def test_every_family_of_keys_says_whether_it_names_a_person():
    members = {n for n, v in inspect.getmembers(Keys) if not n.startswith("_") and _family(v)}
    assert members == set(PERSONAL) | set(NOT_PERSONAL)
    assert not set(PERSONAL) & set(NOT_PERSONAL)


def test_the_cli_forgets_and_says_what(media_settings, api, worker, redis, m):
    seed(api, worker)
    runner = create_app(media_settings).test_cli_runner()
    done = runner.invoke(args=["bridge", "forget", "default", USER])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["deleted"]["zalo_user"] == 1
    again = runner.invoke(args=["bridge", "forget", "default", USER])
    assert again.exit_code == 1 and "knows no Zalo user" in again.output


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def test_the_events_page_forgets_a_person_once_confirmed_and_says_freshchat_keeps_its_copy(api, worker, redis, m):
    seed(api, worker)
    page = api.get("/admin/sign-in")
    api.post("/admin/sign-in", data={"csrf_token": csrf_of(page), "token": ADMIN})
    events = api.get("/admin/connections/default/events", headers={"Accept-Language": "vi"})
    assert 'id="forget-form"' in events.get_data(as_text=True)
    form = {"csrf_token": csrf_of(events), "zalo_user_id": USER}
    path = "/admin/connections/default/forget"

    assert api.post(path, data={**form, "csrf_token": "forged", "confirm": "1"}).status_code == 400
    unconfirmed = api.post(path, data=form, follow_redirects=True, headers={"Accept-Language": "vi"})
    assert "Hãy đánh dấu ô xác nhận" in unconfirmed.get_data(as_text=True)
    assert redis.exists(DEFAULT_KEYS.zalo_user(USER))

    done = api.post(path, data={**form, "confirm": "1"}, follow_redirects=True, headers={"Accept-Language": "vi"})
    said = done.get_data(as_text=True)
    assert f"Đã xóa dữ liệu của người dùng Zalo {USER}:" in said
    assert f"FreshChat vẫn giữ bản dữ liệu riêng (người dùng {FC_USER})" in said
    assert not redis.exists(DEFAULT_KEYS.zalo_user(USER))

    again = api.post(path, data={**form, "confirm": "1"}, follow_redirects=True, headers={"Accept-Language": "vi"})
    assert f"cầu nối không có dữ liệu nào về người dùng Zalo {USER} trong kết nối default" in again.get_data(
        as_text=True
    )
