"""merge_users_by_app (CONTRACT §7): connections of one Zalo app on one FreshChat account with the
option share one FreshChat user per `user_id_by_app`, each OA with its own conversation in its
own topic. The exact requests of the second OA's first message: a conversation, no user."""

from __future__ import annotations

import copy
import threading
from urllib.parse import quote

import pytest
import requests_mock

from app.bridge import keys
from app.bridge.keys import lane_for
from app.bridge.lanes import Item, now_ms
from app.relay import inbound, reconcile
from sandbox.helpers import FC_API, ZALO_API, ZALO_APP_ID, load_fixture, partners_answer_probes
from tests.multi import OA2, store
from workers.drain import Drainer

BY_APP = "552177279717587730"  # the fixture's user_id_by_app (zalo.md §3.2 example)
USER_OA2 = "246845883529197922"  # the fixture's sender: the person's id for the first OA
USER_OA3 = "246845883529100033"  # the same person's id for the other OA
OA3_ID = "388613280878800003"
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CONV2, CONV3 = "conv-oa2-0000", "conv-oa3-0000"
SHARED_REFERENCE = f"zalo:app:{ZALO_APP_ID}:{BY_APP}"
PROFILE = {"error": 0, "data": {"user_id": USER_OA2, "user_id_by_app": BY_APP, "display_name": "Lan"}}


def connection(conn_id: str, oa_id: str, merge: bool = True) -> dict:
    record = copy.deepcopy(OA2)
    record.update(id=conn_id, name=conn_id)
    record["zalo"].update(oa_id=oa_id, access_token=f"{conn_id}-access", refresh_token=f"{conn_id}-refresh")
    record["freshchat"]["channel_id"] = f"chan-{conn_id}"
    record["options"] = {"merge_users_by_app": merge}
    return record


@pytest.fixture
def two_oas(redis, settings):
    store(redis, settings, connection("oa2", OA2["zalo"]["oa_id"]), connection("oa3", OA3_ID))


def queue(ctx, conn_id: str, oa_id: str, zalo_user: str, msg_id: str, text: str) -> str:
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    event.update(sender={"id": zalo_user}, recipient={"id": oa_id}, user_id_by_app=BY_APP)
    event["message"] = {"text": text, "msg_id": msg_id}
    lane = lane_for(conn_id, f"in:{zalo_user}")
    ctx.lanes.accept(lane, Item(f"zalo:{msg_id}", "zalo", event, now_ms(), event="user_message", connection=conn_id))
    return lane


def first_message(text: str, channel: str) -> dict:
    return {
        "channel_id": channel,
        "users": [{"id": FC_USER}],
        "messages": [
            {
                "message_parts": [{"text": {"content": text}}],
                "message_type": "normal",
                "actor_type": "user",
                "actor_id": FC_USER,
                "user_id": FC_USER,
            }
        ],
    }


def freshchat_calls(m) -> list[tuple]:
    return [(r.method, r.url, r.json() if r.body else None) for r in m.request_history if r.url.startswith(FC_API)]


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        mock.get(f"{ZALO_API}/v3.0/oa/user/detail", json=PROFILE)
        mock.get(f"{FC_API}/users", json={"users": []})
        mock.post(f"{FC_API}/users", json={"id": FC_USER})
        mock.post(
            f"{FC_API}/conversations",
            [
                {"json": {"conversation_id": CONV2, "messages": [{"id": "m-1"}]}},
                {"json": {"conversation_id": CONV3, "messages": [{"id": "m-2"}]}},
            ],
        )
        yield mock


