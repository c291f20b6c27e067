"""Effects: a partner call runs once per key, and its record survives a Redis restart."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis as redis_lib

from app.bridge.effects import Effects, RecordNotReplicated
from app.bridge.keys import DEFAULT_KEYS
from app.integrations.zalo.errors import ZaloOutcomeUnknown, ZaloPermanent
from sandbox.procs import wait_until
from sandbox.redis_server import RedisServer


def test_second_run_returns_the_recorded_result_without_calling(redis):
    effects, calls = Effects(redis, 60), []
    assert effects.once("k", lambda: calls.append(1) or "first") == "first"
    assert effects.once("k", lambda: calls.append(2) or "second") == "first"
    assert calls == [1]


def test_a_failed_call_records_nothing(redis):
    effects = Effects(redis, 60)
    try:
        effects.once("k", lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    assert effects.once("k", lambda: "retried") == "retried"


def test_the_record_waits_for_redis_to_come_back(redis, redis_server):
    client = redis_lib.Redis.from_url(redis_server.url, socket_connect_timeout=0.2)
    effects = Effects(client, 60)

    def partner_call():
        redis_server.stop()  # Redis goes away while the partner is answering
        threading.Timer(0.5, redis_server.start).start()
        return "partner-id"

    assert effects.once("k", partner_call) == "partner-id"
    time.sleep(0.1)
    assert client.get(DEFAULT_KEYS.done("k")) == b'"partner-id"'


def test_the_in_flight_record_and_the_result_share_one_key_so_recording_is_one_set(redis):
    """Recording a result was SET done + DEL flight; the record now waits in `done`, and the
    result takes its place: one command, nothing left to clear."""
    effects, seen = Effects(redis, 60), []

    def send():
        effects.take_off(to="user-1")
        seen.append(effects.in_flight("k"))
        redis.config_resetstat()
        return "zmsg-1"

    assert effects.once("k", send, reconcile=lambda flight: None) == "zmsg-1"
    calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in redis.info("commandstats").items()}
    assert calls == {"config": 1, "set": 1}
    assert seen[0]["to"] == "user-1" and effects.in_flight("k") is None
    assert redis.keys("*") == [DEFAULT_KEYS.done("k").encode()] and effects.recorded("k") == "zmsg-1"


@pytest.mark.parametrize("read_ahead", [False, True], ids=["read-by-once", "read-ahead"])
def test_an_in_flight_record_is_no_result_and_is_reconciled(redis, read_ahead):
    """Read by `once` itself, or ahead with the user's hash (a Zalo text: inbound.py)."""
    effects, looked = Effects(redis, 60), []

    def times_out():
        effects.take_off(to="user-1")
        raise ZaloOutcomeUnknown("Zalo timed out")

    with pytest.raises(ZaloOutcomeUnknown):
        effects.once("k", times_out, reconcile=lambda flight: None)
    assert effects.recorded("k") is None  # a record of a send is not its result
    if read_ahead:
        _read_ahead(redis, effects, "k")
    found = effects.once("k", lambda: "again", reconcile=lambda flight: looked.append(flight) or "zmsg-found")
    assert found == "zmsg-found" and looked[0]["to"] == "user-1" and effects.recorded("k") == "zmsg-found"


def _read_ahead(redis, effects: Effects, key: str) -> dict:
    """The Zalo text's read (inbound.py `_sender_and_post`): the sender's hash and `key`'s record
    in one pipeline."""
    pipe = redis.pipeline(transaction=False)
    post = effects.recorded_in(pipe, key)
    pipe.hgetall("user-1")
    answers = pipe.execute()
    post(answers[0])
    return {k.decode(): v.decode() for k, v in answers[1].items()}


def _calls(redis) -> dict:
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in redis.info("commandstats").items()}


def test_a_result_read_ahead_with_the_users_record_is_found_without_another_read(redis):
    """A Zalo text's turn reads its post's record with the user's hash (inbound.py): the result
    an earlier run recorded still answers, so nothing is posted twice, and `once` reads nothing."""
    effects, calls = Effects(redis, 60), []
    redis.hset("user-1", "fc", "u-1")
    assert effects.once("k", lambda: calls.append(1) or "fc-msg-1", reconcile=lambda flight: None) == "fc-msg-1"
    redis.config_resetstat()
    assert _read_ahead(redis, effects, "k") == {"fc": "u-1"}
    assert _calls(redis) == {"config": 1, "mget": 1, "hgetall": 1}  # one pipeline
    redis.config_resetstat()
    assert effects.once("k", lambda: calls.append(2) or "fc-msg-2", reconcile=lambda flight: None) == "fc-msg-1"
    assert calls == [1] and _calls(redis) == {"config": 1}


