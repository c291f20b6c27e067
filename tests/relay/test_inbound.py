"""Zalo -> FreshChat: for every Zalo event type, the exact FreshChat requests."""

from __future__ import annotations

import json
import time

import pytest
import requests_mock

from app.bridge import keys
from app.bridge.keys import person_folder
from app.bridge.lanes import Item, now_ms
from app.integrations.zalo.schemas import to_event
from app.media.links import media_url
from app.relay.inbound import reference_id, relay_user_message
from bench.redis_cost import RoundTrips
from sandbox.helpers import CHANNEL, FC_API, GIF, PDF, PNG, ZALO_API, load_fixture, partners_answer_probes
from workers.drain import Drainer

USER = "246845883529197922"
FOLDER = person_folder(USER)  # where copies of this person's media are kept
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
CDN = "https://cdn.zalo-example.vn"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
AMR = b"#!AMR\n" + b"\x3c" * 64


def run(ctx, event: dict, received_at: int | None = None, typed: bool = True) -> str:
    """Queue the event as the webhook does (with its kind, or without it as older versions did)
    and drain its lane once."""
    classified = to_event(event)
    item = Item(
        id=f"zalo:{classified.dedupe_id}",
        kind="zalo",
        payload=event,
        received_at=now_ms() if received_at is None else received_at,
        event=classified.kind if typed else "",
    )
    ctx.lanes.accept(classified.lane, item)
    return Drainer(ctx).drain(classified.lane)


def known_user(ctx):
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.link_conversation(USER, CONV)
    ctx.mapping.seen_now(USER)


def as_user(parts: list[dict]) -> dict:
    return {
        "message_parts": parts,
        "message_type": "normal",
        "actor_type": "user",
        "actor_id": FC_USER,
        "user_id": FC_USER,
    }


def fc_posts(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.method == "POST" and r.url.startswith(FC_API)]


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        mock.post(f"{FC_API}/conversations/{CONV}/messages", json={"id": "fc-msg-1"})
        partners_answer_probes(mock)
        mock.get(f"{CDN}/img/p1.jpg", content=PNG, headers={"Content-Type": "image/jpeg"})
        mock.get(f"{CDN}/gif/g1.gif", content=GIF, headers={"Content-Type": "image/gif"})
        mock.get(f"{CDN}/sticker/bfe458bf64fa8da4d4eb.png", content=PNG)
        mock.get(f"{CDN}/file/baogia.pdf", content=PDF, headers={"Content-Type": "application/octet-stream"})
        mock.get(f"{CDN}/video/clip.mp4", content=MP4, headers={"Content-Type": "video/mp4"})
        mock.get(f"{CDN}/audio/voice123.amr", content=AMR, headers={"Content-Type": "audio/amr"})
        yield mock


def expected_parts(settings, name: str) -> list[dict]:
    img = lambda key: {"image": {"url": media_url(settings, key)}}  # noqa: E731
    return {
        "user_send_text": [{"text": {"content": "Xin chào, tôi cần hỗ trợ đơn hàng #123 🙏"}}],
        "user_send_image": [{"text": {"content": "Ảnh sản phẩm bị lỗi"}}, img(f"{FOLDER}/zalo/a1b2c3d4e5f6a7b8c9d0/0")],
        "user_send_gif": [img(f"{FOLDER}/zalo/b1b2c3d4e5f6a7b8c9d0/0")],
        "user_send_sticker": [img(f"{FOLDER}/zalo/c1b2c3d4e5f6a7b8c9d0/0")],
        "user_send_file": [
            {
                "file": {
                    "name": "Báo giá tháng 11.pdf",
                    "url": media_url(settings, f"{FOLDER}/zalo/d1b2c3d4e5f6a7b8c9d0/0"),
                    "content_type": "application/pdf",
                    "file_size_in_bytes": len(PDF),
                }
            }
        ],
        "user_send_location": [
            {
                "text": {
                    "content": "📍 Location: Cửa hàng Quận 10\n10.7642473, 106.6564314\n"
                    "https://www.google.com/maps/search/?api=1&query=10.7642473,106.6564314"
                }
            }
        ],
        "user_send_link": [{"text": {"content": "🔗 Áo thun size M\nGiá 199.000đ\nhttps://shop.example.vn/p/42"}}],
        "user_send_business_card": [{"text": {"content": "👤 Business card: Nguyễn Văn B\nPhone: 0901234567"}}],
    }[name]