def test_the_second_oas_first_message_opens_a_conversation_in_its_topic_for_the_same_user(ctx, two_oas, m):
    assert Drainer(ctx).drain(queue(ctx, "oa2", OA2["zalo"]["oa_id"], USER_OA2, "z-1", "hi shop 2")) == "empty"
    created = [r for r in m.request_history if r.method == "POST" and r.url == f"{FC_API}/users"]
    assert len(created) == 1 and created[0].json()["reference_id"] == SHARED_REFERENCE
    assert m.request_history[0].qs == {"reference_id": [SHARED_REFERENCE.lower()]}  # looked up first
    m.reset_mock()
    shared = {"id": FC_USER, "reference_id": SHARED_REFERENCE, "properties": [{"name": "zalo_oa", "value": "oa2"}]}
    m.get(f"{FC_API}/users?reference_id={SHARED_REFERENCE}", json={"users": [shared]})
    m.put(f"{FC_API}/users/{FC_USER}", json={})

    assert Drainer(ctx).drain(queue(ctx, "oa3", OA3_ID, USER_OA3, "z-2", "hi shop 3")) == "empty"
    calls = freshchat_calls(m)
    assert [(method, url) for method, url, _ in calls] == [
        ("GET", f"{FC_API}/users?reference_id={quote(SHARED_REFERENCE, safe='')}"),  # read once, for its OA names
        ("PUT", f"{FC_API}/users/{FC_USER}"),
        ("POST", f"{FC_API}/conversations"),
    ]
    assert {"name": "zalo_oa", "value": "oa2; oa3"} in calls[1][2]["properties"]  # the agents see both OAs
    assert calls[2][2] == first_message("hi shop 3", "chan-oa3")
    assert [r.url for r in m.request_history if r.url.startswith(ZALO_API)] == []  # no profile read either
    assert m.request_history[-1].headers["Authorization"] == "Bearer oa2-fc-key"  # both records carry this key
    oa2, oa3 = ctx.for_connection("oa2"), ctx.for_connection("oa3")
    assert oa2.mapping.zalo_user(USER_OA2)["fc_conversation_id"] == CONV2
    assert oa3.mapping.zalo_user(USER_OA3)["fc_conversation_id"] == CONV3
    assert oa3.mapping.zalo_user(USER_OA3)["fc_user_id"] == FC_USER
    owners = keys.conversation_owner(FC_API)
    assert (ctx.redis.hget(owners, CONV2), ctx.redis.hget(owners, CONV3)) == (b"oa2", b"oa3")  # replies: each its OA
    assert ctx.redis.get(keys.person(ZALO_APP_ID, FC_API, BY_APP)) == FC_USER.encode()


def test_without_the_option_each_oa_creates_its_own_user(ctx, redis, settings, m):
    store(redis, settings, connection("oa2", OA2["zalo"]["oa_id"], merge=False), connection("oa3", OA3_ID, False))
    Drainer(ctx).drain(queue(ctx, "oa2", OA2["zalo"]["oa_id"], USER_OA2, "z-1", "hi shop 2"))
    Drainer(ctx).drain(queue(ctx, "oa3", OA3_ID, USER_OA3, "z-2", "hi shop 3"))
    created = [r.json()["reference_id"] for r in m.request_history if r.method == "POST" and r.url == f"{FC_API}/users"]
    assert created == [f"zalo:{OA2['zalo']['oa_id']}:{USER_OA2}", f"zalo:{OA3_ID}:{USER_OA3}"]
    assert not redis.keys("zfb:person:*")


def test_concurrent_first_messages_through_two_oas_create_one_user(ctx, two_oas, m):
    """oa2 is creating the user (its POST /users held open) when oa3's first message comes: oa3
    waits without a FreshChat call or a spent attempt, then uses oa2's user."""
    creating, release = threading.Event(), threading.Event()

    def slow_create(request, context):
        creating.set()
        assert release.wait(10)
        return {"id": FC_USER}

    m.post(f"{FC_API}/users", json=slow_create)
    first = threading.Thread(
        target=Drainer(ctx).drain, args=(queue(ctx, "oa2", OA2["zalo"]["oa_id"], USER_OA2, "z-1", "hi shop 2"),)
    )
    first.start()
    assert creating.wait(10)
    lane3 = queue(ctx, "oa3", OA3_ID, USER_OA3, "z-2", "hi shop 3")
    assert Drainer(ctx).drain(lane3) == "deferred"
    item = ctx.lanes.head(lane3)[1]
    assert item.attempts == 0 and "another OA of the app is creating" in item.last_error
    release.set()
    first.join(10)
    ctx.redis.zadd(keys.DUE, {lane3: 0})
    assert Drainer(ctx).drain(lane3) == "empty"
    assert len([r for r in m.request_history if r.method == "POST" and r.url == f"{FC_API}/users"]) == 1
    bodies = [r.json() for r in m.request_history if r.url == f"{FC_API}/conversations"]
    assert bodies == [first_message("hi shop 2", "chan-oa2"), first_message("hi shop 3", "chan-oa3")]


