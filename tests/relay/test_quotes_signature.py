"""Quotes both ways (Zalo quote_msg_id <-> FreshChat in_reply_to) and the agent signature: the
exact requests sent to each partner."""

from __future__ import annotations

from dataclasses import replace

import pytest
import requests_mock

from app.integrations.freshchat.errors import FreshchatPermanent
from app.relay.outbound import Dress
from sandbox.helpers import FC_API, PNG, ZALO_API, load_fixture, partners_answer_probes
from tests.relay.test_inbound import REPLY, as_user, known_user
from tests.relay.test_inbound import run as run_inbound
from tests.relay.test_outbound import AGENT, ASSETS, CONV, FC_USER, FOLDER, USER, agent_message, ok
from tests.relay.test_outbound import run as run_outbound
from workers.context import WorkerContext

CS = f"{ZALO_API}/v3.0/oa/message/cs"
QUOTED_ZALO = "96d3cdf3af150460909"  # what user_send_text__quote.json quotes
QUOTED_FC = "7c6e8673-def2-4894-aef9-3daadda61542"  # what message_create__agent_in_reply_to.json answers
AGENT_URL = f"{FC_API}/agents/{AGENT}"
SIGNATURE = "{text}\n— {agent}"


def zalo_sends(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.url == CS]


def fc_posts(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.method == "POST" and r.url.startswith(FC_API)]


def agent_reads(m) -> int:
    return sum(1 for r in m.request_history if r.url == AGENT_URL)


def signing(ctx, template: str = SIGNATURE) -> WorkerContext:
    return WorkerContext(replace(ctx.settings, agent_signature=template), ctx.redis)


@pytest.fixture
def m(ctx, public_dns):
    with requests_mock.Mocker() as mock:
        mock.post(f"{FC_API}/conversations/{CONV}/messages", json={"id": "fc-msg-1"})
        mock.post(CS, **ok())
        mock.post(f"{ZALO_API}/v2.0/oa/upload/image", json={"error": 0, "data": {"attachment_id": "att-img"}})
        mock.get(AGENT_URL, json=load_fixture("freshchat", "answers", "agent.json"))
        partners_answer_probes(mock)
        yield mock


@pytest.fixture
def conversation(ctx):
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.link_conversation(USER, CONV)


# --- a Zalo user's quote -> in_reply_to ------------------------------------------------------------


def test_a_relayed_message_is_mapped_both_ways(ctx, m):
    known_user(ctx)
    run_inbound(ctx, load_fixture("zalo", "webhooks", "user_send_text.json"))
    assert (ctx.messages.freshchat_id("96d3cdf3af150460909"), ctx.messages.zalo_id("fc-msg-1")) == (
        "fc-msg-1",
        "96d3cdf3af150460909",
    )


def test_a_quote_freshchat_refuses_to_link_still_arrives_with_its_text_quote(ctx, m):
    known_user(ctx)
    ctx.messages.link(QUOTED_ZALO, QUOTED_FC)
    refused = {"status_code": 400, "json": {"code": 400, "status": "INVALID_VALUE", "message": "in_reply_to"}}
    m.post(f"{FC_API}/conversations/{CONV}/messages", [refused, {"json": {"id": "fc-msg-2"}}])
    run_inbound(ctx, load_fixture("zalo", "webhooks", "user_send_text__quote.json"))
    unknown_quote = {"text": {"content": "↩ Reply to an earlier message"}}
    assert fc_posts(m) == [
        {**as_user([unknown_quote, REPLY]), "in_reply_to": {"message_id": QUOTED_FC}},
        as_user([unknown_quote, REPLY]),
    ]


# --- an agent's in_reply_to -> quote_message_id ----------------------------------------------------


