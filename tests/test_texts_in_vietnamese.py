"""Every note and message the worker writes, rendered for Vietnamese readers, holds no English:
no word of the product's English texts (app/texts.py, the console catalogue) and no msgid left
untranslated, whatever reason a failure gave. The reasons are the worker's own, made by the code
that makes them where it can be called here, and as written (workers/drain.py) otherwise. The
English that stays is a partner's own words (written x-… here) and paths."""

from __future__ import annotations

import re
import string

import pytest

from app.integrations.freshchat.errors import error_for as freshchat_error
from app.integrations.zalo.errors import error_for as zalo_error
from app.relay.notes import reason_for_agent
from app.relay.outbound import attachment_label
from app.texts import (
    OTHER_REFUSAL,
    TEMPLATE_ADVICE,
    TEXTS,
    ZALO_ADVICE,
    resolve_text,
    say,
    template_advice,
    vn_time,
    zalo_advice,
)
from app.wording import SHAPES, in_language
from config.settings import Settings
from tests.english import DENIED_WORDS, ENGLISH, english_left, fragments

VI = Settings(agent_language="vi", customer_language="vi")
ADVICE = [*ZALO_ADVICE.values(), *TEMPLATE_ADVICE.values(), OTHER_REFUSAL]
KNOWN = ENGLISH | fragments((e["en"], e["vi"]) for e in [*TEXTS.values(), *ADVICE])
# The English of notes, beyond the console's words.
DENIED = re.compile(
    rf"\b({DENIED_WORDS}|from|could|shown|kept|sent|user|why|after|gave|plainest|unreachable|answered|"
    r"fetching|download|copying|resolves|bytes|redirects|rate|outcome|handler|please|attach|file|"
    r"image|location|phone|card|reacted|read|free|billed|plain|send|zalo's|its|can|be|has|have)\b",
    re.IGNORECASE,
)
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
CDN = "https://cdn.zalo-example.vn/img/p1.jpg"
FC_FILE = "https://fc-assets.example.com/files/hoa-don.pdf"
MESSAGES = f"/conversations/{CONV}/messages"

MEDIA_REASONS = [  # app/media/fetch.py
    f"HTTP 404 from {CDN}",
    f"ConnectTimeout fetching {CDN}",
    f"more than 5 redirects from {CDN}",
    "refusing a ftp URL",
    f"bad port in {CDN}",
    "cannot resolve cdn.zalo-example.vn",
    "cdn.zalo-example.vn resolves to 10.0.0.7, which is not a public address",
    "31457280 bytes is over the 26214400-byte limit",
    "more than the 26214400-byte limit",
]
REASONS = [  # a dead letter's reason, as workers/drain.py writes it around the failure
    f"permanent: FreshChat refused even the plainest form: {freshchat_error(400, MESSAGES, 'x-400', None)}",
    f"permanent: {freshchat_error(404, MESSAGES, 'x-404', None)}",
    f"gave up after 10 attempts: {freshchat_error(503, MESSAGES, 'x-503', None)}",
    "gave up after 10 attempts: FreshChat unreachable: ReadTimeout",
    "gave up after 10 attempts: local FreshChat rate limit",
    f"gave up after 10 attempts: FreshChat attachment download failed: HTTP 503 from {FC_FILE}",
    *(f"permanent: {zalo_error(code, f'x{code}')}" for code in [*ZALO_ADVICE, -999]),
    f"gave up after 10 attempts: {zalo_error(-200, 'x-200')}",
    f"gave up after 10 attempts: {zalo_error(-216, 'x-216')}",
    "gave up after 10 attempts: Zalo HTTP 500",
    "gave up after 10 attempts: Zalo unreachable: ConnectTimeout",
    "gave up after 10 attempts: Zalo answered non-JSON (HTTP 502)",
    "gave up after 10 attempts: local Zalo rate limit",
    "gave up after 10 attempts: Zalo refresh token is dead: -14014 x-14014",
    "gave up after 10 attempts: Zalo token refresh lock busy",
    "gave up after 10 attempts: Zalo OAuth unreachable: ConnectionError",
    "gave up after 10 attempts: Zalo OAuth answered HTTP 502",
    "gave up after 10 attempts: zalo send of unknown outcome: look in 2.5s",
    "gave up after 10 attempts: echo waits for a send of unknown outcome",
    "gave up after 10 attempts: echo not matched yet",
    *(f"gave up after 3 attempts: copying Zalo media failed: {reason}" for reason in MEDIA_REASONS),
    "permanent: no Zalo conversation is known for anonymous visitor x-visitor",
    "unexpected: LookupError: no handler for zalo event 'x-event'",
    "unexpected: KeyError: 'x-key'",
    "connection shop-hcm no longer exists",
    "connection shop-hcm is disabled",
    "connection removed",
]
SAMPLES = {  # a field's value, as the relay fills it for Vietnamese readers
    "preview": "Dạ vâng, em gửi anh báo giá",
    "length": 5230,
    "url": "https://cau-noi.example.vn/media/fc/m-1/0",
    "name": "hoa-don.pdf",
    "time": vn_time(1_763_000_000_000),
    "when": vn_time(1_763_000_000_000),
    "replies": say("receipt_replies", "vi", first="“Dạ vâng”", more=2),
    "first": say("a_reply", "vi"),
    "more": 2,
    "emoji": "❤️",
    "quote": "“Dạ vâng”",
    "id": "freshchat:fc-msg-1",
    "code": -230,
    "advice": zalo_advice(VI, -230),
    "detail": in_language(zalo_error(-230, "x-230"), "vi"),
    "what": attachment_label(VI, {"file": {"name": "hoa-don.pdf", "url": FC_FILE}}),
    "reason": say("agent.reason_http", "vi", status=404, meaning=say("agent.http_404", "vi")),
    "status": 404,
    "meaning": say("agent.http_404", "vi"),
    "admin": "7788990011",
    "event": "user_send_sticker",
    "kind": say("kind.image", "vi"),
    "error": in_language(f"HTTP 404 from {CDN}", "vi"),
    "label": "Cửa hàng Quận 10",
    "phone": "0901234567",
    "value": "Nguyễn Thị Lan",  # a field the customer shared (app/relay/shared_info.py)
    "days": 5,
    "count": 3,
    "minutes": 12,
    "got": "1032900368544245786",
    "expected": "2736400368544245123",
    "connection": "shop-hcm",
    "connected": 0,
    "wanted": 1,
    "rating": 4,
    # agent commands (app/commands/): a template as `/templates` lists it, its parameters' problems
    "lines": "• 412503 - Xác nhận đơn hàng - giá 300.0\n  tham số: customer_name*",
    "price": "300.0",
    "params": "customer_name* (tối đa 30 ký tự), order_code*",
    "problems": "\n- thiếu tham số bắt buộc: order_code",
    "names": "customer_name, order_code",
    "quota": "purchase_quota (còn 120)",
    "remain": 120,
    "max": 30,
}


