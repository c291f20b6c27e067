"""Reconcile before repeating: a send whose answer never came is looked up in the partner's
conversation, and made again only when it is not there (exact requests, real Redis)."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock

from app.bridge import effects, keys
from app.bridge.keys import DEFAULT_KEYS
from app.integrations.zalo.schemas import ANONYMOUS
from app.operations.status import bridge_status
from app.relay import reconcile
from sandbox.helpers import FC_API, ZALO_API, load_fixture, partners_answer_probes
from tests.relay.test_inbound import as_user, known_user
from tests.relay.test_inbound import run as run_inbound
from tests.relay.test_outbound import AGENT, CONV, CS, USER, agent_message, ok
from tests.relay.test_outbound import run as run_outbound
from workers.drain import Drainer

HISTORY = f"{ZALO_API}/v2.0/oa/conversation"
FC_POST = f"{FC_API}/conversations/{CONV}/messages"
REPLY = "Dạ, shop còn size M ạ."
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"


def oa_item(message_id: str, text: str, at_ms: int) -> dict:
    """An OA message (src 0) as Zalo's history shows it (the fixture's own OA row, re-dated)."""
    row = next(r for r in load_fixture("zalo", "answers", "conversation.json")["data"] if r["src"] == 0)
    return {**row, "message_id": message_id, "message": text, "time": at_ms, "to_id": USER}


def history(*items: dict) -> dict:
    return {"json": {"error": 0, "message": "Success", "data": list(items)}}


def settle(ctx, effect: str) -> dict:
    """Let the partner's time to finish the call pass: the in-flight record is backdated."""
    flight = ctx.effects.in_flight(effect)
    flight["at"] -= int(reconcile.SETTLE_TIMEOUTS * ctx.settings.http_timeout_seconds * 1000) + 1
    ctx.redis.set(DEFAULT_KEYS.done(effect), effects.FLIGHT_MARK + json.dumps(flight), ex=60)
    return flight


def due_now(ctx, lane: str) -> None:
    ctx.redis.zadd(keys.DUE, {lane: 0})


PROBES = (f"{ZALO_API}/v2.0/oa/getoa", f"{FC_API}/channels")  # "is the partner up?" after a failure


def calls(m) -> list[tuple[str, str]]:
    return [(r.method, r.url.split("?")[0]) for r in m.request_history if r.url.split("?")[0] not in PROBES]


def history_query(request) -> dict:
    return json.loads(parse_qs(urlsplit(request.url).query)["data"][0])


@pytest.fixture
def zm(ctx, public_dns):
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.link_conversation(USER, CONV)
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        yield mock


def reply_times_out(ctx, zm) -> dict:
    """The agent's reply is posted to Zalo, whose answer never comes; the item waits."""
    zm.post(CS, [{"exc": requests.exceptions.ReadTimeout}, ok("zmsg-2")])
    assert run_outbound(ctx, agent_message("fc-m1", [{"text": {"content": REPLY}}])) == "deferred"
    flight = ctx.effects.in_flight("zalo:out:fc-m1:0")
    assert flight["to"] == USER and flight["what"] == {"kind": "text", "text": REPLY}
    assert abs(flight["at"] - time.time() * 1000) < 5000
    return flight


def test_a_timed_out_reply_found_in_zalos_history_is_not_sent_again(ctx, zm):
    flight = reply_times_out(ctx, zm)
    zm.get(HISTORY, **history(oa_item("zmsg-1", REPLY, flight["at"] + 300)))
    settle(ctx, "zalo:out:fc-m1:0")
    due_now(ctx, f"out:{CONV}")
    assert Drainer(ctx).drain(f"out:{CONV}") == "empty"
    assert calls(zm) == [("POST", CS), ("GET", HISTORY)]
    assert history_query(zm.request_history[-1]) == {"user_id": USER, "offset": 0, "count": 10}
    assert ctx.effects.recorded("zalo:out:fc-m1:0") == "zmsg-1"
    assert ctx.mapping.is_sent_by_us("zmsg-1")  # its echo is ours
    assert ctx.effects.in_flight("zalo:out:fc-m1:0") is None
    assert bridge_status(ctx.redis)["reconciled"] == {"zalo": {"found": 1}}