def test_what_was_read_ahead_serves_the_next_once_of_its_key_only(redis):
    """A `once` of another key first (a media copy), or a second `once` of the key (a second
    part, a retry): each reads the record as before, never an answer read earlier."""
    effects = Effects(redis, 60)
    _read_ahead(redis, effects, "k")  # nothing recorded yet
    redis.set(DEFAULT_KEYS.done("k"), json.dumps("recorded-meanwhile"))
    assert effects.once("media", lambda: "copied") == "copied"
    assert effects.once("k", lambda: "posted-again", reconcile=lambda flight: None) == "recorded-meanwhile"
    _read_ahead(redis, effects, "j")
    assert effects.once("j", lambda: "first", reconcile=lambda flight: None) == "first"
    redis.set(DEFAULT_KEYS.done("j"), json.dumps("recorded-since"))
    assert effects.once("j", lambda: "second", reconcile=lambda flight: None) == "recorded-since"


def test_a_record_left_by_fc5f0b4_in_its_own_key_is_still_looked_for(redis):
    effects, looked = Effects(redis, 60), []
    redis.set(DEFAULT_KEYS.flight("k"), json.dumps({"at": 1, "to": "user-1"}), ex=60)
    assert effects.in_flight("k") == {"at": 1, "to": "user-1"}
    found = effects.once("k", lambda: "again", reconcile=lambda flight: looked.append(flight) or "zmsg-found")
    assert found == "zmsg-found" and looked == [{"at": 1, "to": "user-1"}]
    assert effects.in_flight("k") is None  # the result answers it


def test_a_refused_send_clears_its_record_but_never_a_result_recorded_meanwhile(redis):
    effects = Effects(redis, 60)

    def refused(recorded_meanwhile: bool):
        effects.take_off(to="user-1")
        if recorded_meanwhile:  # a worker that took the lane over recorded the send's result
            redis.set(DEFAULT_KEYS.done("k"), json.dumps("zmsg-other"))
        raise ZaloPermanent("user not followed")

    with pytest.raises(ZaloPermanent):
        effects.once("k", lambda: refused(False), reconcile=lambda flight: None)
    assert redis.get(DEFAULT_KEYS.done("k")) is None
    with pytest.raises(ZaloPermanent):
        effects.once("k", lambda: refused(True), reconcile=lambda flight: None)
    assert effects.recorded("k") == "zmsg-other"


@pytest.fixture
def replicated():
    """A primary and its replica (real redis-servers), in sync."""
    primary = RedisServer(appendonly=False).start()
    replica = RedisServer(appendonly=False, extra_args=("--replicaof", "127.0.0.1", str(primary.port))).start()
    client = redis_lib.Redis(port=primary.port)
    wait_until(lambda: client.info("replication").get("slave0", {}).get("state") == "online", timeout=15, what="sync")
    yield primary, replica
    for server in (primary, replica):
        server.stop(hard=True)


def promote(replica: RedisServer) -> redis_lib.Redis:
    """The replica becomes the primary now: what the old primary is written after this, the
    failover loses (async replication: what the replica had not received when it was lost)."""
    promoted = redis_lib.Redis(port=replica.port)
    promoted.replicaof("NO", "ONE")
    return promoted


def test_a_send_waits_for_its_in_flight_record_to_reach_the_replicas(replicated):
    """The failover test's repeats: the in-flight record written just before a send reached the
    primary only, the primary was lost after the partner got the message, and the replay on the
    promoted replica found no record and sent again. With REDIS_WAIT_REPLICAS the send goes
    only once its record is on a replica: a record that cannot get there means no send yet."""
    primary, replica = replicated
    sent: list[str] = []

    def send(effects: Effects) -> str:
        effects.take_off(to="user-1")
        sent.append("zmsg")
        return f"zmsg-{len(sent)}"

    before = Effects(redis_lib.Redis(port=primary.port), 60, replicas=1, wait_ms=200)
    after = Effects(promote(replica), 60)  # from here the replica gets nothing of the primary
    try:
        before.once("k", lambda: send(before), reconcile=lambda flight: None)
    except RecordNotReplicated:
        pass  # not sent: the failover (the primary lost now) could lose its record
    primary.stop(hard=True)
    assert after.once("k", lambda: send(after), reconcile=lambda flight: None) == "zmsg-1"
    assert sent == ["zmsg"]  # once, by the replay


def test_a_result_the_failover_lost_leaves_the_record_and_the_replay_looks(replicated):
    """The record reached the replica, the result did not: the replay reconciles, no resend."""
    primary, replica = replicated
    sent: list[str] = []
    effects, promoted = Effects(redis_lib.Redis(port=primary.port), 60, replicas=1, wait_ms=1000), []

    def send() -> str:
        effects.take_off(to="user-1")
        promoted.append(Effects(promote(replica), 60))  # the result, written next, is lost to it
        sent.append("zmsg")
        return "zmsg-1"

    assert effects.once("k", send, reconcile=lambda flight: None) == "zmsg-1"
    primary.stop(hard=True)
    replay = promoted[0]
    assert replay.recorded("k") is None and replay.in_flight("k") is not None
    looked: list[dict] = []
    found = replay.once("k", lambda: send(), reconcile=lambda flight: looked.append(flight) or "zmsg-1")
    assert found == "zmsg-1" and looked[0]["to"] == "user-1" and sent == ["zmsg"]
