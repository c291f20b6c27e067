"""Each Lua script on its own against a real Redis: the state it leaves and what it answers,
refusals included. Then scripts.py itself: named calls, declared-name checks, includes."""

from __future__ import annotations

import pytest

from app.bridge import keys
from app.bridge.lanes import ACCEPT, APPEND, DEFER, POP, RELEASE, RENEW, TAKE
from app.bridge.ratelimit import BACKOFF, CALM
from app.bridge.ratelimit import TAKE as RATE_TAKE
from app.bridge.scripts import LUA_DIR, LuaScript

LANE = "in:u1"
LIST, LEASE = keys.lane(LANE), keys.lease(LANE)
SEEN = keys.DEFAULT_KEYS.seen("zalo", "e1")
NOW = 1_800_000_000_000
LEASE_MS = 30000


RECEIVED = keys.DEFAULT_KEYS.last_webhook("zalo")


def accept(redis, item="a", seen=SEEN, now=NOW, received_at=""):
    return ACCEPT(
        redis,
        seen=seen,
        lane=LIST,
        due=keys.DUE,
        wake=keys.WAKE,
        received=RECEIVED,
        ttl=60,
        item=item,
        lane_id=LANE,
        now=now,
        received_at=received_at,
    )


def leased(redis, *items, token="t1", now=NOW):
    """A lane holding `items`, leased to `token` at `now`."""
    for item in items:
        redis.rpush(LIST, item)
    redis.zadd(keys.DUE, {LANE: now + LEASE_MS})
    redis.set(LEASE, token, px=LEASE_MS)


def pop(redis, token="t1", raw="a", now=NOW + 5):
    return POP(
        redis,
        lease=LEASE,
        lane=LIST,
        due=keys.DUE,
        token=token,
        raw=raw,
        lane_id=LANE,
        now=now,
        lease_ms=LEASE_MS,
        candidates=2,
    )


def items(redis) -> list[str]:
    return [x.decode() for x in redis.lrange(LIST, 0, -1)]


def due(redis) -> float | None:
    return redis.zscore(keys.DUE, LANE)


# -- accept.lua and append.lua ----------------------------------------------------------------


def test_accept_queues_schedules_and_rings_once(redis):
    assert accept(redis) == 1
    assert items(redis) == ["a"] and due(redis) == NOW
    assert redis.lrange(keys.WAKE, 0, -1) == [LANE.encode()]
    assert 0 < redis.ttl(SEEN) <= 60


def test_accept_refuses_a_seen_key_and_changes_nothing(redis):
    accept(redis)
    assert accept(redis, item="again", now=NOW + 1) == 0
    assert items(redis) == ["a"] and due(redis) == NOW and redis.llen(keys.WAKE) == 1


def test_accept_marks_the_last_webhook_when_given_a_time_duplicate_or_not(redis):
    assert accept(redis, received_at="1800000000.5") == 1 and redis.get(RECEIVED) == b"1800000000.5"
    assert accept(redis, received_at="1800000001.5") == 0 and redis.get(RECEIVED) == b"1800000001.5"
    redis.delete(RECEIVED)
    assert accept(redis, seen=SEEN + "2") == 1 and not redis.exists(RECEIVED)  # a catch-up gives none


def test_accept_keeps_the_time_of_a_lane_already_scheduled(redis):
    redis.zadd(keys.DUE, {LANE: NOW + 9000})  # deferred or leased
    assert accept(redis, now=NOW) == 1
    assert due(redis) == NOW + 9000 and redis.llen(keys.WAKE) == 0


def test_append_queues_without_a_dedupe_key(redis):
    call = dict(lane=LIST, due=keys.DUE, wake=keys.WAKE, lane_id=LANE)
    assert APPEND(redis, item="a", now=NOW, **call) == 1
    assert APPEND(redis, item="a", now=NOW + 1, **call) == 1  # no dedupe: twice is twice
    assert items(redis) == ["a", "a"] and due(redis) == NOW and redis.llen(keys.WAKE) == 1