@pytest.mark.parametrize(
    "name",
    [
        "user_send_text",
        "user_send_image",
        "user_send_gif",
        "user_send_sticker",
        "user_send_file",
        "user_send_location",
        "user_send_link",
        "user_send_business_card",
    ],
)
def test_each_event_type_posts_exactly_one_message(ctx, m, name):
    known_user(ctx)
    assert run(ctx, load_fixture("zalo", "webhooks", f"{name}.json")) == "empty"
    assert fc_posts(m) == [as_user(expected_parts(ctx.settings, name))]
    assert m.request_history[-1].url == f"{FC_API}/conversations/{CONV}/messages"
    assert m.request_history[-1].headers["Authorization"] == "Bearer fc-api-key-example"


@pytest.mark.parametrize(
    "name,msg_id,filename,ctype",
    [
        ("user_send_audio", "e1b2c3d4e5f6a7b8c9d0", "voice123.amr", "audio/amr"),
        ("user_send_video", "f1b2c3d4e5f6a7b8c9d0", "clip.mp4", "video/mp4"),
    ],
)
def test_audio_and_video_arrive_as_file_links_with_their_names(ctx, m, name, msg_id, filename, ctype):
    known_user(ctx)
    run(ctx, load_fixture("zalo", "webhooks", f"{name}.json"))
    size = len({"audio/amr": AMR, "video/mp4": MP4}[ctype])
    assert fc_posts(m) == [
        as_user(
            [
                {
                    "file": {
                        "name": filename,
                        "url": media_url(ctx.settings, f"{FOLDER}/zalo/{msg_id}/0"),
                        "content_type": ctype,
                        "file_size_in_bytes": size,
                    }
                }
            ]
        )
    ]
    assert m.request_history[-1].url == f"{FC_API}/conversations/{CONV}/messages"


def test_copied_media_is_stored_byte_exact(ctx, m):
    known_user(ctx)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_file.json"))
    stored = ctx.media.get(f"{FOLDER}/zalo/d1b2c3d4e5f6a7b8c9d0/0")
    assert stored.data == PDF and stored.filename == "Báo giá tháng 11.pdf"


def test_first_contact_creates_the_user_and_a_conversation(ctx, m):
    m.get(
        f"{ZALO_API}/v3.0/oa/user/detail",
        json={
            "error": 0,
            "message": "Success",
            "data": {
                "user_id": USER,
                "display_name": "Minh Khánh",
                "avatar": "https://s120-ava-talk.zadn.vn/a.jpg",
                "avatars": {"240": "https://s240-ava-talk.zadn.vn/a.jpg"},
                "shared_info": {"phone": 84901234567, "name": "Real Name"},
            },
        },
    )
    m.get(f"{FC_API}/users", json={"users": []})
    m.post(f"{FC_API}/users", json={"id": FC_USER})
    m.post(f"{FC_API}/conversations", json={"conversation_id": CONV, "messages": [{"id": "m0"}]})
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    lookup, detail, create_user, create_conv = m.request_history
    assert json.loads(detail.qs["data"][0]) == {"user_id": USER} and detail.headers["access_token"] == "access-0"
    assert lookup.qs["reference_id"] == [reference_id(ctx.settings, USER).lower()]
    user = create_user.json()
    assert user["first_name"] == "Minh Khánh Zalo" and user["reference_id"] == f"zalo:388613280878808645:{USER}"
    assert user["avatar"] == {"url": "https://s240-ava-talk.zadn.vn/a.jpg"}
    props = {p["name"]: p["value"] for p in user["properties"]}
    assert props["external_user_provider"] == "zalo" and props["zalo_user_id"] == USER
    assert set(props) == {"external_user_provider", "zalo_user_id", "last_seen", "created", "zalo_oa"}
    assert props["zalo_oa"] == "OA 388613280878808645"  # the default connection, named by no one: its OA id
    assert "84901234567" not in json.dumps(user) and "Real Name" not in json.dumps(user)
    assert create_conv.json() == {
        "channel_id": CHANNEL,
        "users": [{"id": FC_USER}],
        "messages": [as_user([{"text": {"content": "Xin chào, tôi cần hỗ trợ đơn hàng #123 🙏"}}])],
    }
    assert ctx.mapping.zalo_user(USER)["fc_conversation_id"] == CONV


