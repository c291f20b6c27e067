"""Anonymous visitors (the OA's web chat widget): relayed like users, in a namespace of their
own, answered through Zalo's anonymous-conversation API; the exact requests both ways."""

from __future__ import annotations

import pytest
import requests_mock

from app.bridge.keys import DEFAULT_KEYS, person_folder
from app.integrations.zalo.schemas import ANONYMOUS, load_event, to_event
from app.media.links import media_url
from sandbox.helpers import CHANNEL, FC_API, PDF, PNG, ZALO_API, ZALO_OA_ID, load_fixture, partners_answer_probes
from tests.relay.test_inbound import as_user as as_visitor
from tests.relay.test_inbound import run as run_inbound
from tests.relay.test_outbound import agent_message
from tests.relay.test_outbound import run as run_outbound

ANON = "2a8f6c1d9e3b47f5a0c2"
PARTY = ANONYMOUS + ANON
FOLDER = person_folder(PARTY)  # where copies of the visitor's media are kept
ZALO_CONV = "7f3e2d1c0b9a8f7e6d5c"
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
CDN = "https://cdn.zalo-example.vn"
V2 = f"{ZALO_API}/v2.0/oa/message"
CS = f"{ZALO_API}/v3.0/oa/message/cs"


def webhook(name: str) -> dict:
    return load_fixture("zalo", "webhooks", f"{name}.json")


def known_visitor(ctx) -> None:
    ctx.mapping.set_zalo_user(PARTY, fc_user_id=FC_USER, zalo_conversation_id=ZALO_CONV)
    ctx.mapping.link_conversation(PARTY, CONV)
    ctx.mapping.seen_now(PARTY)


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        mock.post(f"{FC_API}/conversations/{CONV}/messages", json={"id": "fc-msg-1"})
        mock.post(V2, json=load_fixture("zalo", "answers", "anonymous_message_sent.json"))
        partners_answer_probes(mock)
        mock.get(f"{CDN}/img/p1.jpg", content=PNG, headers={"Content-Type": "image/jpeg"})
        mock.get(f"{CDN}/sticker/bfe458bf64fa8da4d4eb.png", content=PNG)
        mock.get(f"{CDN}/file/baogia.pdf", content=PDF, headers={"Content-Type": "application/octet-stream"})
        yield mock


# --- the webhook's verdict --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["anonymous_send_text", "anonymous_send_image", "anonymous_send_file", "anonymous_send_sticker"]
)
def test_anonymous_messages_join_a_lane_of_their_own(name):
    event = to_event(load_event(webhook(name)))
    assert (event.queued, event.kind, event.lane) == (True, "user_message", f"in:anon:{ANON}")


def test_an_echo_to_a_visitor_is_an_oa_message_on_the_visitors_lane():
    event = to_event(load_event(webhook("oa_send_anonymous_text")))
    assert (event.kind, event.lane) == ("oa_message", f"in:anon:{ANON}")
    mine = to_event(load_event(webhook("oa_send_anonymous_text")), is_our_send=lambda msg_id: True)
    assert (mine.queued, mine.reason) == (False, "echo of a message this bridge sent")


def test_a_visitor_and_a_user_with_the_same_id_never_share_a_mapping(ctx):
    ctx.mapping.set_zalo_user(ANON, fc_user_id="a-user")
    ctx.mapping.set_zalo_user(PARTY, fc_user_id="a-visitor")
    assert (ctx.mapping.zalo_user(ANON)["fc_user_id"], ctx.mapping.zalo_user(PARTY)["fc_user_id"]) == (
        "a-user",
        "a-visitor",
    )


# --- Zalo -> FreshChat ------------------------------------------------------------------------


def test_a_first_visit_creates_a_user_named_by_the_end_of_its_id_without_asking_zalo(ctx, m):
    m.get(f"{FC_API}/users", json={"users": []})
    m.post(f"{FC_API}/users", json={"id": FC_USER})
    m.post(f"{FC_API}/conversations", json={"conversation_id": CONV, "messages": [{"id": "m0"}]})
    run_inbound(ctx, webhook("anonymous_send_text"))
    lookup, create_user, create_conv = m.request_history  # no user/detail: the id is no OA user's
    reference = f"zalo:{ZALO_OA_ID}:anon:{ANON}"
    assert lookup.qs["reference_id"] == [reference.lower()]
    user = create_user.json()
    props = {p["name"]: p["value"] for p in user["properties"]}
    assert (user["reference_id"], user["first_name"], "avatar" in user) == (reference, "f5a0c2 Zalo", False)
    assert set(props) == {"external_user_provider", "zalo_anonymous_id", "last_seen", "created", "zalo_oa"}
    assert (props["external_user_provider"], props["zalo_anonymous_id"]) == ("zalo", ANON)
    assert create_conv.json() == {
        "channel_id": CHANNEL,
        "users": [{"id": FC_USER}],
        "messages": [as_visitor([{"text": {"content": "Shop ơi, áo này còn size M không?"}}])],
    }
    assert ctx.mapping.zalo_user(PARTY)["zalo_conversation_id"] == ZALO_CONV


