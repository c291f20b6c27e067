"""The log lines an operator reads: one INFO line per delivered message with its latency, and
the bridge's own posts and sends coming back logged at DEBUG, never as dropped messages."""

from __future__ import annotations

import logging

import pytest
import requests_mock

from app.bridge.lanes import now_ms
from sandbox.helpers import FC_API, load_fixture, partners_answer_probes, post_freshchat, post_zalo
from tests.relay.test_inbound import CONV, USER, known_user, run

POSTS = f"{FC_API}/conversations/{CONV}/messages"


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        mock.post(POSTS, json={"id": "fc-1"})
        yield mock


def records(caplog, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


def test_a_delivered_message_is_one_info_line_with_its_latency(ctx, m, caplog):
    known_user(ctx)
    caplog.set_level(logging.DEBUG)
    assert run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"), received_at=now_ms() - 1500) == "empty"
    [line] = records(caplog, "relay.delivered")
    assert (line.levelno, line.connection, line.direction, line.lane) == (logging.INFO, "default", "in", f"in:{USER}")
    assert 1500 <= line.latency_ms < 5000
    assert [r.json()["message_parts"] for r in m.request_history] == [
        [{"text": {"content": "Xin chào, tôi cần hỗ trợ đơn hàng #123 🙏"}}]
    ]


def test_the_echo_of_our_own_send_is_a_debug_line_and_not_delivered(ctx, m, caplog):
    known_user(ctx)
    ctx.mapping.remember_sent("31b2c3d4e5f6a7b8c9d0")
    caplog.set_level(logging.DEBUG)
    run(ctx, load_fixture("zalo", "webhooks", "oa_send_text__console_admin.json"))
    [echo] = records(caplog, "relay.own_echo")
    assert (echo.levelno, echo.msg_id) == (logging.DEBUG, "31b2c3d4e5f6a7b8c9d0")
    assert records(caplog, "relay.delivered") == [] and m.request_history == []


def test_our_own_posts_coming_back_from_freshchat_are_debug_not_info(client, caplog):
    caplog.set_level(logging.DEBUG)
    event = load_fixture("freshchat", "webhooks", "message_create__user_actor.json")
    assert post_freshchat(client, event).get_json() == {"ok": True, "ignored": "actor user is not relayed"}
    [own] = records(caplog, "webhook.own_post")
    assert (own.levelno, own.source, own.why) == (logging.DEBUG, "freshchat", "actor user is not relayed")
    assert records(caplog, "webhook.ignored") == []


def test_zalos_echo_of_our_send_at_the_webhook_is_debug(client, ctx, caplog):
    ctx.mapping.remember_sent("41b2c3d4e5f6a7b8c9d0")
    caplog.set_level(logging.DEBUG)
    resp = post_zalo(client, load_fixture("zalo", "webhooks", "oa_send_text__api_echo.json"))
    assert resp.get_json() == {"ok": True, "ignored": "echo of a message this bridge sent"}
    [own] = records(caplog, "webhook.own_post")
    assert (own.levelno, own.source) == (logging.DEBUG, "zalo")


def test_a_private_note_is_still_an_info_line(client, caplog):
    caplog.set_level(logging.DEBUG)
    post_freshchat(client, load_fixture("freshchat", "webhooks", "message_create__private_note.json"))
    [ignored] = records(caplog, "webhook.ignored")
    assert (ignored.levelno, ignored.why) == (logging.INFO, "private note")


def warnings_and_worse(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_partner_refusal_that_makes_a_dead_letter_is_one_line_with_the_reason(ctx, m, caplog):
    known_user(ctx)
    refused = {"status_code": 400, "json": {"code": 400, "message": "TEXT_TOO_ODD"}}
    m.post(POSTS, [refused, {"json": {"id": "note-1"}}])  # the message, then the agents' note
    caplog.set_level(logging.DEBUG)
    assert run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json")) == "empty"
    [line] = warnings_and_worse(caplog)
    assert (line.getMessage(), line.levelno, line.lane) == ("worker.dead_letter", logging.ERROR, f"in:{USER}")
    assert line.reason.startswith("permanent: FreshChat") and "TEXT_TOO_ODD" in line.reason
    assert not any(r.exc_info for r in caplog.records) and records(caplog, "worker.item_retry") == []
    assert ctx.dead_letters.count() == 1 and len(m.request_history) == 2


def test_a_refused_note_about_a_dead_letter_is_one_more_line_without_a_traceback(ctx, m, caplog):
    known_user(ctx)
    m.post(POSTS, status_code=400, json={"code": 400, "message": "TEXT_TOO_ODD"})
    caplog.set_level(logging.DEBUG)
    run(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    dead, note = warnings_and_worse(caplog)
    assert dead.getMessage() == "worker.dead_letter" and "TEXT_TOO_ODD" in dead.reason
    assert (note.getMessage(), note.levelno) == ("worker.dead_letter_note_failed", logging.WARNING)
    assert "HTTP 400" in note.error and not any(r.exc_info for r in caplog.records)