def test_a_connection_with_a_group_assigns_its_new_conversations_to_it(settings, redis, m):
    from dataclasses import replace

    from workers.context import WorkerContext

    ctx = WorkerContext(replace(settings, freshchat_group_id="c2937604-0a08-43c2-a09c-e77f5f565a0e"), redis)
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    m.post(f"{FC_API}/conversations", json={"conversation_id": CONV, "messages": [{"id": "m0"}]})
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    (create,) = [r for r in m.request_history if r.url == f"{FC_API}/conversations"]
    assert create.json() == {
        "channel_id": CHANNEL,
        "users": [{"id": FC_USER}],
        "messages": [as_user([{"text": {"content": "Xin chào, tôi cần hỗ trợ đơn hàng #123 🙏"}}])],
        "assigned_group_id": "c2937604-0a08-43c2-a09c-e77f5f565a0e",
    }


def test_existing_freshchat_user_is_reused_not_duplicated(ctx, m):
    m.get(f"{ZALO_API}/v3.0/oa/user/detail", json={"error": 0, "data": {"display_name": "A"}})
    m.get(
        f"{FC_API}/users",
        json={
            "users": [
                {"id": "other", "reference_id": "zalo:someone-else"},
                {"id": FC_USER, "reference_id": reference_id(ctx.settings, USER)},
            ]
        },
    )
    m.post(f"{FC_API}/conversations", json={"conversation_id": CONV})
    m.put(f"{FC_API}/users/{FC_USER}", status_code=200)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    assert not [r for r in m.request_history if r.method == "POST" and r.url == f"{FC_API}/users"]
    assert ctx.mapping.zalo_user(USER)["fc_user_id"] == FC_USER
    # the found user did not name this OA yet: it does now, with its whole property list
    (put,) = [r for r in m.request_history if r.method == "PUT"]
    props = {p["name"]: p["value"] for p in put.json()["properties"]}
    assert props["zalo_oa"] == "OA 388613280878808645" and props["zalo_user_id"] == USER


def test_profile_refused_by_zalo_still_creates_a_user(ctx, m):
    m.get(f"{ZALO_API}/v3.0/oa/user/detail", json={"error": -501, "message": "IP not inside Vietnam"})
    m.get(f"{FC_API}/users", json={"users": []})
    m.post(f"{FC_API}/users", json={"id": FC_USER})
    m.post(f"{FC_API}/conversations", json={"conversation_id": CONV})
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    assert m.request_history[2].json()["first_name"] == "User 197922 Zalo"  # lookup, detail, create


@pytest.mark.parametrize(
    "status,body",
    [
        (400, {"code": 400, "message": "Conversation is not the latest conversation"}),
        (404, {"code": 404, "message": "conversation not found"}),
    ],
)
def test_superseded_conversation_is_replaced_without_losing_the_message(ctx, m, status, body):
    known_user(ctx)
    m.post(f"{FC_API}/conversations/{CONV}/messages", status_code=status, json=body)
    m.post(f"{FC_API}/conversations", json={"conversation_id": "new-conv"})
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    assert m.request_history[-1].json()["messages"][0]["message_parts"][0]["text"]["content"].startswith("Xin chào")
    assert ctx.mapping.zalo_user(USER)["fc_conversation_id"] == "new-conv"
    assert ctx.mapping.conversation("new-conv")["zalo_user_id"] == USER


def test_failed_media_copy_still_delivers_with_the_original_link(ctx, m):
    known_user(ctx)
    m.get(f"{CDN}/img/p1.jpg", status_code=404)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json"))
    parts = fc_posts(m)[0]["message_parts"]
    assert parts[0] == {"text": {"content": "Ảnh sản phẩm bị lỗi"}}
    assert "could not be copied" in parts[1]["text"]["content"]
    assert parts[1]["text"]["content"].endswith(f"{CDN}/img/p1.jpg]")


def test_console_message_becomes_a_private_note(ctx, m):
    known_user(ctx)
    run(ctx, load_fixture("zalo", "webhooks", "oa_send_text__console_admin.json"), received_at=now_ms() - 5000)
    assert fc_posts(m) == [
        {
            "message_parts": [
                {"text": {"content": "[Sent in Zalo's OA chat by admin 7788990011]"}},
                {"text": {"content": "Chào anh, shop đã nhận được yêu cầu."}},
            ],
            "message_type": "private",
            "actor_type": "system",
            "user_id": FC_USER,
        }
    ]


@pytest.mark.parametrize("name", ["user_send_text", "user_send_image"])
def test_an_item_queued_without_its_event_kind_is_still_relayed(ctx, m, name):
    """Items queued by the version before events were typed: the worker classifies them."""
    known_user(ctx)
    assert run(ctx, load_fixture("zalo", "webhooks", f"{name}.json"), typed=False) == "empty"
    assert fc_posts(m) == [as_user(expected_parts(ctx.settings, name))]