def english_in(text: str) -> list[str]:
    """What tests/english.py finds, once a partner's own words (x-…) are set aside."""
    text = re.sub(r"(?<![\w/])/\w+", " ", text)  # a command the agent types (/templates), as typed
    return english_left(re.sub(r"\bx-?[-\w]*", " ", text), KNOWN, DENIED)


def fields_of(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_every_text_reads_in_vietnamese(key):
    text = say(key, "vi", **{name: SAMPLES[name] for name in fields_of(TEXTS[key]["vi"])})
    assert english_in(text) == []


@pytest.mark.parametrize("reason", REASONS)
@pytest.mark.parametrize("key", ["agent.dead_letter_inbound", "agent.dead_letter_outbound"])
def test_every_dead_letter_note_reads_in_vietnamese(key, reason):
    note = say(key, "vi", reason=reason_for_agent(VI, reason), id="zalo:96d3cdf3af150460909")
    assert english_in(note) == []


@pytest.mark.parametrize("code", [*ZALO_ADVICE, -999])
def test_every_zalo_refusal_note_reads_in_vietnamese_with_what_to_do(code):
    refusal = zalo_error(code, "x-refused")
    note = say("agent.refused", "vi", advice=zalo_advice(VI, code), detail=in_language(refusal, "vi"))
    note += say("agent.refused_message", "vi", preview=SAMPLES["preview"])
    assert english_in(note) == []
    assert f"Zalo báo lỗi {code}: “x-refused”" in note and (ZALO_ADVICE.get(code) or OTHER_REFUSAL)["vi"] in note


@pytest.mark.parametrize("code", [*TEMPLATE_ADVICE, -999])
def test_every_template_refusal_note_reads_in_vietnamese_with_what_to_do(code):
    refusal = zalo_error(code, "x-refused")
    detail = in_language(refusal, "vi")
    note = say(
        "command.template_refused", "vi", id=412503, name="x-name", advice=template_advice(VI, code), detail=detail
    )
    assert english_in(note) == []
    assert f"Zalo báo lỗi {code}: “x-refused”" in note and template_advice(VI, code) in note


@pytest.mark.parametrize("code", [*ZALO_ADVICE, -999])
def test_a_zalo_refusal_inside_a_reason_brings_its_advice(code):
    said = reason_for_agent(VI, f"gave up after 10 attempts: {zalo_error(code, 'x-said')}")
    assert said == f"đã dừng sau 10 lần thử: Zalo báo lỗi {code}: “x-said”\n{zalo_advice(VI, code)}"


@pytest.mark.parametrize("key", sorted(k for k in TEXTS if k.startswith("agent.reason_")))
def test_every_unsendable_attachment_note_reads_in_vietnamese(key):
    reason = say(key, "vi", status=403, meaning=say("agent.http_403", "vi"))
    assert english_in(say("agent.not_sent", "vi", what=SAMPLES["what"], reason=reason)) == []


@pytest.mark.parametrize("reason", MEDIA_REASONS)
def test_every_failed_copy_line_reads_in_vietnamese(reason):
    line = say("agent.copy_failed", "vi", kind=say("kind.file", "vi"), error=in_language(reason, "vi"), url=CDN)
    assert english_in(line) == []


@pytest.mark.parametrize("shape", sorted(set(SHAPES)))
def test_each_shape_reads_in_vietnamese_outside_a_request(shape):
    """What the console says with a request, a worker says without one, from the same catalogue."""
    filled = re.sub(r"\{(\w+)\}", r"x-\1", shape)
    assert english_in(in_language(filled, "vi")) == [] and in_language(filled, "en") == filled


def test_the_default_resolve_text_leads_with_the_customers_language():
    assert resolve_text(VI).startswith(TEXTS["customer.resolved"]["vi"] + " / ")


def test_the_check_finds_english_left_in_a_note():
    """The test above can fail: the note as it was written before reasons were translated."""
    before = "⚠️ Không gửi được trả lời này đến người dùng Zalo (permanent: Zalo error -201: x-201)."
    assert set(english_in(before)) == {"Zalo error", "permanent", "error"}
    assert english_in(in_language("gave up after 3 attempts: unheard of", "vi")) == []  # a partner's words