# -- take.lua ---------------------------------------------------------------------------------


ZALO_OPEN, FC_OPEN = keys.DEFAULT_KEYS.breaker_open("zalo"), keys.DEFAULT_KEYS.breaker_open("freshchat")


def take(redis, token="t1", now=NOW):
    marks = {"zalo_open": ZALO_OPEN, "freshchat_open": FC_OPEN}
    return TAKE(
        redis, lease=LEASE, due=keys.DUE, lane=LIST, **marks, lane_id=LANE, now=now, token=token, lease_ms=LEASE_MS
    )


def test_take_leases_a_due_lane_until_the_lease_ends(redis):
    redis.zadd(keys.DUE, {LANE: NOW})
    assert take(redis) == [1, None, -2, -2]  # leased, the lane's head (none here), no breaker open
    assert redis.get(LEASE) == b"t1" and LEASE_MS - 1000 < redis.pttl(LEASE) <= LEASE_MS
    assert due(redis) == NOW + LEASE_MS


def test_take_refuses_a_leased_lane(redis):
    redis.zadd(keys.DUE, {LANE: NOW})
    redis.set(LEASE, "other", px=LEASE_MS)
    assert take(redis) == 0
    assert redis.get(LEASE) == b"other" and due(redis) == NOW


def test_take_hands_back_the_head_with_the_lease(redis):
    redis.rpush(LIST, "a", "b")
    redis.zadd(keys.DUE, {LANE: NOW})
    assert take(redis) == [1, b"a", -2, -2] and items(redis) == ["a", "b"]


def test_take_reads_the_open_breaker_marks_with_the_lease(redis):
    redis.zadd(keys.DUE, {LANE: NOW})
    redis.set(FC_OPEN, "1", px=4000)
    _, _, zalo_open, freshchat_open = take(redis)
    assert zalo_open == -2 and 3000 < freshchat_open <= 4000


def test_take_refuses_a_lane_not_due_yet_or_not_scheduled(redis):
    assert take(redis) == 0
    redis.zadd(keys.DUE, {LANE: NOW + 1})
    assert take(redis) == 0
    assert not redis.exists(LEASE) and due(redis) == NOW + 1


# -- pop.lua ----------------------------------------------------------------------------------


def test_pop_hands_back_the_next_head_and_extends_the_lease(redis):
    leased(redis, "a", "b")
    redis.pexpire(LEASE, 1000)
    assert pop(redis) == [1, b"b"]
    assert items(redis) == ["b"] and redis.pttl(LEASE) > 1000 and due(redis) == NOW + 5 + LEASE_MS


def test_pop_of_the_last_item_gives_the_lane_up(redis):
    leased(redis, "a")
    assert pop(redis) == [0]
    assert not redis.exists(LIST) and not redis.exists(LEASE) and due(redis) is None


def test_pop_of_the_last_item_hands_back_the_lanes_due_now(redis):
    leased(redis, "a")
    redis.zadd(keys.DUE, {"in:x": NOW - 2, "in:y": NOW - 1, "in:z": NOW, "in:later": NOW + 60000})
    assert pop(redis) == [0, b"in:x", b"in:y"]  # the `candidates` due first, not the later one


def test_pop_refuses_a_wrong_token(redis):
    leased(redis, "a", token="other")
    assert pop(redis) == [-1]
    assert items(redis) == ["a"] and redis.get(LEASE) == b"other"


def test_pop_refuses_a_changed_head(redis):
    leased(redis, "b", "a")
    assert pop(redis, raw="a") == [-2]
    assert items(redis) == ["b", "a"] and due(redis) == NOW + LEASE_MS


# -- release.lua ------------------------------------------------------------------------------