def test_a_console_message_queued_without_its_event_kind_is_still_a_private_note(ctx, m):
    known_user(ctx)
    run(
        ctx,
        load_fixture("zalo", "webhooks", "oa_send_text__console_admin.json"),
        received_at=now_ms() - 5000,
        typed=False,
    )
    assert [p["message_type"] for p in fc_posts(m)] == ["private"]


def test_console_echo_of_our_own_send_is_dropped(ctx, m):
    known_user(ctx)
    ctx.mapping.remember_sent("31b2c3d4e5f6a7b8c9d0")
    run(ctx, load_fixture("zalo", "webhooks", "oa_send_text__console_admin.json"))
    assert fc_posts(m) == []


def test_late_redelivery_is_relayed_once_and_marked_with_its_send_time(ctx, m):
    known_user(ctx)
    ctx.mapping.set_zalo_user(USER, last_ts="1700000100000")
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    posts = fc_posts(m)
    assert len(posts) == 1
    assert posts[0]["message_parts"][0] == {
        "text": {"content": "[Delivered late - originally sent 05:13 15/11/2023 (UTC+7)]"}
    }


def test_a_text_run_again_finds_its_post_read_with_the_users_record_and_posts_nothing(ctx, m):
    """A re-run (a lease lost after the post was recorded) reads the post's record in the round
    trip of the user's hash: found there, nothing is posted and nothing read again."""
    known_user(ctx)
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    item = Item(id="zalo:1", kind="zalo", payload=event, received_at=now_ms(), event="user_send_text")
    relay_user_message(ctx, item, lambda: None)
    with RoundTrips() as trips:
        relay_user_message(ctx, item, lambda: None)
    assert len(fc_posts(m)) == 1
    assert [who.split()[0] for who in trips.made_by] == ["MGET"]  # with the HGETALL, one round trip
    assert "inbound.py:_sender_and_post" in trips.made_by[0]


def test_freshchat_outage_keeps_the_message_at_the_head_of_the_lane(ctx, m):
    known_user(ctx)
    m.post(f"{FC_API}/conversations/{CONV}/messages", [{"status_code": 503}, {"json": {"id": "ok"}}])
    assert run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json")) == "deferred"
    assert ctx.lanes.head(f"in:{USER}")[1].attempts == 1
    import time

    time.sleep(0.1)
    assert Drainer(ctx).drain(f"in:{USER}") == "empty"
    assert len(fc_posts(m)) == 2 and ctx.lanes.head(f"in:{USER}") is None


def test_a_millisecond_race_between_fresh_messages_is_not_marked_late(ctx, m):
    known_user(ctx)
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    event["timestamp"] = str(now_ms() - 5)
    ctx.mapping.set_zalo_user(USER, last_ts=str(now_ms()))
    run(ctx, event)
    assert fc_posts(m)[0]["message_parts"] == [{"text": {"content": "Xin chào, tôi cần hỗ trợ đơn hàng #123 🙏"}}]


def test_a_cdn_blip_is_retried_before_falling_back_to_the_original_link(ctx, m):
    known_user(ctx)
    m.get(f"{CDN}/img/p1.jpg", [{"status_code": 503}, {"status_code": 502}, {"status_code": 503}])
    lane = f"in:{USER}"
    assert run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json")) == "deferred"
    import time

    time.sleep(0.1)
    assert Drainer(ctx).drain(lane) == "deferred" and fc_posts(m) == []
    time.sleep(0.1)
    assert Drainer(ctx).drain(lane) == "empty"
    assert "could not be copied (HTTP 503" in fc_posts(m)[0]["message_parts"][1]["text"]["content"]


def test_a_cdn_blip_that_recovers_delivers_the_copy(ctx, m):
    known_user(ctx)
    m.get(f"{CDN}/img/p1.jpg", [{"status_code": 503}, {"content": PNG}])
    run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json"))
    import time

    time.sleep(0.1)
    Drainer(ctx).drain(f"in:{USER}")
    assert fc_posts(m)[0]["message_parts"][1] == {
        "image": {"url": media_url(ctx.settings, f"{FOLDER}/zalo/a1b2c3d4e5f6a7b8c9d0/0")}
    }


# --- FreshChat refuses a part: the same message goes again, plainer, and never vanishes -----------

IMAGE_MSG = "a1b2c3d4e5f6a7b8c9d0"
CAPTION = {"text": {"content": "Ảnh sản phẩm bị lỗi"}}