def test_an_answer_to_a_relayed_user_message_quotes_it_in_zalo(ctx, m, conversation):
    ctx.messages.link(QUOTED_ZALO, QUOTED_FC)
    run_outbound(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_in_reply_to.json"))
    assert zalo_sends(m) == [
        {
            "recipient": {"user_id": USER},
            "message": {"text": "Dạ size M còn ạ, anh đặt luôn nhé.", "quote_message_id": QUOTED_ZALO},
        }
    ]


def test_an_answer_to_a_message_the_bridge_never_relayed_goes_without_a_quote(ctx, m, conversation):
    run_outbound(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_in_reply_to.json"))
    assert zalo_sends(m) == [
        {"recipient": {"user_id": USER}, "message": {"text": "Dạ size M còn ạ, anh đặt luôn nhé."}}
    ]


def test_a_quote_zalo_refuses_is_sent_once_more_without_it(ctx, m, conversation):
    ctx.messages.link(QUOTED_ZALO, QUOTED_FC)
    m.post(CS, [{"json": load_fixture("zalo", "answers", "message_refused__invalid_quote.json")}, ok("zmsg-2")])
    run_outbound(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_in_reply_to.json"))
    text = "Dạ size M còn ạ, anh đặt luôn nhé."
    assert zalo_sends(m) == [
        {"recipient": {"user_id": USER}, "message": {"text": text, "quote_message_id": QUOTED_ZALO}},
        {"recipient": {"user_id": USER}, "message": {"text": text}},
    ]
    assert ctx.mapping.is_sent_by_us("zmsg-2") and not fc_posts(m)


def test_a_refusal_about_the_user_is_not_retried_without_the_quote(ctx, m, conversation):
    ctx.messages.link(QUOTED_ZALO, QUOTED_FC)
    m.post(CS, json={"error": -230, "message": "User has not interacted with the OA in the past 7 days"})
    run_outbound(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_in_reply_to.json"))
    assert len(zalo_sends(m)) == 1
    assert (
        fc_posts(m)[0]["message_type"] == "private" and "-230" in fc_posts(m)[0]["message_parts"][0]["text"]["content"]
    )


def test_only_the_first_text_part_carries_the_quote(ctx, m, conversation):
    ctx.messages.link(QUOTED_ZALO, QUOTED_FC)
    m.get(f"{ASSETS}/img/a.png", content=PNG, headers={"Content-Type": "image/png"})
    parts = [{"image": {"url": f"{ASSETS}/img/a.png"}}, {"text": {"content": "Một"}}, {"text": {"content": "Hai"}}]
    run_outbound(ctx, agent_message("m-q", parts, in_reply_to={"message_id": QUOTED_FC}))
    assert [body["message"].get("quote_message_id") for body in zalo_sends(m)] == [None, QUOTED_ZALO, None]


# --- the agent signature --------------------------------------------------------------------------


def test_replies_are_unsigned_by_default_and_freshchat_is_not_asked(ctx, m, conversation):
    run_outbound(ctx, load_fixture("freshchat", "webhooks", "message_create__agent_text.json"))
    assert zalo_sends(m)[0]["message"] == {"text": "Chào anh, em kiểm tra đơn hàng ngay ạ."}
    assert agent_reads(m) == 0


def test_a_signed_reply_ends_with_the_agents_first_name_read_once(ctx, m, conversation):
    signed = signing(ctx)
    run_outbound(signed, agent_message("m-s1", [{"text": {"content": "Dạ em gửi ạ."}}]))
    run_outbound(signed, agent_message("m-s2", [{"text": {"content": "Anh xem giúp em."}}]))
    assert [body["message"]["text"] for body in zalo_sends(m)] == ["Dạ em gửi ạ.\n— Lan", "Anh xem giúp em.\n— Lan"]
    assert agent_reads(m) == 1  # cached in Redis
    assert ctx.redis.ttl(ctx.keys.agent_name(AGENT)) > 3000


def test_a_signed_reply_with_a_quote_is_signed_and_quoted(ctx, m, conversation):
    ctx.messages.link(QUOTED_ZALO, QUOTED_FC)
    run_outbound(signing(ctx), load_fixture("freshchat", "webhooks", "message_create__agent_in_reply_to.json"))
    assert zalo_sends(m)[0]["message"] == {
        "text": "Dạ size M còn ạ, anh đặt luôn nhé.\n— Lan",
        "quote_message_id": QUOTED_ZALO,
    }


@pytest.mark.parametrize(
    "answer,cached",
    [
        ({"status_code": 404, "json": {"message": "AGENT_NOT_FOUND"}}, True),
        ({"status_code": 503, "text": "down"}, False),
    ],
)
def test_an_agent_freshchat_cannot_name_gets_the_text_unsigned(ctx, m, conversation, answer, cached):
    m.get(AGENT_URL, **answer)
    run_outbound(signing(ctx), agent_message("m-u", [{"text": {"content": "Dạ."}}]))
    assert zalo_sends(m) == [{"recipient": {"user_id": USER}, "message": {"text": "Dạ."}}]
    assert (ctx.mapping.agent_name(AGENT) == "") is cached  # a 404 is remembered a while, an outage is not


def test_only_text_parts_are_signed(ctx, m, conversation):
    m.get(f"{ASSETS}/img/a.png", content=PNG, headers={"Content-Type": "image/png"})
    m.get(f"{ASSETS}/files/a.zip", content=b"PK\x03\x04" + b"\x00" * 50)
    parts = [
        {"image": {"url": f"{ASSETS}/img/a.png"}},
        {"file": {"name": "a.zip", "url": f"{ASSETS}/files/a.zip"}},
        {"text": {"content": "Ảnh và file đây ạ."}},
    ]
    run_outbound(signing(ctx), agent_message("m-att", parts))
    image, link, text = zalo_sends(m)
    assert "text" not in image["message"] and "— Lan" not in link["message"]["text"]
    assert text["message"] == {"text": "Ảnh và file đây ạ.\n— Lan"}


def test_a_long_text_keeps_the_agents_words_in_the_file_and_signs_the_message(ctx, m, conversation, app):
    text = "Chi tiết đơn hàng. " * 200
    run_outbound(signing(ctx), agent_message("m-long", [{"text": {"content": text}}]))
    [body] = zalo_sends(m)
    assert body["message"]["text"].endswith(
        "ký tự): " + media_url_of(ctx, f"{FOLDER}/fc/m-long/0") + "\n— Lan"
    )  # customer_language vi
    link = media_url_of(ctx, f"{FOLDER}/fc/m-long/0")
    served = app.test_client().get(link.removeprefix(ctx.settings.public_base_url))
    assert served.data == text.encode()


def test_a_text_that_fits_only_unsigned_goes_as_a_file_link(ctx, m, conversation):
    text = "x" * 1995
    run_outbound(signing(ctx), agent_message("m-edge", [{"text": {"content": text}}]))
    [body] = zalo_sends(m)
    assert len(body["message"]["text"]) <= 2000 and body["message"]["text"].endswith("\n— Lan")
    assert "📄" in body["message"]["text"]


def media_url_of(ctx, key: str) -> str:
    from app.media.links import media_url

    return media_url(ctx.settings, key)


@pytest.mark.parametrize(
    "template,text,signed",
    [
        ("{text}\n— {agent}", "Dạ", "Dạ\n— Lan"),
        ("[{agent}] {text}", "Dạ", "[Lan] Dạ"),
        ("— {agent}", "Dạ", "Dạ\n— Lan"),  # no {text}: a line after the text
        ("{text}\n— {agent}", "Gõ {agent} hay {text} {x}", "Gõ {agent} hay {text} {x}\n— Lan"),
    ],
)
def test_the_template_is_filled_once_and_never_loses_the_text(template, text, signed):
    assert Dress(template=template, agent="Lan").signed(text) == signed
    assert Dress(template=template, agent="").signed(text) == text


def test_freshchat_client_reads_an_agent(ctx):
    with requests_mock.Mocker() as mock:
        mock.get(AGENT_URL, json=load_fixture("freshchat", "answers", "agent.json"))
        assert ctx.freshchat.get_agent(AGENT)["first_name"] == "Lan"
        assert mock.request_history[0].headers["Authorization"] == "Bearer fc-api-key-example"
        mock.get(AGENT_URL, status_code=404, json={"message": "AGENT_NOT_FOUND"})
        with pytest.raises(FreshchatPermanent):
            ctx.freshchat.get_agent(AGENT)