def release(redis, token="t1"):
    return RELEASE(redis, lease=LEASE, lane=LIST, due=keys.DUE, token=token, lane_id=LANE, now=NOW + 5)


def test_release_with_work_left_makes_the_lane_due_now(redis):
    leased(redis, "a")
    assert release(redis) == 1
    assert not redis.exists(LEASE) and due(redis) == NOW + 5


def test_release_of_an_empty_lane_forgets_it(redis):
    leased(redis)
    assert release(redis) == 0
    assert not redis.exists(LEASE) and due(redis) is None


def test_release_refuses_a_wrong_token(redis):
    leased(redis, "a", token="other")
    assert release(redis) == -1
    assert redis.get(LEASE) == b"other" and due(redis) == NOW + LEASE_MS


# -- defer.lua --------------------------------------------------------------------------------


def defer(redis, token="t1", raw="a"):
    return DEFER(
        redis,
        lease=LEASE,
        lane=LIST,
        due=keys.DUE,
        token=token,
        raw=raw,
        updated="a+1",
        due_ms=NOW + 60000,
        lane_id=LANE,
    )


def test_defer_rewrites_the_head_and_gives_the_lease_up_until_later(redis):
    leased(redis, "a", "b")
    assert defer(redis) == 1
    assert items(redis) == ["a+1", "b"] and not redis.exists(LEASE) and due(redis) == NOW + 60000


def test_defer_leaves_a_changed_head_as_it_is(redis):
    leased(redis, "b")
    assert defer(redis, raw="a") == 1
    assert items(redis) == ["b"] and due(redis) == NOW + 60000


def test_defer_refuses_a_wrong_token(redis):
    leased(redis, "a", token="other")
    assert defer(redis) == -1
    assert items(redis) == ["a"] and redis.get(LEASE) == b"other" and due(redis) == NOW + LEASE_MS


# -- renew.lua --------------------------------------------------------------------------------


def renew(redis, token="t1"):
    return RENEW(redis, lease=LEASE, due=keys.DUE, token=token, lease_ms=LEASE_MS, lane_id=LANE, now=NOW + 7)


def test_renew_extends_the_lease_and_the_due_time(redis):
    leased(redis, "a")
    redis.pexpire(LEASE, 1000)
    assert renew(redis) == 1
    assert redis.pttl(LEASE) > 1000 and due(redis) == NOW + 7 + LEASE_MS


def test_renew_refuses_a_wrong_token(redis):
    leased(redis, "a", token="other")
    redis.pexpire(LEASE, 1000)
    assert renew(redis) == 0
    assert redis.pttl(LEASE) <= 1000 and due(redis) == NOW + LEASE_MS


def test_renew_never_schedules_a_lane_that_left_the_due_set(redis):
    redis.set(LEASE, "t1", px=LEASE_MS)
    assert renew(redis) == 1
    assert due(redis) is None


# -- rate_take.lua, rate_backoff.lua, rate_calm.lua -------------------------------------------

BUCKET = keys.DEFAULT_KEYS.rate("zalo")
RATE = 0.01  # tokens a ms: one every 100 ms


def level(now=NOW):
    return dict(bucket=BUCKET, cap=2, rate=RATE, now=now, recover_ms=30000)


def bucket(redis) -> dict:
    return {k.decode(): float(v) for k, v in redis.hgetall(BUCKET).items()}


def test_rate_take_grants_from_a_full_bucket_then_says_how_long_to_wait(redis):
    assert RATE_TAKE(redis, **level()) == [0, 0]
    assert bucket(redis) == {"tokens": 1, "ts": NOW, "renewed": NOW} and 0 < redis.pttl(BUCKET) <= 3600000
    assert RATE_TAKE(redis, **level()) == [0, 0]
    assert RATE_TAKE(redis, **level(NOW + 30)) == [70, 0]  # 0.3 of a token refilled
    assert bucket(redis) == {"tokens": pytest.approx(0.3), "ts": NOW + 30, "renewed": NOW}


