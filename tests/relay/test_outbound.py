"""FreshChat -> Zalo: the exact Zalo requests for every kind of agent reply."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import requests
import requests_mock

from app.bridge.keys import DEFAULT_KEYS, person_folder
from app.bridge.lanes import Item, now_ms
from app.media.links import media_url
from sandbox.helpers import (
    FC_API,
    GIF,
    PDF,
    PNG,
    ZALO_API,
    ZALO_OAUTH,
    load_fixture,
    partners_answer_probes,
    post_freshchat,
)
from workers.drain import Drainer

USER = "246845883529197922"
FOLDER = person_folder(USER)  # where copies of this person's media are kept
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
AGENT = "1b8d2418-4f6b-4b0e-9d1c-7a5e2f3c4d5e"
ASSETS = "https://fc-assets.example.com"
CS = f"{ZALO_API}/v3.0/oa/message/cs"
BIG_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * (1024 * 1024 + 10)
ZIP = b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 100


def agent_message(msg_id: str, parts: list[dict], **extra) -> dict:
    message = {
        "id": msg_id,
        "conversation_id": CONV,
        "actor_type": "agent",
        "actor_id": AGENT,
        "user_id": FC_USER,
        "message_parts": parts,
        **extra,
    }
    return {
        "actor": {"actor_type": "agent", "actor_id": AGENT},
        "action": "message_create",
        "action_time": "2026-11-25T10:00:00.000Z",
        "data": {"message": message},
    }


def run(ctx, event: dict, typed: bool = True) -> str:
    """Queue the event as the webhook does (with its kind, or without it as older versions did)
    and drain its lane once."""
    from app.integrations.freshchat.schemas import conversation_id, dedupe_id, to_event

    lane = f"out:{conversation_id(event)}"
    ctx.lanes.accept(
        lane,
        Item(
            id=f"freshchat:{dedupe_id(event)}",
            kind="freshchat",
            payload=event,
            received_at=now_ms(),
            event=to_event(event).kind if typed else "",
        ),
    )
    return Drainer(ctx).drain(lane)


def drain_until_done(ctx, lane: str = f"out:{CONV}", rounds: int = 20) -> None:
    for _ in range(rounds):
        if Drainer(ctx).drain(lane) == "empty" and ctx.lanes.head(lane) is None:
            return
        time.sleep(0.06)
    raise AssertionError("lane did not drain")


def sent(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.url == CS]


def ok(message_id: str = "zmsg-1") -> dict:
    return {"json": {"error": 0, "message": "Success", "data": {"message_id": message_id}}}


@pytest.fixture
def m(ctx, public_dns):
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.link_conversation(USER, CONV)
    with requests_mock.Mocker() as mock:
        mock.post(CS, **ok())
        mock.post(f"{ZALO_API}/v2.0/oa/upload/image", json={"error": 0, "data": {"attachment_id": "att-img"}})
        mock.post(f"{ZALO_API}/v2.0/oa/upload/gif", json={"error": 0, "data": {"attachment_id": "att-gif"}})
        mock.post(f"{ZALO_API}/v2.0/oa/upload/file", json={"error": 0, "data": {"token": "file-token"}})
        mock.post(f"{FC_API}/conversations/{CONV}/messages", json={"id": "note-1"})
        partners_answer_probes(mock)
        yield mock


def text_of(request) -> str:
    return request.json()["message"]["text"]


def test_short_text_is_one_cs_message(ctx, m):
    run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_text.json"))
    assert sent(m) == [{"recipient": {"user_id": USER}, "message": {"text": "Chào anh, em kiểm tra đơn hàng ngay ạ."}}]
    assert m.request_history[0].headers["access_token"] == "access-0"
    assert ctx.mapping.is_sent_by_us("zmsg-1")


@pytest.mark.parametrize("length", [1999, 2000])
def test_text_up_to_2000_characters_goes_as_text(ctx, m, length):
    text = ("Xin chào 😀 " * 400)[:length]
    run(ctx, agent_message("m-2000", [{"text": {"content": text}}]))
    assert sent(m) == [{"recipient": {"user_id": USER}, "message": {"text": text}}]
    assert len(text.encode()) > 2000  # characters are counted, not bytes


LONG_LINES = {
    "vi": "📄 Toàn bộ tin nhắn ({length} ký tự): {link}",
    "en": "📄 Full message ({length} characters): {link}",
}


@pytest.mark.parametrize("language", ["vi", "en"])
@pytest.mark.parametrize("length", [2001, 50000])
def test_longer_text_becomes_a_txt_link_serving_the_exact_text(ctx, m, app, settings, length, language):
    ctx.settings = replace(settings, customer_language=language)
    text = ("Tiếng Việt có dấu 🇻🇳 " * 3000)[:length]
    run(ctx, agent_message("m-long", [{"text": {"content": text}}]))
    [body] = sent(m)
    link = media_url(ctx.settings, f"{FOLDER}/fc/m-long/0")
    preview = text[:300].rstrip()
    assert body["message"]["text"] == f"{preview}…\n\n" + LONG_LINES[language].format(length=length, link=link)
    assert len(body["message"]["text"]) <= 2000
    resp = app.test_client().get(link.removeprefix(ctx.settings.public_base_url))
    assert resp.status_code == 200 and resp.data == text.encode("utf-8")
    assert ".txt" in resp.headers["Content-Disposition"]


def test_png_up_to_1mb_is_uploaded_and_sent_as_an_image(ctx, m):
    m.get(f"{ASSETS}/img/reply.png", content=PNG, headers={"Content-Type": "image/png"})
    run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_image.json"))
    upload = next(r for r in m.request_history if r.url.endswith("/upload/image"))
    assert b'name="file"' in upload.body and PNG in upload.body
    assert sent(m) == [
        {
            "recipient": {"user_id": USER},
            "message": {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "media",
                        "elements": [{"media_type": "image", "attachment_id": "att-img"}],
                    },
                }
            },
        }
    ]


def test_jpeg_over_1mb_goes_as_a_link(ctx, m, app):
    m.get(f"{ASSETS}/img/big.jpg", content=BIG_JPEG)
    run(ctx, agent_message("m-big", [{"image": {"url": f"{ASSETS}/img/big.jpg"}}]))
    assert not [r for r in m.request_history if "/upload/" in r.url]
    link = media_url(ctx.settings, f"{FOLDER}/fc/m-big/0")
    assert text_of(m.request_history[-1]) == f"🖼 Ảnh big.jpg: {link}"
    assert app.test_client().get(link.removeprefix(ctx.settings.public_base_url)).data == BIG_JPEG


def test_gif_is_uploaded_with_its_size(ctx, m):
    m.get(f"{ASSETS}/img/a.gif", content=GIF)
    run(ctx, agent_message("m-gif", [{"image": {"url": f"{ASSETS}/img/a.gif"}}]))
    element = sent(m)[0]["message"]["attachment"]["payload"]["elements"][0]
    assert element == {"media_type": "gif", "attachment_id": "att-gif", "width": 2, "height": 3}


def test_pdf_is_uploaded_and_sent_as_a_file(ctx, m):
    m.get(f"{ASSETS}/files/hoa-don.pdf", content=PDF)
    run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_file.json"))
    assert sent(m) == [
        {
            "recipient": {"user_id": USER},
            "message": {"attachment": {"type": "file", "payload": {"token": "file-token"}}},
        }
    ]


@pytest.mark.parametrize("language,line", [("vi", "📎 Tệp logs.zip: {link}"), ("en", "📎 logs.zip: {link}")])
def test_zip_goes_as_a_link(ctx, m, settings, language, line):
    ctx.settings = replace(settings, customer_language=language)
    m.get(f"{ASSETS}/files/logs.zip", content=ZIP)
    run(ctx, agent_message("m-zip", [{"file": {"name": "logs.zip", "url": f"{ASSETS}/files/logs.zip"}}]))
    assert text_of(m.request_history[-1]) == line.format(link=media_url(ctx.settings, f"{FOLDER}/fc/m-zip/0"))


def test_text_image_and_file_parts_go_out_in_order(ctx, m):
    m.get(f"{ASSETS}/img/reply.png", content=PNG)
    m.get(f"{ASSETS}/files/hoa-don.pdf", content=PDF)
    run(
        ctx,
        agent_message(
            "m-multi",
            [
                {"text": {"content": "Here you go"}},
                {"image": {"url": f"{ASSETS}/img/reply.png"}},
                {"file": {"name": "hoa-don.pdf", "url": f"{ASSETS}/files/hoa-don.pdf"}},
            ],
        ),
    )
    kinds = [b["message"].get("text") or b["message"]["attachment"]["type"] for b in sent(m)]
    assert kinds == ["Here you go", "template", "file"]


def test_legacy_payload_is_relayed(ctx, m):
    run(ctx, load_fixture("freshchat", "webhooks", "message_create__legacy_msg_parts.json"))
    assert sent(m) == [{"recipient": {"user_id": USER}, "message": {"text": "Legacy hello"}}]


@pytest.mark.parametrize("name", ["message_create__private_note", "message_create__user_actor"])
def test_private_notes_and_user_posts_send_nothing(ctx, m, client, name):
    post_freshchat(client, load_fixture("freshchat", "webhooks", f"{name}.json"))
    assert Drainer(ctx).drain(f"out:{CONV}") == "busy-or-not-due" and sent(m) == []


def test_duplicate_webhook_sends_once(ctx, m, client):
    for _ in range(3):
        post_freshchat(client, load_fixture("freshchat", "webhooks", "message_create__agent_text.json"))
    drain_until_done(ctx)
    assert len(sent(m)) == 1


def test_rerun_after_a_crash_skips_parts_already_sent(ctx, m):
    event = agent_message("m-rerun", [{"text": {"content": "one"}}, {"text": {"content": "two"}}])
    ctx.effects.once("zalo:out:m-rerun:0", lambda: "sent-before-crash")
    run(ctx, event)
    assert [b["message"]["text"] for b in sent(m)] == ["two"]


@pytest.mark.parametrize(
    "code,advice", [(-213, "open a chat with the OA"), (-230, "last 7 days"), (-320, "Zalo Cloud Account")]
)
def test_permanent_zalo_errors_become_a_private_note_without_retry(ctx, m, code, advice):
    m.post(CS, json={"error": code, "message": "refused"})
    assert run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_text.json")) == "empty"
    assert len(sent(m)) == 1
    note = m.request_history[-1]
    assert note.url == f"{FC_API}/conversations/{CONV}/messages"
    body = note.json()
    assert body["message_type"] == "private" and body["actor_type"] == "agent" and body["actor_id"] == AGENT
    assert f"error {code}" in body["message_parts"][0]["text"]["content"]
    assert advice in body["message_parts"][0]["text"]["content"]
    message_id = load_fixture("freshchat", "webhooks", "message_create__agent_text.json")["data"]["message"]["id"]
    assert last_errors(ctx) == [{"lane": "", "item": message_id, "error": f"Zalo error {code}: refused"}]


@pytest.mark.parametrize("failure", [{"json": {"error": -32, "message": "limit"}}, {"status_code": 500}])
def test_rate_limit_and_5xx_retry_until_one_delivery(ctx, m, failure, monkeypatch):
    monkeypatch.setattr("app.integrations.zalo.errors._seconds_to_next_minute", lambda: 0.05)
    m.post(CS, [failure, failure, ok()])
    assert run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_text.json")) == "deferred"
    drain_until_done(ctx)
    assert len(sent(m)) == 3
    assert ctx.redis.get(DEFAULT_KEYS.done("zalo:out:a834cd45-0000-4000-8000-000000000001:0")) == b'"zmsg-1"'


def test_expired_token_refreshes_once_then_retries(ctx, m):
    m.post(CS, [{"json": {"error": -216, "message": "Access token is invalid"}}, ok()])
    m.post(
        f"{ZALO_OAUTH}/v4/oa/access_token",
        json={"access_token": "access-1", "refresh_token": "refresh-1", "expires_in": "90000"},
    )
    run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_text.json"))
    refresh = next(r for r in m.request_history if r.url.startswith(ZALO_OAUTH))
    assert refresh.headers["secret_key"] == "app-secret-example"
    assert dict(x.split("=") for x in refresh.text.split("&")) == {
        "refresh_token": "refresh-0",
        "app_id": "360846524940903967",
        "grant_type": "refresh_token",
    }
    assert [r.headers["access_token"] for r in m.request_history if r.url == CS] == ["access-0", "access-1"]
    assert last_errors(ctx) == [
        {"lane": "", "item": "", "error": "Zalo error -216: Access token is invalid; refreshing the token"}
    ]


def last_errors(ctx) -> list[dict]:
    """The connection's "last errors" (operators' status, the sandbox panel), without their time."""
    entries = [json.loads(e) for e in ctx.redis.lrange(DEFAULT_KEYS.errors, 0, -1)]
    return [{k: v for k, v in e.items() if k != "at"} for e in entries]


@pytest.mark.parametrize("enabled", [True, False])
def test_resolve_notification_on_and_off(ctx, m, enabled, settings):
    ctx.settings = replace(settings, resolve_notification=enabled, resolve_notification_text="Cảm ơn! Thanks!")
    run(ctx, load_fixture("freshchat", "webhooks", "conversation_resolution.json"))
    assert sent(m) == ([{"recipient": {"user_id": USER}, "message": {"text": "Cảm ơn! Thanks!"}}] if enabled else [])
    assert ctx.mapping.conversation(CONV)["status"] == "resolved"


@pytest.mark.parametrize(
    "language,text",
    [
        (
            "vi",
            "Cảm ơn bạn đã liên hệ! Yêu cầu của bạn đã được xử lý xong. "
            "/ Thank you for contacting us! This conversation has been resolved.",
        ),
        (
            "en",
            "Thank you for contacting us! This conversation has been resolved. "
            "/ Cảm ơn bạn đã liên hệ! Yêu cầu của bạn đã được xử lý xong.",
        ),
    ],
)
def test_without_a_text_of_its_own_the_resolve_notification_is_bilingual_customer_language_first(
    ctx, m, settings, language, text
):
    ctx.settings = replace(settings, resolve_notification=True, customer_language=language)
    run(ctx, load_fixture("freshchat", "webhooks", "conversation_resolution.json"))
    assert sent(m) == [{"recipient": {"user_id": USER}, "message": {"text": text}}]


def test_unknown_conversation_falls_back_to_the_users_reference_id(ctx, m):
    m.get(f"{FC_API}/users/{FC_USER}", json={"id": FC_USER, "reference_id": f"zalo:388613280878808645:{USER}"})
    ctx.redis.delete(DEFAULT_KEYS.conversation(CONV))
    run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_text.json"))
    assert sent(m)[0]["recipient"] == {"user_id": USER}
    assert ctx.mapping.conversation(CONV)["zalo_user_id"] == USER


def test_conversation_of_another_channel_is_dropped(ctx, m):
    m.get(f"{FC_API}/users/{FC_USER}", json={"id": FC_USER, "reference_id": "web:visitor-1"})
    ctx.redis.delete(DEFAULT_KEYS.conversation(CONV))
    assert run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_text.json")) == "empty"
    assert sent(m) == []


def test_a_drain_job_goes_on_with_every_lane_that_is_due(ctx, m):
    """One RQ job claims lane after lane: no job (and its Redis bookkeeping) per message
    under load, and nothing due left behind."""
    from workers.context import set_worker_context
    from workers.drain import drain_due

    ctx.mapping.link_conversation("8100000000000000002", "conv-2")
    for event in (
        agent_message("m-1", [{"text": {"content": "first"}}]),
        agent_message("m-2", [{"text": {"content": "second"}}], conversation_id="conv-2"),
    ):
        ctx.lanes.accept(
            f"out:{event['data']['message']['conversation_id']}",
            Item(
                id=event["data"]["message"]["id"],
                kind="freshchat",
                payload=event,
                received_at=now_ms(),
                event="agent_message",
            ),
        )
    set_worker_context(ctx)
    try:
        assert drain_due() == 2
    finally:
        set_worker_context(None)
    assert [(b["recipient"]["user_id"], b["message"]["text"]) for b in sent(m)] == [
        (USER, "first"),
        ("8100000000000000002", "second"),
    ]
    assert ctx.lanes.due_count() == 0 and ctx.lanes.head("out:conv-2") is None


NOTES = f"{FC_API}/conversations/{CONV}/messages"


def notes(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.url == NOTES]


def note(text: str) -> dict:
    return {
        "message_parts": [{"text": {"content": text}}],
        "message_type": "private",
        "actor_type": "agent",
        "actor_id": AGENT,
    }


def test_system_message_queued_by_an_older_version_sends_nothing(ctx, m):
    """Queued before the webhook filtered them, without an event kind: the worker classifies it
    as the webhook now does, and drops it."""
    event = load_fixture("freshchat", "webhooks", "message_create__agent_system_reopened.json")
    assert run(ctx, event, typed=False) == "empty"
    assert sent(m) == [] and notes(m) == []


@pytest.mark.parametrize("name", ["message_create__agent_text", "conversation_resolution"])
def test_an_item_queued_without_its_event_kind_is_still_relayed(ctx, m, settings, name):
    """Items queued by the version before events were typed: the worker classifies them."""
    ctx.settings = replace(settings, resolve_notification=True, resolve_notification_text="Cảm ơn! Thanks!")
    assert run(ctx, load_fixture("freshchat", "webhooks", f"{name}.json"), typed=False) == "empty"
    text = {
        "message_create__agent_text": "Chào anh, em kiểm tra đơn hàng ngay ạ.",
        "conversation_resolution": "Cảm ơn! Thanks!",
    }[name]
    assert sent(m) == [{"recipient": {"user_id": USER}, "message": {"text": text}}]


def test_an_event_kind_this_worker_does_not_know_is_retried_not_dropped(ctx, m):
    """A newer version may queue kinds an older worker has no handler for (a rolling deploy)."""
    event = load_fixture("freshchat", "webhooks", "message_create__agent_text.json")
    ctx.lanes.accept(
        f"out:{CONV}",
        Item(id="freshchat:new", kind="freshchat", payload=event, received_at=now_ms(), event="agent_reaction"),
    )
    assert Drainer(ctx).drain(f"out:{CONV}") == "deferred" and sent(m) == []
    assert "no handler for freshchat event 'agent_reaction'" in ctx.lanes.head(f"out:{CONV}")[1].last_error


def test_bot_quick_replies_are_numbered_after_the_text(ctx, m):
    run(ctx, load_fixture("freshchat", "webhooks", "message_create__bot_quick_replies.json"))
    assert sent(m) == [{"recipient": {"user_id": USER}, "message": {"text": "Pick one\n\n1. Yes\n2. No"}}]


QUICK_REPLIES = [
    {"collection": {"sub_parts": [{"quick_reply_button": {"label": "Có"}}, {"quick_reply_button": {"label": "Không"}}]}}
]


def test_quick_replies_follow_the_last_text_part(ctx, m):
    m.get(f"{ASSETS}/img/reply.png", content=PNG)
    run(
        ctx,
        agent_message(
            "m-qr",
            [
                {"text": {"content": "Ảnh đây"}},
                {"image": {"url": f"{ASSETS}/img/reply.png"}},
                {"text": {"content": "Anh chọn nhé?"}},
            ],
            reply_parts=QUICK_REPLIES,
        ),
    )
    texts = [b["message"].get("text") for b in sent(m)]
    assert texts == ["Ảnh đây", None, "Anh chọn nhé?\n\n1. Có\n2. Không"]


def test_quick_replies_without_a_text_part_go_alone_after_the_attachment(ctx, m):
    m.get(f"{ASSETS}/img/reply.png", content=PNG)
    run(ctx, agent_message("m-qr-img", [{"image": {"url": f"{ASSETS}/img/reply.png"}}], reply_parts=QUICK_REPLIES))
    bodies = sent(m)
    assert [b["message"].get("text") for b in bodies] == [None, "1. Có\n2. Không"]
    assert bodies[0]["message"]["attachment"]["payload"]["elements"][0]["attachment_id"] == "att-img"


def test_text_with_quick_replies_over_2000_characters_becomes_a_txt_link(ctx, m, app):
    text = "x" * 1995
    run(ctx, agent_message("m-qr-long", [{"text": {"content": text}}], reply_parts=QUICK_REPLIES))
    [body] = sent(m)
    link = media_url(ctx.settings, f"{FOLDER}/fc/m-qr-long/0")
    assert body["message"]["text"].endswith(f"📄 Toàn bộ tin nhắn (2011 ký tự): {link}")
    served = app.test_client().get(link.removeprefix(ctx.settings.public_base_url)).data
    assert served == f"{text}\n\n1. Có\n2. Không".encode()


def test_sent_record_gets_the_first_100_characters_the_customer_got(ctx, m, monkeypatch):
    records = []
    monkeypatch.setattr(
        ctx.mapping, "remember_sent", lambda zalo_id, pipe=None, text="": records.append((zalo_id, text))
    )
    m.get(f"{ASSETS}/img/reply.png", content=PNG)
    long = "Dạ " * 1000
    run(
        ctx,
        agent_message(
            "m-snip",
            [
                {"text": {"content": "Chào anh"}},
                {"image": {"url": f"{ASSETS}/img/reply.png"}},
                {"text": {"content": long}},
            ],
        ),
    )
    assert records == [("zmsg-1", "Chào anh"), ("zmsg-1", "🖼 reply.png"), ("zmsg-1", long[:100])]


def test_file_without_url_is_noted_to_the_agent_and_the_rest_goes_on(ctx, m):
    assert run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_file_without_url.json")) == "empty"
    assert sent(m) == [{"recipient": {"user_id": USER}, "message": {"text": "Em gửi anh báo giá ạ."}}]
    assert notes(m) == [
        note(
            "⚠️ The file bao-gia.pdf was not sent to the Zalo user: "
            "FreshChat gave no download link for it. Please attach it again."
        )
    ]


def test_notes_to_agents_follow_agent_language(ctx, m, settings):
    ctx.settings = replace(settings, agent_language="vi")
    m.get(f"{ASSETS}/img/anh-san-pham.jpg", status_code=404)
    assert run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_file_without_url.json")) == "empty"
    assert run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_image_expired_url.json")) == "empty"
    assert notes(m) == [
        note(
            "⚠️ Chưa gửi được tệp bao-gia.pdf đến người dùng Zalo: "
            "FreshChat không cung cấp liên kết tải về. Vui lòng đính kèm lại."
        ),
        note(
            "⚠️ Chưa gửi được ảnh anh-san-pham.jpg đến người dùng Zalo: "
            "liên kết tải về trả lời HTTP 404 (không tìm thấy). Vui lòng đính kèm lại."
        ),
    ]


def test_a_retried_message_notes_a_missing_file_once(ctx, m):
    m.post(CS, [{"status_code": 500}, ok()])
    assert run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_file_without_url.json")) == "deferred"
    drain_until_done(ctx)
    assert len(sent(m)) == 2 and len(notes(m)) == 1


@pytest.mark.parametrize(
    "status,words",
    [(403, "HTTP 403 (access denied)"), (404, "HTTP 404 (not found)"), (410, "HTTP 410 (gone)"), (400, "HTTP 400")],
)
def test_image_whose_url_answers_4xx_is_noted_and_the_rest_goes_on(ctx, m, status, words):
    m.get(f"{ASSETS}/img/anh-san-pham.jpg", status_code=status)
    assert run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_image_expired_url.json")) == "empty"
    assert sent(m) == [{"recipient": {"user_id": USER}, "message": {"text": "Mẫu này còn hàng ạ."}}]
    assert notes(m) == [
        note(
            f"⚠️ The image anh-san-pham.jpg was not sent to the Zalo user: "
            f"its download link answered {words}. Please attach it again."
        )
    ]


def test_attachment_on_a_private_address_is_noted(ctx, m):
    run(ctx, agent_message("m-private", [{"file": {"name": "x.pdf", "url": "http://127.0.0.1:9/x.pdf"}}]))
    assert sent(m) == []
    assert notes(m) == [
        note("⚠️ The file x.pdf was not sent to the Zalo user: its link points to a private network address.")
    ]


@pytest.mark.parametrize(
    "failure", [{"status_code": 503}, {"status_code": 429}, {"exc": requests.exceptions.ConnectTimeout}]
)
def test_attachment_download_outage_is_retried_not_noted(ctx, m, failure):
    m.get(f"{ASSETS}/img/reply.png", [failure, {"content": PNG}])
    assert run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_image.json")) == "deferred"
    drain_until_done(ctx)
    assert [b["message"]["attachment"]["payload"]["elements"][0]["attachment_id"] for b in sent(m)] == ["att-img"]
    assert notes(m) == []


@pytest.mark.parametrize("code", [-201, -210, -233])
def test_attachment_zalo_refuses_on_upload_goes_as_a_link(ctx, m, app, code):
    m.get(f"{ASSETS}/img/reply.png", content=PNG)
    m.post(f"{ZALO_API}/v2.0/oa/upload/image", json={"error": code, "message": "refused"})
    event = load_fixture("freshchat", "webhooks", "message_create__agent_image.json")
    assert run(ctx, event) == "empty"
    link = media_url(ctx.settings, f"{FOLDER}/fc/{event['data']['message']['id']}/0")
    assert sent(m) == [{"recipient": {"user_id": USER}, "message": {"text": f"🖼 Ảnh reply.png: {link}"}}]
    assert app.test_client().get(link.removeprefix(ctx.settings.public_base_url)).data == PNG
    assert notes(m) == []


def test_attachment_zalo_refuses_on_send_goes_as_a_link(ctx, m):
    m.get(f"{ASSETS}/files/hoa-don.pdf", content=PDF)
    m.post(CS, [{"json": {"error": -201, "message": "attachment is invalid"}}, ok()])
    event = load_fixture("freshchat", "webhooks", "message_create__agent_file.json")
    run(ctx, event)
    link = media_url(ctx.settings, f"{FOLDER}/fc/{event['data']['message']['id']}/0")
    file_message = {"attachment": {"type": "file", "payload": {"token": "file-token"}}}
    assert sent(m) == [
        {"recipient": {"user_id": USER}, "message": file_message},
        {"recipient": {"user_id": USER}, "message": {"text": f"📎 Tệp hoa-don.pdf: {link}"}},
    ]


def test_attachment_refused_for_the_recipient_is_reported_and_stops_the_message(ctx, m):
    m.get(f"{ASSETS}/img/reply.png", content=PNG)
    m.post(CS, json={"error": -230, "message": "not interacted"})
    run(ctx, agent_message("m-window", [{"image": {"url": f"{ASSETS}/img/reply.png"}}, {"text": {"content": "và"}}]))
    assert len(sent(m)) == 1
    assert notes(m) == [
        note(
            "⚠️ Not delivered to Zalo: The user has not interacted with the OA in the last 7 days; "
            "wait until they write again, or send an approved Zalo template (type /templates to see them)."
            "\n(Zalo error -230: not interacted)\nMessage: “và”"
        )
    ]


@pytest.mark.parametrize(
    "code,advice",
    [
        (
            -230,
            "Người dùng chưa tương tác với OA trong 7 ngày qua; hãy chờ khách nhắn lại, hoặc gửi một mẫu tin "
            "Zalo đã duyệt (gõ /templates để xem danh sách).",
        ),
        (-999, "Zalo đã từ chối tin nhắn; xem mã lỗi trong bảng lỗi của Zalo."),
    ],
)
def test_a_refusal_is_explained_in_vietnamese_to_vietnamese_agents(ctx, m, settings, code, advice):
    ctx.settings = replace(settings, agent_language="vi")
    m.post(CS, json={"error": code, "message": "refused"})
    run(ctx, agent_message("m-vi", [{"text": {"content": "Dạ vâng"}}]))
    assert notes(m) == [
        note(f"⚠️ Không gửi được tin này qua Zalo: {advice}\n(Zalo báo lỗi {code}: “refused”)\nTin nhắn: “Dạ vâng”")
    ]


def test_a_note_freshchat_refuses_for_good_does_not_stop_the_message(ctx, m):
    m.post(NOTES, status_code=400, json={"message": "bad request"})
    assert run(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_file_without_url.json")) == "empty"
    assert [b["message"]["text"] for b in sent(m)] == ["Em gửi anh báo giá ạ."]


def test_a_reply_given_up_on_tells_vietnamese_agents_why_and_what_to_do(ctx, m, settings):
    """Past its retry budget the reply becomes a dead letter; the note says Zalo's refusal in
    Vietnamese, Zalo's own words quoted, then what the agent can do."""
    ctx.settings = replace(settings, agent_language="vi")
    m.post(CS, json={"error": -200, "message": "Send message failed"})
    event = agent_message("m-given-up", [{"text": {"content": "Dạ vâng"}}])
    old = now_ms() - (settings.retry_horizon_seconds + 60) * 1000
    item = Item("freshchat:m-given-up", "freshchat", event, now_ms(), attempts=9, first_failed_at=old)
    ctx.lanes.accept(f"out:{CONV}", item)
    assert Drainer(ctx).drain(f"out:{CONV}") == "empty"
    [request] = [r for r in m.request_history if r.url == NOTES]
    assert request.method == "POST" and request.headers["Authorization"] == f"Bearer {settings.freshchat_api_key}"
    assert request.json() == note(
        "⚠️ Không gửi được trả lời này đến người dùng Zalo.\n"
        "Lý do: đã dừng sau 10 lần thử: Zalo báo lỗi -200: “Send message failed”\n"
        "Zalo đã từ chối tin nhắn; xem mã lỗi trong bảng lỗi của Zalo.\n"
        "Tin nhắn đã được lưu lại (mã freshchat:m-given-up); quản trị viên có thể gửi lại."
    )