def refused() -> dict:
    body = load_fixture("freshchat", "answers", "message_refused__image_empty_content.json")
    return {"status_code": 400, "json": body}


def image_forms(settings) -> list[list[dict]]:
    """The image message as built, with the image as a file part, and with a text link."""
    url = media_url(settings, f"{FOLDER}/zalo/{IMAGE_MSG}/0")
    return [
        [CAPTION, {"image": {"url": url}}],
        [
            CAPTION,
            {"file": {"name": "p1.jpg", "url": url, "content_type": "image/png", "file_size_in_bytes": len(PNG)}},
        ],
        [CAPTION, {"text": {"content": f"[image] {url}"}}],
    ]


def test_a_refused_image_is_resent_as_a_file_then_as_a_text_link(ctx, m, caplog):
    known_user(ctx)
    m.post(f"{FC_API}/conversations/{CONV}/messages", [refused(), refused(), {"json": {"id": "fc-msg-9"}}])
    caplog.set_level("WARNING", logger="relay.inbound")
    assert run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json")) == "empty"
    assert fc_posts(m) == [as_user(parts) for parts in image_forms(ctx.settings)]
    assert ctx.effects.recorded(f"fc:msg:{IMAGE_MSG}") == {
        "id": "fc-msg-9",
        "conversation_id": CONV,
        "text": "Ảnh sản phẩm bị lỗi [image]",
    }
    degraded = [r for r in caplog.records if r.getMessage() == "relay.degraded"]
    assert [(r.refused, r.now_sent) for r in degraded] == [
        ("as built", "images as file parts"),
        ("images as file parts", "media as text links"),
    ]
    assert all("IMAGE_EMPTY_CONTENT" in r.reason and r.msg_id == IMAGE_MSG for r in degraded)
    assert ctx.dead_letters.count() == 0


def test_an_image_accepted_as_a_file_is_not_sent_again(ctx, m):
    known_user(ctx)
    m.post(f"{FC_API}/conversations/{CONV}/messages", [refused(), {"json": {"id": "fc-msg-9"}}])
    run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json"))
    run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json"))  # a duplicate job: recorded
    assert fc_posts(m) == [as_user(parts) for parts in image_forms(ctx.settings)[:2]]


def test_a_new_conversation_is_opened_with_the_plainer_message(ctx, m):
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.seen_now(USER)
    m.post(f"{FC_API}/conversations", [refused(), {"json": {"conversation_id": CONV, "messages": [{"id": "m0"}]}}])
    run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json"))
    assert fc_posts(m) == [
        {"channel_id": CHANNEL, "users": [{"id": FC_USER}], "messages": [as_user(parts)]}
        for parts in image_forms(ctx.settings)[:2]
    ]
    assert ctx.mapping.zalo_user(USER)["fc_conversation_id"] == CONV


def test_a_gone_conversation_is_not_posted_to_again_while_degrading(ctx, m):
    known_user(ctx)
    m.post(f"{FC_API}/conversations/{CONV}/messages", status_code=404, json={"code": 404, "message": "not found"})
    m.post(f"{FC_API}/conversations", [refused(), {"json": {"conversation_id": "new-conv"}}])
    run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json"))
    image, as_file, _ = image_forms(ctx.settings)
    assert [r.url for r in m.request_history if r.method == "POST"] == [
        f"{FC_API}/conversations/{CONV}/messages",
        f"{FC_API}/conversations",
        f"{FC_API}/conversations",
    ]
    assert fc_posts(m)[1:] == [
        {"channel_id": CHANNEL, "users": [{"id": FC_USER}], "messages": [as_user(parts)]} for parts in (image, as_file)
    ]
    assert ctx.mapping.zalo_user(USER)["fc_conversation_id"] == "new-conv"


def test_refused_even_as_plain_text_becomes_a_dead_letter(ctx, m):
    known_user(ctx)
    m.post(f"{FC_API}/conversations/{CONV}/messages", [refused(), refused(), refused()])
    assert run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json")) == "empty"
    *tries, note = fc_posts(m)
    assert tries == [as_user(parts) for parts in image_forms(ctx.settings)]
    [dead] = ctx.dead_letters.list()
    assert "refused even the plainest form" in dead["reason"] and "IMAGE_EMPTY_CONTENT" in dead["reason"]
    assert ctx.effects.recorded(f"fc:msg:{IMAGE_MSG}") is None
    assert note["message_type"] == "private" and note["actor_type"] == "system"
    text = note["message_parts"][0]["text"]["content"]
    assert text.startswith(
        "⚠️ A message from this Zalo user could not be shown here.\nWhy: permanent: FreshChat refused"
    )
    assert f"dead letter zalo:{IMAGE_MSG};" in text