@pytest.mark.parametrize(
    "name,part",
    [
        ("anonymous_send_image", lambda s: {"image": {"url": media_url(s, f"{FOLDER}/zalo/aa22c3d4e5f6a7b8c9d0/0")}}),
        ("anonymous_send_sticker", lambda s: {"image": {"url": media_url(s, f"{FOLDER}/zalo/aa44c3d4e5f6a7b8c9d0/0")}}),
        (
            "anonymous_send_file",
            lambda s: {
                "file": {
                    "name": "Báo giá tháng 11.pdf",
                    "url": media_url(s, f"{FOLDER}/zalo/aa33c3d4e5f6a7b8c9d0/0"),
                    "content_type": "application/pdf",
                    "file_size_in_bytes": len(PDF),
                }
            },
        ),
    ],
)
def test_a_visitors_media_is_copied_like_a_users(ctx, m, name, part):
    known_visitor(ctx)
    assert run_inbound(ctx, webhook(name)) == "empty"
    assert [r.json() for r in m.request_history if r.method == "POST"] == [as_visitor([part(ctx.settings)])]


def test_an_oa_message_to_a_visitor_sent_elsewhere_is_a_private_note(ctx, m):
    from app.bridge.lanes import now_ms

    known_visitor(ctx)
    run_inbound(ctx, webhook("oa_send_anonymous_text"), received_at=now_ms() - 5000)
    assert [r.json() for r in m.request_history if r.method == "POST"] == [
        {
            "message_parts": [
                {"text": {"content": "[Sent by the OA outside this bridge (another tool or an automatic message)]"}},
                {"text": {"content": "Dạ còn size M ạ."}},
            ],
            "message_type": "private",
            "actor_type": "system",
            "user_id": FC_USER,
        }
    ]


def test_the_echo_of_our_own_answer_to_a_visitor_is_dropped(ctx, m):
    known_visitor(ctx)
    ctx.mapping.remember_sent("aa55c3d4e5f6a7b8c9d0", text="Dạ còn size M ạ.")
    assert run_inbound(ctx, webhook("oa_send_anonymous_text")) == "empty"
    assert not [r for r in m.request_history if r.method == "POST"]


# --- FreshChat -> Zalo ------------------------------------------------------------------------


def test_an_agents_answer_goes_through_the_anonymous_conversation_api(ctx, m):
    known_visitor(ctx)
    run_outbound(ctx, agent_message("m-anon", [{"text": {"content": "Dạ còn size M ạ."}}]))
    [request] = [r for r in m.request_history if r.method == "POST"]
    assert request.url == V2 and request.headers["access_token"] == "access-0"
    assert request.json() == {
        "recipient": {"anonymous_id": ANON, "conversation_id": ZALO_CONV},
        "message": {"text": "Dạ còn size M ạ."},
    }
    assert ctx.mapping.is_sent_by_us("aa66c3d4e5f6a7b8c9d0")  # so its oa_send_anonymous_* echo is dropped
    assert not [r for r in m.request_history if r.url == CS]


def test_a_visitor_found_by_reference_id_is_answered_in_its_known_conversation(ctx, m):
    ctx.mapping.set_zalo_user(PARTY, fc_user_id=FC_USER, zalo_conversation_id=ZALO_CONV)  # conversation map lost
    m.get(f"{FC_API}/users/{FC_USER}", json={"id": FC_USER, "reference_id": f"zalo:{ZALO_OA_ID}:anon:{ANON}"})
    run_outbound(ctx, agent_message("m-anon", [{"text": {"content": "Dạ."}}]))
    [request] = [r for r in m.request_history if r.url == V2]
    assert request.json()["recipient"] == {"anonymous_id": ANON, "conversation_id": ZALO_CONV}
    assert ctx.mapping.conversation(CONV)["zalo_user_id"] == PARTY


def test_a_reference_id_naming_a_visitor_of_another_oa_is_not_ours(ctx, m):
    m.get(f"{FC_API}/users/{FC_USER}", json={"id": FC_USER, "reference_id": f"zalo:999:anon:{ANON}"})
    run_outbound(ctx, agent_message("m-anon", [{"text": {"content": "Dạ."}}]))
    assert not [r for r in m.request_history if r.url in (V2, CS)]