def test_turning_it_on_keeps_existing_users_and_shares_one_only_with_an_oa_that_has_none(ctx, two_oas, m):
    """Before the option: the person had a user through oa2 only (FC_USER), and someone else had
    users through both OAs. After: oa2's next message makes FC_USER the person's, so oa3's first
    message joins it; the one known on both keeps two users."""
    oa2, oa3 = ctx.for_connection("oa2"), ctx.for_connection("oa3")
    oa2.mapping.set_zalo_user(USER_OA2, fc_user_id=FC_USER)
    oa2.mapping.link_conversation(USER_OA2, CONV2)
    oa2.mapping.seen_now(USER_OA2)
    m.post(f"{FC_API}/conversations/{CONV2}/messages", json={"id": "m-9"})
    assert Drainer(ctx).drain(queue(ctx, "oa2", OA2["zalo"]["oa_id"], USER_OA2, "z-1", "again")) == "empty"
    assert oa2.mapping.zalo_user(USER_OA2)["user_id_by_app"] == BY_APP
    m.reset_mock()
    assert Drainer(ctx).drain(queue(ctx, "oa3", OA3_ID, USER_OA3, "z-2", "hi shop 3")) == "empty"
    calls = freshchat_calls(m)  # the adopted user has oa2's own reference: not found by the person's, not changed
    assert calls[0][:2] == ("GET", f"{FC_API}/users?reference_id={quote(SHARED_REFERENCE, safe='')}")
    assert calls[1:] == [("POST", f"{FC_API}/conversations", first_message("hi shop 3", "chan-oa3"))]

    other2, other3, both_by_app = "246845883529100077", "246845883529100078", "552177279717500077"
    oa2.mapping.set_zalo_user(other2, fc_user_id="fc-user-a")
    oa3.mapping.set_zalo_user(other3, fc_user_id="fc-user-b")
    for conn, user in ((oa2, other2), (oa3, other3)):
        event = {"user_id_by_app": both_by_app}
        assert inbound.ensure_freshchat_user(conn, user, conn.mapping.zalo_user(user), event).startswith("fc-user-")
    assert oa3.mapping.zalo_user(other3)["fc_user_id"] == "fc-user-b"  # not merged into oa2's
    assert ctx.redis.get(keys.person(ZALO_APP_ID, FC_API, both_by_app)) == b"fc-user-a"


def test_a_message_posted_blind_is_looked_for_only_in_conversations_no_other_oa_owns(ctx, two_oas, m):
    """The person's user has oa2's conversation too, where they wrote the same words: oa3's
    unknown outcome is settled in its own conversation, never by oa2's message."""
    oa2, oa3 = ctx.for_connection("oa2"), ctx.for_connection("oa3")
    oa2.mapping.link_conversation(USER_OA2, CONV2)
    message = first_message("hi shop 3", "chan-oa3")["messages"][0]
    m.get(f"{FC_API}/users/{FC_USER}/conversations", json={"conversations": [{"id": CONV2}, {"id": CONV3}]})
    for conversation, message_id in ((CONV2, "m-2"), (CONV3, "m-3")):
        listed = {"messages": [{**message, "id": message_id, "created_time": "2099-01-01T00:00:00.000Z"}]}
        m.get(f"{FC_API}/conversations/{conversation}/messages", json=listed)
    flight = {"at": now_ms(), "conversation": "", "user": FC_USER, "what": reconcile.freshchat_fingerprint(message)}
    assert reconcile.find_freshchat_post(oa3, flight) == {"id": "m-3", "conversation_id": CONV3}
    assert not [r for r in m.request_history if CONV2 in r.url]