def test_a_refused_text_is_not_reposted_unchanged(ctx, m):
    known_user(ctx)
    m.post(f"{FC_API}/conversations/{CONV}/messages", status_code=400, json={"code": 400, "message": "bad"})
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    posts = fc_posts(m)
    assert len(posts) == 2 and ctx.dead_letters.count() == 1  # one try, then the dead-letter note
    assert posts[1]["message_type"] == "private"


def test_an_auth_refusal_is_not_degraded(ctx, m):
    known_user(ctx)
    m.post(f"{FC_API}/conversations/{CONV}/messages", status_code=401, json={"code": 401, "message": "token"})
    run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json"))
    tried, note = fc_posts(m)
    assert tried == as_user(image_forms(ctx.settings)[0]) and ctx.dead_letters.count() == 1
    assert note["message_type"] == "private"


# --- oa_send_*: an echo only when our send record names it ------------------------------------------

OTHER_TOOL_MSG = "51b2c3d4e5f6a7b8c9d0"
OTHER_TOOL_TEXT = "Cảm ơn bạn đã quan tâm! Shop sẽ phản hồi trong giờ làm việc (8:00-21:00)."


def test_a_message_sent_by_another_tool_becomes_a_private_note(ctx, m):
    known_user(ctx)
    run(ctx, load_fixture("zalo", "webhooks", "oa_send_text__other_tool.json"), received_at=now_ms() - 5000)
    assert fc_posts(m) == [
        {
            "message_parts": [
                {"text": {"content": "[Sent by the OA outside this bridge (another tool or an automatic message)]"}},
                {"text": {"content": OTHER_TOOL_TEXT}},
            ],
            "message_type": "private",
            "actor_type": "system",
            "user_id": FC_USER,
        }
    ]


def test_an_unknown_echo_within_the_grace_is_looked_at_again_later(ctx, m):
    known_user(ctx)
    received = now_ms() - 1000
    event = load_fixture("zalo", "webhooks", "oa_send_text__other_tool.json")
    assert run(ctx, event, received_at=received) == "deferred"
    assert fc_posts(m) == []
    _, item = ctx.lanes.head(f"in:{USER}")
    assert item.last_error == "echo not matched yet"
    due = ctx.redis.zscore(keys.DUE, f"in:{USER}")
    assert received + 3000 - 50 <= due <= received + 3000 + 500  # the rest of the grace, not a quick backoff


def test_our_own_send_recorded_after_its_echo_arrived_is_dropped(ctx, m):
    known_user(ctx)
    ctx.mapping.remember_sent(OTHER_TOOL_MSG, text="Dạ shop gửi bạn")
    assert run(ctx, load_fixture("zalo", "webhooks", "oa_send_text__other_tool.json")) == "empty"
    assert fc_posts(m) == []


def test_a_send_record_written_by_the_old_code_still_marks_an_echo(ctx, m):
    known_user(ctx)
    ctx.redis.set(keys.DEFAULT_KEYS.sent(OTHER_TOOL_MSG), "1")
    run(ctx, load_fixture("zalo", "webhooks", "oa_send_text__other_tool.json"), received_at=now_ms() - 5000)
    assert fc_posts(m) == [] and ctx.mapping.sent_text(OTHER_TOOL_MSG) == ""


# --- every attachment keeps its content ----------------------------------------------------------------


def test_an_unknown_attachment_type_is_copied_and_sent_as_a_link(ctx, m):
    known_user(ctx)
    m.get(f"{CDN}/img/p2.jpg", content=PNG, headers={"Content-Type": "image/jpeg"})
    run(ctx, load_fixture("zalo", "webhooks", "user_send_image__photo_type.json"))
    link = media_url(ctx.settings, f"{FOLDER}/zalo/61b2c3d4e5f6a7b8c9d0/0")
    assert fc_posts(m) == [
        as_user([{"text": {"content": "Hàng giao bị móp"}}, {"text": {"content": f"[photo] {link}"}}])
    ]
    assert ctx.media.get(f"{FOLDER}/zalo/61b2c3d4e5f6a7b8c9d0/0").data == PNG


def test_an_unknown_attachment_that_cannot_be_copied_keeps_zalos_link(ctx, m):
    known_user(ctx)
    m.get(f"{CDN}/audio/voice456.amr", status_code=404)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_audio__voice_type.json"))
    assert fc_posts(m) == [as_user([{"text": {"content": f"[voice] {CDN}/audio/voice456.amr"}}])]


