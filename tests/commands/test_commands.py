"""Agent commands: the exact Zalo requests each one makes, the note it answers with (in both
languages), and nothing sent twice when FreshChat redelivers or a worker runs an item again."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import requests
import requests_mock

from app import commands
from app.bridge.lanes import Item, now_ms
from app.commands.catalogue import CACHE_SECONDS
from app.integrations import events
from app.integrations.freshchat.schemas import to_event
from sandbox.helpers import FC_API, ZALO_API, load_fixture, partners_answer_probes, post_freshchat
from tests.relay.test_outbound import AGENT, CONV, FC_USER, USER, agent_message, drain_until_done, run

BUSINESS = "https://business.openapi.zalo.me"
LIST = f"{BUSINESS}/template/all?offset=0&limit=100&status=1"
INFO = f"{BUSINESS}/template/info/v2?template_id="
SEND = f"{ZALO_API}/v3.0/oa/message/template"
CS = f"{ZALO_API}/v3.0/oa/message/cs"
NOTES = f"{FC_API}/conversations/{CONV}/messages"
ORDER_LINES = "/template 412503\ncustomer_name: Nguyễn Văn An\norder_code: DH-1024"


def answer(name: str) -> dict:
    return load_fixture("zalo", "answers", f"{name}.json")


@pytest.fixture
def m(ctx, public_dns):
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.link_conversation(USER, CONV)
    with requests_mock.Mocker() as mock:
        mock.get(LIST, json=answer("template_all"), complete_qs=True)
        mock.get(INFO + "412503", json=answer("template_info__order"), complete_qs=True)
        mock.get(INFO + "412877", json=answer("template_info__thanks"), complete_qs=True)
        mock.get(INFO + "398120", json=answer("template_info__disabled"), complete_qs=True)
        mock.post(SEND, json=answer("message_template__sent"))
        mock.post(CS, json={"error": 0, "message": "Success", "data": {"message_id": "zmsg-cs"}})
        mock.post(NOTES, json={"id": "note-1"})
        partners_answer_probes(mock)
        yield mock


def command(msg_id: str, text: str) -> dict:
    return agent_message(msg_id, [{"text": {"content": text}}])


def calls(m) -> list[tuple[str, str]]:
    """Every request to Zalo, as (method, URL)."""
    return [(r.method, r.url) for r in m.request_history if "zalo" in r.url]


def notes(m) -> list[str]:
    return [r.json()["message_parts"][0]["text"]["content"] for r in m.request_history if r.url == NOTES]


def note_requests(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.url == NOTES]


def in_vietnamese(ctx):
    ctx.settings = replace(ctx.settings, agent_language="vi")


# -- what is a command --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["/help", "  /templates", "/template 1\na: b", "//hello", "/whatever"])
def test_an_agent_text_beginning_with_a_slash_is_a_command(text):
    assert to_event(command("m-1", text)).kind == events.AGENT_COMMAND


@pytest.mark.parametrize("parts", [[{"text": {"content": "a /b"}}], [{"image": {"url": "https://x/y.png"}}]])
def test_any_other_reply_is_a_reply(parts):
    assert to_event(agent_message("m-1", parts)).kind == events.AGENT_MESSAGE


def test_the_bridges_own_note_is_never_relayed_nor_a_command():
    """What `answer` posts comes back as a private message of the agent: dropped as a note."""
    own = command("m-note", "/templates")
    own["data"]["message"]["message_type"] = "private"
    assert to_event(own).verdict == events.IGNORED and to_event(own).reason == "private note"
    posted_as_user = command("m-user", "/help")
    posted_as_user["data"]["message"]["actor_type"] = "user"
    assert to_event(posted_as_user).verdict == events.IGNORED


# -- /help and unknown words --------------------------------------------------------------------


def test_help_is_a_private_note_from_the_agent_and_nothing_goes_to_zalo(ctx, m):
    run(ctx, command("m-help", "/help"))
    assert calls(m) == []
    assert note_requests(m) == [
        {
            "message_parts": [{"text": {"content": notes(m)[0]}}],
            "message_type": "private",
            "actor_type": "agent",
            "actor_id": AGENT,
        }
    ]
    assert notes(m)[0].startswith("🤖 Commands for the Zalo bridge (the customer never sees them):\n/templates")
    assert "//text - sends the customer “/text” (one / removed)" in notes(m)[0]


def test_help_in_vietnamese(ctx, m):
    in_vietnamese(ctx)
    run(ctx, command("m-help", "/help"))
    assert notes(m)[0].startswith("🤖 Lệnh cho cầu nối Zalo (khách không thấy các lệnh này):\n/templates")


def test_an_unknown_word_gets_the_help(ctx, m):
    run(ctx, command("m-x", "/refund 20k"))
    assert calls(m) == []
    assert notes(m)[0].startswith("There is no command “/refund”.\n🤖 Commands for the Zalo bridge")


def test_only_the_double_slash_counts_as_a_relayed_message(ctx, m):
    """What the counters and the journal call relayed (workers/drain.py `delivered`)."""
    from workers.drain import Drainer

    outcomes = []
    for msg_id, text in (("m-esc", "//start"), ("m-help", "/help")):
        item = Item(f"freshchat:{msg_id}", "freshchat", command(msg_id, text), now_ms(), event="agent_command")
        ctx.lanes.accept(f"out:{CONV}", item)
    Drainer(ctx, subscribers=(lambda outcome, pipe: outcomes.append(outcome),)).drain(f"out:{CONV}")
    assert [(o.item.id, o.relayed) for o in outcomes] == [("freshchat:m-esc", True), ("freshchat:m-help", False)]


def test_a_double_slash_sends_the_text_with_one_slash_removed(ctx, m):
    run(ctx, command("m-esc", "//start là lệnh của bot bên em ạ"))
    assert [r.json() for r in m.request_history if r.url == CS] == [
        {"recipient": {"user_id": USER}, "message": {"text": "/start là lệnh của bot bên em ạ"}}
    ]
    assert notes(m) == []


# -- /templates ---------------------------------------------------------------------------------


def test_templates_reads_the_list_and_each_detail_and_answers_with_a_note(ctx, m):
    run(ctx, command("m-list", "/templates"))
    assert calls(m) == [("GET", LIST), ("GET", INFO + "412503"), ("GET", INFO + "412877")]
    assert all(r.headers["access_token"] == "access-0" for r in m.request_history if "business" in r.url)
    (text,) = notes(m)
    assert text.startswith("📋 Approved Zalo templates (as of ")
    assert (
        "• 412503 - Xác nhận đơn hàng - price 300.0\n"
        "  parameters: customer_name* (up to 30 characters), order_code* (up to 10 characters), "
        "note (up to 100 characters)\n"
        "• 412877 - Cảm ơn khách hàng - price 200.0\n  parameters: none\n"
        "To send one: /template <id>, then one “name: value” line per parameter (* is required)."
    ) in text


def test_templates_are_kept_a_few_minutes_per_connection(ctx, m, redis):
    run(ctx, command("m-list", "/templates"))
    key = ctx.keys.zalo_templates
    assert 0 < redis.ttl(key) <= CACHE_SECONDS
    kept = json.loads(redis.get(key))
    assert [t["id"] for t in kept["templates"]] == ["412503", "412877"]
    assert kept["templates"][0]["params"][0] == {"name": "customer_name", "required": True, "max_length": 30}


def test_templates_in_vietnamese(ctx, m):
    in_vietnamese(ctx)
    run(ctx, command("m-list", "/templates"))
    (text,) = notes(m)
    assert text.startswith("📋 Mẫu tin Zalo đã duyệt (cập nhật lúc ")
    assert "• 412877 - Cảm ơn khách hàng - giá 200.0\n  tham số: không có" in text


def test_no_approved_template_says_where_to_make_one(ctx, m):
    m.get(LIST, json={"error": 0, "message": "Success", "data": [], "metadata": {"total": 0}}, complete_qs=True)
    run(ctx, command("m-list", "/templates"))
    assert notes(m) == [
        "📋 This OA has no approved Zalo template yet. Create one and submit it for review in Zalo's ZBS "
        "Template Message console."
    ]


def test_a_template_api_refusal_is_told_with_its_code(ctx, m):
    m.get(LIST, json={"error": -135, "message": "OA is not allowed"}, complete_qs=True)
    run(ctx, command("m-list", "/templates"))
    assert notes(m) == [
        "⚠️ Could not read the templates from Zalo: this OA may not send template messages; check its ZBS "
        "package.\n(Zalo error -135: OA is not allowed)"
    ]


# -- /template <id> -----------------------------------------------------------------------------


def test_template_sends_by_user_id_with_its_data_and_notes_the_quota(ctx, m):
    run(ctx, command("m-send", ORDER_LINES + "\n"))
    sends = [r for r in m.request_history if r.url == SEND]
    assert [r.json() for r in sends] == [
        {
            "user_id": USER,
            "template_id": "412503",
            "template_data": {"customer_name": "Nguyễn Văn An", "order_code": "DH-1024"},
        }
    ]
    assert sends[0].headers["access_token"] == "access-0"
    assert notes(m) == [
        "✅ Template 412503 (Xác nhận đơn hàng) was sent to the customer on Zalo. Paid from: purchase_quota (120 left)."
    ]
    assert ctx.mapping.is_sent_by_us("a91f0c2e6d3b4f5a8c7e")  # its echo is ours, not "sent elsewhere"


def test_template_sent_in_vietnamese(ctx, m):
    in_vietnamese(ctx)
    run(ctx, command("m-send", ORDER_LINES))
    assert notes(m) == [
        "✅ Đã gửi mẫu tin 412503 (Xác nhận đơn hàng) cho khách qua Zalo. Trừ vào hạn mức: purchase_quota (còn 120)."
    ]


@pytest.mark.parametrize(
    "lines,problems",
    [
        ("customer_name: An", "\n- required, missing: order_code"),
        ("customer_name: An\norder_code: DH-1\ncolour: red", "\n- not parameters of this template: colour"),
        ("customer_name: An\norder_code: DH-10240000001", "\n- too long: order_code"),
        ("customer_name: An\norder_code: DH-1\njust a line", "\n- not read (write “name: value”): just a line"),
        ("order_code:   ", "\n- required, missing: customer_name, order_code"),
    ],
)
def test_wrong_parameters_are_named_and_nothing_is_sent(ctx, m, lines, problems):
    run(ctx, command("m-bad", f"/template 412503\n{lines}"))
    assert [r for r in m.request_history if r.url == SEND] == []
    assert notes(m) == [
        f"⚠️ Template 412503 (Xác nhận đơn hàng) was not sent:{problems}\nIts parameters: customer_name* "
        "(up to 30 characters), order_code* (up to 10 characters), note (up to 100 characters)"
    ]


def test_wrong_parameters_in_vietnamese(ctx, m):
    in_vietnamese(ctx)
    run(ctx, command("m-bad", "/template 412503\nten: An"))
    assert notes(m) == [
        "⚠️ Chưa gửi mẫu tin 412503 (Xác nhận đơn hàng):\n- thiếu tham số bắt buộc: customer_name, order_code"
        "\n- mẫu tin không có tham số: ten\nTham số của mẫu tin: customer_name* (tối đa 30 ký tự), order_code* "
        "(tối đa 10 ký tự), note (tối đa 100 ký tự)"
    ]


def test_a_disabled_template_is_not_sent(ctx, m):
    run(ctx, command("m-off", "/template 398120\nvoucher: GIAM20"))
    assert [r for r in m.request_history if r.url == SEND] == []
    assert ("GET", INFO + "398120") in calls(m)
    assert notes(m) == [
        "⚠️ Not sent: template 398120 (Khuyến mãi tháng 11) is DISABLE, not usable; only approved (ENABLE) "
        "templates can be sent."
    ]


def test_an_unknown_template_id_is_told_as_zalo_says_it(ctx, m):
    m.get(INFO + "777", json={"error": -109, "message": "Template ID is invalid"}, complete_qs=True)
    run(ctx, command("m-unknown", "/template 777"))
    assert [r for r in m.request_history if r.url == SEND] == []
    assert notes(m) == [
        "⚠️ Could not read the templates from Zalo: the template id is wrong, not this OA's, or not approved; "
        "type /templates for the ones you can use.\n(Zalo error -109: Template ID is invalid)"
    ]


def test_template_without_an_id_shows_the_usage(ctx, m):
    run(ctx, command("m-usage", "/template"))
    assert calls(m) == [] and notes(m)[0].startswith("Usage: /template <template id>")


@pytest.mark.parametrize(
    "fixture,language,said",
    [
        (
            "message_template__not_by_uid",
            "en",
            "⚠️ Zalo did not send template 412877 (Cảm ơn khách hàng): this template cannot be sent by user id "
            "(phone number only); use another one (templates approved since 10 Dec 2025 can).\n"
            "(Zalo error -249: Template does not support send via UID)",
        ),
        (
            "message_template__night",
            "vi",
            "⚠️ Zalo không gửi mẫu tin 412877 (Cảm ơn khách hàng): Zalo không gửi mẫu tin này vào ban đêm "
            "(22:00-06:00); hãy gửi lại sau 06:00.\n(Zalo báo lỗi -133: “Sending ZNS messages at night is not "
            "allowed”)",
        ),
    ],
)
def test_zalos_refusal_is_a_note_with_its_code_and_what_to_do(ctx, m, fixture, language, said):
    ctx.settings = replace(ctx.settings, agent_language=language)
    m.post(SEND, json=answer(fixture))
    run(ctx, command("m-refused", "/template 412877"))
    assert len([r for r in m.request_history if r.url == SEND]) == 1
    assert notes(m) == [said]


def test_an_invalid_body_is_said_plainly(ctx, m):
    m.post(SEND, json={"error": -201, "message": "Parameters are invalid"})
    run(ctx, command("m-201", "/template 412877"))
    assert notes(m) == [
        "⚠️ Zalo did not send template 412877 (Cảm ơn khách hàng): Zalo says the request is invalid. The "
        "bridge sends user_id at the top level as documented; if every template fails this way, Zalo may have "
        "changed the request's shape: tell an operator (README, “Zalo templates”).\n"
        "(Zalo error -201: Parameters are invalid)"
    ]


# -- exactly once ---------------------------------------------------------------------------------


def test_a_redelivered_webhook_sends_the_template_once(ctx, m, client):
    event = command("m-twice", ORDER_LINES)
    for _ in range(3):
        assert post_freshchat(client, event).status_code == 200
    drain_until_done(ctx)
    assert len([r for r in m.request_history if r.url == SEND]) == 1
    assert len(notes(m)) == 1


def test_an_item_run_again_after_a_crash_sends_nothing_twice(ctx, m):
    """A worker that died after Zalo's answer (before the lane's pop) runs the item again."""
    item = Item("freshchat:m-again", "freshchat", command("m-again", ORDER_LINES), now_ms(), event="agent_command")
    for _ in range(2):
        assert commands.run(ctx, item, lambda: None) == events.NOT_RELAYED
    assert len([r for r in m.request_history if r.url == SEND]) == 1
    assert len(notes(m)) == 1


def test_no_answer_from_zalo_is_never_sent_again(ctx, m):
    m.post(SEND, exc=requests.exceptions.ReadTimeout)
    item = Item("freshchat:m-lost", "freshchat", command("m-lost", "/template 412877"), now_ms(), event="agent_command")
    for _ in range(2):
        commands.run(ctx, item, lambda: None)
    assert len([r for r in m.request_history if r.url == SEND]) == 1
    assert notes(m) == [
        "❓ Zalo did not answer when template 412877 was sent: the customer may or may not have it. The bridge "
        "does not send it again (so they never get it twice); ask them or look in Zalo before sending it again."
    ]


def test_commands_keep_their_place_in_the_conversations_lane(ctx, m, client):
    """A reply, a command and a reply: Zalo and FreshChat see them in the order written."""
    for event in (
        command("m-a", "trước"),
        command("m-b", "/template 412877"),
        command("m-c", "sau"),
    ):
        post_freshchat(client, event)
    drain_until_done(ctx)
    order = [
        r.json().get("message", {}).get("text") or r.json().get("template_id")
        for r in m.request_history
        if r.url in (CS, SEND)
    ]
    assert order == ["trước", "412877", "sau"]


# -- /askinfo -----------------------------------------------------------------------------------


def test_askinfo_sends_zalos_information_form(ctx, m):
    run(ctx, command("m-ask", "/askinfo"))
    assert [r.json() for r in m.request_history if r.url == CS] == [
        {
            "recipient": {"user_id": USER},
            "message": {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "request_user_info",
                        "elements": [
                            {
                                "title": "Chia sẻ thông tin",
                                "subtitle": "Vui lòng chia sẻ thông tin liên hệ để chúng tôi hỗ trợ bạn tốt hơn.",
                                "image_url": "https://s160-ava-talk.zadn.vn/oa/avatar.jpg",
                            }
                        ],
                    },
                }
            },
        }
    ]
    assert notes(m) == ["📝 The customer got Zalo's “share your information” form; what they share will show here."]
    assert ctx.mapping.is_sent_by_us("zmsg-cs")  # its echo is ours


def test_askinfo_refused_in_vietnamese(ctx, m):
    in_vietnamese(ctx)
    m.post(CS, json={"error": -230, "message": "User has not interacted"})
    run(ctx, command("m-ask", "/askinfo"))
    assert notes(m)[0].startswith(
        "⚠️ Không gửi được biểu mẫu chia sẻ thông tin: Người dùng chưa tương tác với OA trong 7 ngày qua"
    )


def test_a_conversation_without_a_zalo_user_gets_a_note(ctx, m):
    m.get(f"{FC_API}/users/{FC_USER}", json={"id": FC_USER, "reference_id": ""})
    ctx.redis.delete(ctx.keys.conversation(CONV))
    run(ctx, command("m-nobody", "/askinfo"))
    assert [r for r in m.request_history if r.url in (CS, SEND)] == []
    assert notes(m) == ["⚠️ This conversation is not linked to a Zalo user the bridge knows: nothing was sent."]


# -- the notes of a closed window point to templates ---------------------------------------------


@pytest.mark.parametrize("language", ["vi", "en"])
def test_every_closed_window_note_points_to_the_templates(language):
    from app.texts import ZALO_ADVICE, say

    said = [
        say("window_closing", language, time="10:00 01/12/2026 (UTC+7)"),
        say("reply_held", language, preview="Dạ"),
        ZALO_ADVICE[-230][language],
        ZALO_ADVICE[-232][language],
    ]
    assert all("/templates" in text for text in said)