def test_rate_take_renews_the_buckets_ttl_every_half_hour_not_on_every_grant(redis):
    """A grant was 5 commands, 2 of them the pause's GET and the TTL's PEXPIRE: the pause is
    a field of the bucket, and the hour's TTL is renewed once at least half of it has passed."""
    assert RATE_TAKE(redis, **level()) == [0, 0]
    redis.pexpire(BUCKET, 2_000_000)  # as if half an hour and a bit had passed since
    redis.config_resetstat()
    assert RATE_TAKE(redis, **level(NOW + 1_700_000)) == [0, 0]
    calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in redis.info("commandstats").items()}
    assert calls == {"config": 1, "evalsha": 1, "hmget": 1, "hset": 1}
    assert 1_900_000 < redis.pttl(BUCKET) <= 2_000_000  # not renewed: more than half an hour left
    assert RATE_TAKE(redis, **level(NOW + 1_800_000)) == [0, 0]
    assert 3_500_000 < redis.pttl(BUCKET) <= 3_600_000 and bucket(redis)["renewed"] == NOW + 1_800_000


def test_rate_take_refuses_during_a_pause_without_touching_the_bucket(redis):
    redis.hset(BUCKET, mapping={"tokens": 2, "ts": NOW, "streak": 3, "pause": NOW + 500})
    assert RATE_TAKE(redis, **level()) == [500, 3]
    assert bucket(redis) == {"tokens": 2, "ts": NOW, "streak": 3, "pause": NOW + 500}


def backoff(redis, granted, now=NOW, max_ms=8000):
    return BACKOFF(redis, **level(now), granted=granted, first_ms=1000, max_ms=max_ms, floor=0.1)


def test_rate_backoff_pauses_everyone_and_halves_the_rate(redis):
    assert backoff(redis, granted=NOW - 10) == 1000
    assert bucket(redis) == {
        "tokens": 2,
        "ts": NOW,
        "factor": 0.5,
        "slow_at": NOW,
        "streak": 1,
        "streak_at": NOW,
        "renewed": NOW,
        "pause": NOW + 1000,
    }
    assert 3_600_000 < redis.pttl(BUCKET) <= 3_601_000  # the bucket outlives its pause
    assert RATE_TAKE(redis, **level(NOW + 400)) == [600, 1]  # everyone waits
    assert backoff(redis, granted=NOW + 1, now=NOW + 2) == 2000  # a second refusal in a row
    assert bucket(redis)["pause"] == NOW + 2002 and bucket(redis)["streak"] == 2


def test_rate_backoff_caps_the_pause_and_the_cut(redis):
    redis.hset(
        BUCKET, mapping={"tokens": 0, "ts": NOW, "factor": 0.1, "slow_at": NOW, "streak": 9, "streak_at": NOW - 1}
    )
    assert backoff(redis, granted=NOW) == 8000
    assert bucket(redis)["factor"] == pytest.approx(0.1) and bucket(redis)["streak"] == 10


def test_rate_backoff_ignores_a_refusal_of_a_call_already_in_flight(redis):
    backoff(redis, granted=NOW - 10)
    before = bucket(redis)
    assert backoff(redis, granted=NOW - 5, now=NOW + 300) == 700  # what is left of the pause
    assert bucket(redis) == before and before["pause"] == NOW + 1000


def test_rate_calm_ends_the_streak_only_for_a_newer_grant(redis):
    redis.hset(BUCKET, mapping={"streak": 2, "streak_at": NOW})
    assert CALM(redis, bucket=BUCKET, granted=NOW - 1) == 0
    assert bucket(redis)["streak"] == 2
    assert CALM(redis, bucket=BUCKET, granted=NOW + 1) == 0
    assert bucket(redis)["streak"] == 0


# -- scripts.py -------------------------------------------------------------------------------