def test_an_unknown_attachment_without_a_url_says_what_it_was(ctx, m):
    known_user(ctx)
    event = load_fixture("zalo", "webhooks", "user_send_audio__voice_type.json")
    event["message"]["attachments"][0]["payload"] = {"id": "v-77", "description": "0:12"}
    run(ctx, event)
    assert fc_posts(m) == [as_user([{"text": {"content": "[voice] v-77 0:12"}}])]


def test_coordinates_in_message_location_read_like_an_attachments(ctx, m):
    known_user(ctx)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_location__message_location.json"))
    assert fc_posts(m) == [as_user(expected_parts(ctx.settings, "user_send_location"))]


def test_a_business_card_named_only_in_its_title(ctx, m):
    known_user(ctx)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_business_card__title_only.json"))
    assert fc_posts(m) == [as_user([{"text": {"content": "👤 Business card: Trần Thị C\nPhone: 0912345678"}}])]


def test_a_business_card_named_in_a_plain_description(ctx, m):
    known_user(ctx)
    event = load_fixture("zalo", "webhooks", "user_send_business_card__title_only.json")
    event["message"]["attachments"][0]["payload"] = {"description": "Trần Thị C"}
    run(ctx, event)
    assert fc_posts(m) == [as_user([{"text": {"content": "👤 Business card: Trần Thị C"}}])]


# --- a reply shows what it answers -------------------------------------------------------------------

REPLY = {"text": {"content": "Vâng, size M ạ"}}


def test_a_reply_to_the_users_own_relayed_message_quotes_it(ctx, m):
    known_user(ctx)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text__quote.json"))
    quote = {"text": {"content": "> Xin chào, tôi cần hỗ trợ đơn hàng #123 🙏"}}
    # the text quote stays, and FreshChat links the reply to the relayed message it answers
    assert fc_posts(m)[1] == {**as_user([quote, REPLY]), "in_reply_to": {"message_id": "fc-msg-1"}}


def test_a_reply_to_a_message_the_bridge_sent_quotes_it(ctx, m):
    known_user(ctx)
    head = "Dạ áo còn size M và L.\nBạn lấy size nào ạ? "
    ctx.mapping.remember_sent("96d3cdf3af150460909", text=head + "x" * 200)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text__quote.json"))
    quoted = "> Dạ áo còn size M và L.\n> Bạn lấy size nào ạ? " + "x" * (100 - len(head))  # 100 characters
    assert fc_posts(m) == [as_user([{"text": {"content": quoted}}, REPLY])]


@pytest.mark.parametrize("sent_record", [None, "1"])
def test_a_reply_to_an_unknown_message_is_marked_as_a_reply(ctx, m, sent_record):
    known_user(ctx)
    if sent_record:
        ctx.redis.set(keys.DEFAULT_KEYS.sent("96d3cdf3af150460909"), sent_record)  # written before texts were kept
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text__quote.json"))
    assert fc_posts(m) == [as_user([{"text": {"content": "↩ Reply to an earlier message"}}, REPLY])]


def test_a_send_record_keeps_a_truthy_value_for_an_empty_text(ctx):
    ctx.mapping.remember_sent("z-1")
    assert ctx.mapping.is_sent_by_us("z-1") and ctx.mapping.sent_text("z-1") == ""
    assert ctx.mapping.sent_text("z-2") is None


# -- what agents read, in Vietnamese (agent_language "vi") ---------------------------------------


@pytest.fixture
def vi_agents(ctx, settings):
    from dataclasses import replace

    ctx.settings = replace(settings, agent_language="vi")
    known_user(ctx)


@pytest.mark.parametrize(
    "name,content",
    [
        (
            "user_send_location",
            "📍 Vị trí: Cửa hàng Quận 10\n10.7642473, 106.6564314\n"
            "https://www.google.com/maps/search/?api=1&query=10.7642473,106.6564314",
        ),
        ("user_send_business_card", "👤 Danh thiếp: Nguyễn Văn B\nĐiện thoại: 0901234567"),
    ],
)
def test_location_and_card_lines_in_vietnamese(ctx, m, vi_agents, name, content):
    run(ctx, load_fixture("zalo", "webhooks", f"{name}.json"))
    assert fc_posts(m) == [as_user([{"text": {"content": content}}])]


