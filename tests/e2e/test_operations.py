"""What an operator sees and does: a Redis outage in the log, SIGTERM, restarts."""

from __future__ import annotations

import os
import signal
import time

import redis as redis_lib

from app.bridge.keys import HEARTBEAT, lease
from sandbox.procs import Bridge, wait_until
from sandbox.redis_server import RedisServer
from tests.e2e.test_delivery import (
    both_directions,
    check,
    expectations,
    send_until_accepted,
    settle,
    start_conversations,
    zalo_texts,
)
from workers.supervisor import GRACE_SECONDS


def test_a_redis_outage_is_one_line_then_one_line_when_it_is_back(partners, tmp_path):
    base, _, fc = partners
    server = RedisServer()  # not started yet: the worker comes up while Redis is away
    bridge = Bridge(server.url, base, fc.public_key_pem_rsa_label, tmp_path)
    bridge.env["REDIS_URL"] = server.url.replace("redis://", "redis://:pw-4711@")
    bridge.start("worker")
    try:
        wait_until(lambda: "redis.unreachable" in bridge.log("worker"), timeout=20, what="the outage line")
        time.sleep(4)  # several retries happen meanwhile
        server.extra_args = ["--requirepass", "pw-4711"]
        server.start()
        client = redis_lib.Redis.from_url(bridge.env["REDIS_URL"])
        wait_until(lambda: client.get(HEARTBEAT), timeout=40, what="the worker's heartbeat after Redis is back")
        wait_until(lambda: "redis.back" in bridge.log("worker"), timeout=5, what="the recovery line")
        log = bridge.log("worker")
        assert log.count("redis.unreachable") == 1 and log.count("redis.back") == 1, log
        assert "Traceback" not in log and "child_died" not in log, log
        assert "pw-4711" not in log and "redis://:***@127.0.0.1" in log
    finally:
        bridge.stop()
        server.stop()


SLOW_ZALO_MS = 1500  # each reply takes this long at Zalo: SIGTERM lands while one is in hand


def held_lanes(redis, prefix: str) -> set[str]:
    return {k.decode()[len(lease("")) :] for k in redis.scan_iter(match=lease(prefix + "*"))}


def test_sigterm_lets_the_worker_finish_the_reply_in_hand_and_a_new_worker_goes_on(make_bridge, sims, redis):
    _, zalo, fc = sims
    bridge = make_bridge(workers=1, WORKER_CONCURRENCY="2", LEASE_SECONDS="30")
    conversations = dict(list(start_conversations(bridge, zalo, fc).items())[:4])
    zalo.faults.latency("message_cs", SLOW_ZALO_MS)
    hook = bridge.url + "/webhooks/freshchat"
    replies = {u: [f"reply {u} #{i}" for i in range(3)] for u in conversations}
    for i in range(3):
        for user, conversation in conversations.items():
            send_until_accepted(fc, hook, lambda: fc.send_agent_message(hook, conversation, replies[user][i]))
    wait_until(lambda: held_lanes(redis, "out:"), timeout=10, interval=0.02, what="a reply in hand")
    time.sleep(SLOW_ZALO_MS / 3000)  # halfway through Zalo's answer
    sent_before = sum(len(zalo_texts(zalo, u)) for u in conversations)
    worker = bridge.procs.pop("worker0")
    signalled = time.monotonic()
    os.killpg(worker.pid, signal.SIGTERM)  # the whole group, as systemd or a process manager does
    time.sleep(1.2)  # the children hear SIGTERM again (the supervisor forwards it, maybe this late)
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(GRACE_SECONDS + 5)
    took = time.monotonic() - signalled
    sent_by_exit = {u: zalo_texts(zalo, u) for u in conversations}
    finished = sum(map(len, sent_by_exit.values())) - sent_before
    print(f"\nworker exited {took:.1f} s after SIGTERM, {finished} sent meanwhile")
    assert took < GRACE_SECONDS
    assert finished > 0  # the reply in hand was finished, not cut off
    assert all(sent == replies[u][: len(sent)] for u, sent in sent_by_exit.items())
    assert not held_lanes(redis, "out:")  # given back: the next worker need not wait for LEASE_SECONDS
    log = bridge.log("worker0")
    assert "cold shut down" not in log.lower() and "Traceback" not in log, log

    bridge.start("worker1", "worker")
    wait_until(
        lambda: all(zalo_texts(zalo, u) == replies[u] for u in conversations), timeout=60, what="the other replies"
    )
    time.sleep(SLOW_ZALO_MS / 1000 + 0.5)  # a duplicate, if any, would land now
    assert {u: zalo_texts(zalo, u) for u in conversations} == replies  # nothing twice, nothing lost, in order


WEB_GRACE_SECONDS = 20  # the Procfile's gunicorn --graceful-timeout


def test_sigterm_to_gunicorn_loses_no_webhook_it_answered_200(make_bridge, sims):
    _, zalo, fc = sims
    bridge = make_bridge(workers=1)
    conversations = start_conversations(bridge, zalo, fc)
    inbound, outbound = expectations(conversations)
    took = {}

    def restart_web():
        time.sleep(1.5)  # webhooks arriving from every conversation
        web = bridge.procs.pop("web")
        signalled = time.monotonic()
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(WEB_GRACE_SECONDS + 5)
        took["exit"] = time.monotonic() - signalled
        bridge.start("web-restarted", "web")  # meanwhile the partners' redeliveries meet a closed port

    both_directions(bridge, zalo, fc, conversations, during=restart_web)
    print(f"\ngunicorn exited {took['exit']:.1f} s after SIGTERM")
    assert took["exit"] < WEB_GRACE_SECONDS
    settle(zalo, fc, inbound, outbound)
    check(zalo, fc, inbound, outbound, "web restart")  # every event was answered 200 in the end
    assert "Traceback" not in bridge.log("web"), bridge.log("web")