def test_a_missing_or_unknown_name_is_a_type_error_naming_it(redis):
    with pytest.raises(TypeError, match=r"missing \['lane_id'\], unknown \[\]"):
        RENEW(redis, lease=LEASE, due=keys.DUE, token="t", lease_ms=1, now=NOW)
    with pytest.raises(TypeError, match=r"missing \[\], unknown \['lane'\]"):
        RENEW(redis, lease=LEASE, due=keys.DUE, token="t", lease_ms=1, now=NOW, lane_id=LANE, lane=LIST)
    assert redis.dbsize() == 0


@pytest.mark.parametrize("path", sorted(LUA_DIR.glob("*.lua")), ids=lambda p: p.name)
def test_every_shipped_script_declares_what_it_uses(path):
    script = LuaScript(path.stem)
    assert script.key_names or script.arg_names


def write(tmp_path, name: str, text: str):
    (tmp_path / f"{name}.lua").write_text(text)


@pytest.mark.parametrize(
    "body, complaint",
    [
        ("-- KEYS: a b\n-- ARGV: x\nreturn {KEYS[1], KEYS[2], KEYS[3], ARGV[1]}", r"2 KEYS \(a b\).*KEYS\[3\]"),
        ("-- KEYS: a b\n-- ARGV: x\nreturn {KEYS[1], ARGV[1]}", r"2 KEYS \(a b\).*KEYS\[1\]"),
        ("-- KEYS: a\n-- ARGV: x y\nreturn {KEYS[1], ARGV[1]}", r"2 ARGV \(x y\).*ARGV\[1\]"),
        ("-- KEYS: a\nreturn {KEYS[1], ARGV[1]}", r"0 ARGV \(\).*ARGV\[1\]"),
        ("-- KEYS: a\n-- ARGV: a\nreturn {KEYS[1], ARGV[1]}", "declares a name twice"),
    ],
)
def test_declared_names_must_match_the_indexes_the_code_uses(tmp_path, body, complaint):
    write(tmp_path, "s", body)
    with pytest.raises(ValueError, match=complaint):
        LuaScript("s", tmp_path)


def test_indexes_in_comments_do_not_count(tmp_path):
    write(tmp_path, "s", "-- KEYS: a\n-- KEYS[2] was dropped\nreturn redis.call('GET', KEYS[1])")
    assert LuaScript("s", tmp_path).key_names == ["a"]


def test_an_include_is_spliced_in_and_its_names_come_first(tmp_path, redis):
    write(tmp_path, "part", "-- KEYS: counter\n-- ARGV: by\nlocal n = redis.call('INCRBY', KEYS[1], ARGV[1])\n")
    write(
        tmp_path,
        "whole",
        "-- KEYS: counter out\n-- ARGV: by times\n-- INCLUDE: part\n"
        "redis.call('SET', KEYS[2], n * ARGV[2])\nreturn n\n",
    )
    whole = LuaScript("whole", tmp_path)
    assert whole.key_names == ["counter", "out"] and whole.arg_names == ["by", "times"]
    assert whole(redis, counter="c", out="o", by=3, times=2) == 3
    assert redis.get("o") == b"6"


@pytest.mark.parametrize(
    "header",
    [
        "-- KEYS: out counter\n-- ARGV: by times",  # the part's key, not first
        "-- KEYS: counter out\n-- ARGV: times by",  # the part's argument, not first
    ],
)
def test_an_include_whose_names_do_not_lead_is_refused(tmp_path, header):
    write(tmp_path, "part", "-- KEYS: counter\n-- ARGV: by\nlocal n = redis.call('INCRBY', KEYS[1], ARGV[1])\n")
    write(tmp_path, "whole", header + "\n-- INCLUDE: part\nreturn {n, KEYS[2], ARGV[2]}\n")
    with pytest.raises(ValueError, match="includes part.lua: its (KEYS|ARGV) must start with"):
        LuaScript("whole", tmp_path)