def test_console_late_and_quote_marks_in_vietnamese(ctx, m, vi_agents):
    run(ctx, load_fixture("zalo", "webhooks", "oa_send_text__console_admin.json"), received_at=now_ms() - 5000)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text__quote.json"))
    ctx.mapping.set_zalo_user(USER, last_ts="1800000000000")
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    note, reply, late = (post["message_parts"][0]["text"]["content"] for post in fc_posts(m))
    assert note == "[Quản trị viên 7788990011 gửi trong khung chat OA của Zalo]"
    assert reply == "↩ Trả lời một tin nhắn trước đó"
    assert late == "[Đến muộn - gửi lúc 05:13 15/11/2023 (UTC+7)]"


def test_a_failed_copy_in_vietnamese(ctx, m, vi_agents):
    m.get(f"{CDN}/img/p1.jpg", status_code=404)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json"))
    line = fc_posts(m)[0]["message_parts"][1]["text"]["content"]
    assert line == (
        f"[Không sao chép được ảnh ({CDN}/img/p1.jpg trả lời HTTP 404); "
        f"liên kết gốc của Zalo, hết hạn sau khoảng 7 ngày: {CDN}/img/p1.jpg]"
    )


def test_a_dead_letter_note_reads_wholly_in_vietnamese(ctx, m, vi_agents):
    """The reason the worker wrote in English reaches Vietnamese agents in Vietnamese; only
    FreshChat's own word (IMAGE_EMPTY_CONTENT) and the path stay as they are."""
    m.post(f"{FC_API}/conversations/{CONV}/messages", [refused(), refused(), refused(), {"json": {"id": "n-1"}}])
    assert run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json")) == "empty"
    note = m.request_history[-1]
    assert (note.method, note.url) == ("POST", f"{FC_API}/conversations/{CONV}/messages")
    assert note.headers["Authorization"] == f"Bearer {ctx.settings.freshchat_api_key}"
    assert note.json() == {
        "message_parts": [
            {
                "text": {
                    "content": "⚠️ Một tin nhắn của người dùng Zalo này không hiển thị được ở đây.\n"
                    "Lý do: không thể thử lại: FreshChat từ chối cả dạng tin đơn giản nhất: FreshChat trả lời "
                    f"HTTP 400 cho /conversations/{CONV}/messages: IMAGE_EMPTY_CONTENT\n"
                    f"Tin nhắn đã được lưu lại (mã zalo:{IMAGE_MSG}); quản trị viên có thể gửi lại."
                }
            }
        ],
        "message_type": "private",
        "actor_type": "system",
    }


def test_an_image_sent_as_a_link_is_named_in_vietnamese(ctx, m, vi_agents):
    m.post(f"{FC_API}/conversations/{CONV}/messages", [refused(), refused(), {"json": {"id": "fc-msg-9"}}])
    run(ctx, load_fixture("zalo", "webhooks", "user_send_image.json"))
    url = media_url(ctx.settings, f"{FOLDER}/zalo/{IMAGE_MSG}/0")
    assert fc_posts(m)[-1] == as_user([CAPTION, {"text": {"content": f"[ảnh] {url}"}}])


def test_last_seen_is_refreshed_at_most_hourly_from_the_users_hash_written_with_the_messages_record(ctx, m):
    """Whether FreshChat's last_seen is due was a SET NX of a key of its own, a round trip after
    the record: it is the hash's `seen_at`, read with the user, written with the record."""
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.link_conversation(USER, CONV)
    ctx.redis.hset(keys.DEFAULT_KEYS.zalo_user(USER), "seen_at", int(time.time()) - 3601)
    m.put(f"{FC_API}/users/{FC_USER}", json={"id": FC_USER})
    text = load_fixture("zalo", "webhooks", "user_send_text.json")
    assert run(ctx, text) == "empty"
    assert [(r.method, r.url) for r in m.request_history] == [
        ("POST", f"{FC_API}/conversations/{CONV}/messages"),
        ("PUT", f"{FC_API}/users/{FC_USER}"),
    ]
    known = ctx.mapping.zalo_user(USER)
    assert time.time() - 5 < int(known["seen_at"]) <= time.time()
    assert known["last_ts"] == str(text["timestamp"]) and known["last_msg_id"] == text["message"]["msg_id"]
    assert not ctx.redis.exists(keys.DEFAULT_KEYS.last_seen(USER))
    later = {**text, "timestamp": str(int(text["timestamp"]) + 1000), "message": {**text["message"], "msg_id": "m2"}}
    assert run(ctx, later) == "empty"
    assert [r.method for r in m.request_history] == ["POST", "PUT", "POST"]  # within the hour: no PUT
    assert ctx.mapping.zalo_user(USER)["last_msg_id"] == "m2"