def test_a_timed_out_reply_missing_from_the_history_is_sent_once_more(ctx, zm):
    flight = reply_times_out(ctx, zm)
    older = oa_item("zmsg-0", REPLY, flight["at"] - 60_000)  # the same words, an earlier reply
    zm.get(HISTORY, **history(oa_item("zother", "Cảm ơn anh", flight["at"] + 200), older))
    settle(ctx, "zalo:out:fc-m1:0")
    due_now(ctx, f"out:{CONV}")
    assert Drainer(ctx).drain(f"out:{CONV}") == "empty"
    assert calls(zm) == [("POST", CS), ("GET", HISTORY), ("POST", CS)]
    assert zm.request_history[-1].json() == {"recipient": {"user_id": USER}, "message": {"text": REPLY}}
    assert ctx.effects.recorded("zalo:out:fc-m1:0") == "zmsg-2"
    assert bridge_status(ctx.redis)["reconciled"] == {"zalo": {"not_found": 1}}


def test_an_unreadable_history_falls_back_to_a_resend_and_is_counted(ctx, zm):
    reply_times_out(ctx, zm)
    zm.get(HISTORY, json={"error": -224, "message": "The OA has not been granted this permission"})
    settle(ctx, "zalo:out:fc-m1:0")
    due_now(ctx, f"out:{CONV}")
    assert Drainer(ctx).drain(f"out:{CONV}") == "empty"
    assert calls(zm) == [("POST", CS), ("GET", HISTORY), ("POST", CS)]
    assert ctx.effects.recorded("zalo:out:fc-m1:0") == "zmsg-2"
    assert bridge_status(ctx.redis)["reconciled"] == {"zalo": {"unreadable": 1}}


def test_before_the_partner_surely_finished_nothing_is_read_or_sent_and_no_budget_spent(ctx, zm):
    reply_times_out(ctx, zm)
    due_now(ctx, f"out:{CONV}")
    head = ctx.lanes.head(f"out:{CONV}")[1]
    assert Drainer(ctx).drain(f"out:{CONV}") == "deferred"
    assert calls(zm) == [("POST", CS)]
    waited = ctx.lanes.head(f"out:{CONV}")[1]
    assert (waited.attempts, waited.first_failed_at) == (head.attempts, head.first_failed_at)
    due_ms = ctx.redis.zscore(keys.DUE, f"out:{CONV}")
    settle_ms = reconcile.SETTLE_TIMEOUTS * ctx.settings.http_timeout_seconds * 1000
    assert due_ms > time.time() * 1000 + settle_ms - 5000  # looked at once the call surely ended


def test_a_refused_send_leaves_nothing_to_look_up(ctx, zm):
    zm.post(CS, [{"status_code": 500, "text": "<html>500</html>"}, ok("zmsg-2")])
    assert run_outbound(ctx, agent_message("fc-m1", [{"text": {"content": REPLY}}])) == "deferred"
    assert ctx.effects.in_flight("zalo:out:fc-m1:0") is None
    due_now(ctx, f"out:{CONV}")
    assert Drainer(ctx).drain(f"out:{CONV}") == "empty"
    assert calls(zm) == [("POST", CS), ("POST", CS)]


def test_a_crashed_send_is_looked_up_by_the_worker_that_takes_the_lane_over(ctx, zm):
    """The worker died inside the call: only the in-flight record is left."""
    with pytest.raises(Killed):
        ctx.effects.once("zalo:out:fc-m1:0", lambda: _dies_mid_call(ctx), reconcile=lambda flight: None)
    flight = settle(ctx, "zalo:out:fc-m1:0")
    zm.get(HISTORY, **history(oa_item("zmsg-1", REPLY, flight["at"] + 10)))
    assert run_outbound(ctx, agent_message("fc-m1", [{"text": {"content": REPLY}}])) == "empty"
    assert calls(zm) == [("GET", HISTORY)]
    assert ctx.effects.recorded("zalo:out:fc-m1:0") == "zmsg-1"


class Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs."""


def _dies_mid_call(ctx) -> str:
    ctx.effects.take_off(to=USER, what={"kind": "text", "text": REPLY})
    raise Killed


# -- Zalo -> FreshChat --------------------------------------------------------------------------


def listed(message_id: str, parts: list[dict], at_ms: int, actor_id: str = FC_USER) -> dict:
    """A message as GET /conversations/{id}/messages lists it."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at_ms / 1000)) + f".{at_ms % 1000:03d}Z"
    return {
        "id": message_id,
        "conversation_id": CONV,
        "actor_type": "user",
        "actor_id": actor_id,
        "user_id": FC_USER,
        "message_type": "normal",
        "message_source": "api",
        "message_parts": parts,
        "reply_parts": [],
        "created_time": stamp,
    }


