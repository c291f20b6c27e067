"""The on-disk key layout. The literals here are deliberate: a single-OA bridge upgraded in
place must find its mappings, tokens and lanes where older versions wrote them."""

from __future__ import annotations

from app.bridge import keys
from app.bridge.keys import DEFAULT_KEYS, Keys


def test_the_default_connection_keeps_the_layout_older_bridges_wrote():
    assert (keys.DUE, keys.WAKE, keys.HEARTBEAT) == ("zfb:due", "zfb:wake", "zfb:worker:heartbeat")
    assert (keys.lane("in:u1"), keys.lease("in:u1")) == ("zfb:lane:in:u1", "zfb:lease:in:u1")
    k = DEFAULT_KEYS
    assert [
        k.seen("zalo", "e1"),
        k.done("x"),
        k.zalo_user("u1"),
        k.last_seen("u1"),
        k.conversation("c1"),
        k.sent("m1"),
        k.dead,
        k.dead_order,
        k.errors,
        k.zalo_token,
        k.zalo_token_lock,
        k.oauth_state("s"),
        k.rate("zalo"),
        k.breaker_ok("zalo"),
        k.breaker_open("zalo"),
        k.breaker_probing("zalo"),
    ] == [
        "zfb:seen:zalo:e1",
        "zfb:done:x",
        "zfb:zu:u1",
        "zfb:lastseen:u1",
        "zfb:fcc:c1",
        "zfb:sent:m1",
        "zfb:dead",
        "zfb:dead:order",
        "zfb:errors",
        "zfb:zalo:token",
        "zfb:zalo:token:lock",
        "zfb:oauth:s",
        "zfb:rl:zalo",
        "zfb:breaker:zalo:ok",
        "zfb:breaker:zalo:open",
        "zfb:breaker:zalo:probing",
    ]


def test_another_connection_lives_below_its_own_prefix():
    k = Keys("oa2")
    assert (k.seen("zalo", "e1"), k.zalo_token, k.rate("zalo")) == (
        "zfb:c:oa2:seen:zalo:e1",
        "zfb:c:oa2:zalo:token",
        "zfb:c:oa2:rl:zalo",
    )


def test_what_connections_share_is_named_by_app_or_account():
    account = "https://acme.freshchat.com/v2"
    assert keys.conversation_owner(account) == f"zfb:fcowner:{keys.account_id(account)}"
    assert len(keys.account_id(account)) == 16 and keys.account_id(account) != keys.account_id(account + "x")
    assert (keys.zalo_rate_name("123"), DEFAULT_KEYS.rate(keys.zalo_rate_name("123"))) == (
        "zalo@123",
        "zfb:rl:zalo@123",
    )
    assert Keys("oa2").last_webhook("zalo") == "zfb:c:oa2:webhook:last:zalo"


def test_a_lane_id_says_whose_lane_it_is():
    for connection in ("default", "oa2"):
        assert keys.lane_connection(keys.lane_for(connection, "in:u1")) == connection
    assert keys.lane_connection("out:a/b") == "default"  # a slash after the direction is no prefix


def test_message_map_agent_names_and_anonymous_visitors_have_keys_of_their_own():
    k = DEFAULT_KEYS
    assert (k.message_from_zalo("z1"), k.message_from_freshchat("f1"), k.agent_name("a1")) == (
        "zfb:msg:z:z1",
        "zfb:msg:fc:f1",
        "zfb:agent:a1",
    )
    # an anonymous visitor's bridge id ("anon:<id>") never meets an OA user's (all digits)
    assert k.zalo_user("anon:123") != k.zalo_user("123") and Keys("oa2").agent_name("a1") == "zfb:c:oa2:agent:a1"