@pytest.fixture
def fm(ctx, public_dns):
    known_user(ctx)
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        yield mock


def user_text_times_out(ctx, fm) -> tuple[dict, dict]:
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    fm.post(FC_POST, [{"exc": requests.exceptions.ReadTimeout}, {"json": {"id": "fc-msg-2"}}])
    assert run_inbound(ctx, event) == "deferred"
    effect = f"fc:msg:{event['message']['msg_id']}"
    flight = ctx.effects.in_flight(effect)
    assert flight["conversation"] == CONV and flight["user"] == FC_USER
    return event, settle(ctx, effect)


def test_a_timed_out_post_listed_by_freshchat_is_not_posted_again(ctx, fm):
    event, flight = user_text_times_out(ctx, fm)
    parts = fm.request_history[0].json()["message_parts"]
    fm.get(FC_POST, json={"messages": [listed("fc-msg-1", parts, flight["at"] + 400)]})
    lane = f"in:{event['sender']['id']}"
    due_now(ctx, lane)
    assert Drainer(ctx).drain(lane) == "empty"
    assert calls(fm) == [("POST", FC_POST), ("GET", FC_POST)]
    since = flight["at"] - reconcile.SKEW_MS
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since / 1000)) + f".{since % 1000:03d}Z"
    assert parse_qs(urlsplit(fm.request_history[-1].url).query) == {
        "page": ["1"],
        "items_per_page": ["50"],
        "from_time": [stamp],
    }
    assert ctx.effects.recorded(f"fc:msg:{event['message']['msg_id']}")["id"] == "fc-msg-1"
    assert bridge_status(ctx.redis)["reconciled"] == {"freshchat": {"found": 1}}


def test_a_timed_out_post_not_listed_is_posted_once_more(ctx, fm):
    event, flight = user_text_times_out(ctx, fm)
    parts = fm.request_history[0].json()["message_parts"]
    agent_same_words = {**listed("fc-agent", parts, flight["at"] + 100, actor_id=AGENT), "actor_type": "agent"}
    fm.get(FC_POST, json={"messages": [agent_same_words]})
    lane = f"in:{event['sender']['id']}"
    due_now(ctx, lane)
    assert Drainer(ctx).drain(lane) == "empty"
    assert calls(fm) == [("POST", FC_POST), ("GET", FC_POST), ("POST", FC_POST)]
    assert fm.request_history[-1].json() == as_user(parts)
    assert ctx.effects.recorded(f"fc:msg:{event['message']['msg_id']}")["id"] == "fc-msg-2"


def test_the_echo_of_a_timed_out_reply_waits_for_it_and_becomes_no_note(ctx, zm):
    flight = reply_times_out(ctx, zm)
    echo = load_fixture("zalo", "webhooks", "oa_send_text__api_echo.json")
    echo["message"]["text"] = REPLY
    old_enough = int(time.time() * 1000) - 10_000  # past the grace for our own send record
    assert run_inbound(ctx, echo, received_at=old_enough) == "deferred"
    zm.get(HISTORY, **history(oa_item(echo["message"]["msg_id"], REPLY, flight["at"] + 300)))
    settle(ctx, "zalo:out:fc-m1:0")
    due_now(ctx, f"out:{CONV}")
    assert Drainer(ctx).drain(f"out:{CONV}") == "empty"  # the reply is found: it was that echo
    due_now(ctx, f"in:{USER}")
    assert Drainer(ctx).drain(f"in:{USER}") == "empty"
    assert calls(zm) == [("POST", CS), ("GET", HISTORY)]  # and no private note in FreshChat


def test_a_reply_to_an_anonymous_visitor_is_resent_blind_and_counted(ctx, zm):
    """Zalo's history is read per OA user: an anonymous visitor's reply cannot be looked up."""
    flight = {"at": 0, "to": f"{ANONYMOUS}2f1b0c", "what": {"kind": "text", "text": REPLY}}
    assert reconcile.reconciler(ctx, "zalo", lambda f: reconcile.find_zalo_send(ctx, f))(flight) is None
    assert calls(zm) == []
    assert bridge_status(ctx.redis)["reconciled"] == {"zalo": {"unreadable": 1}}
