"""Order, exactly-once, crash, outage and Redis-restart recovery, dead letters and the rate
limiter, all with a real Redis, real worker processes and the simulators."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from app.bridge.keys import DUE
from app.operations.status import bridge_status
from sandbox.procs import ROOT, wait_until

CONVERSATIONS, MESSAGES = 20, 20
END = "end of the run"  # sent last in a conversation: a duplicate of anything before it lands first


def uid(n: int) -> str:
    return f"77{n:014d}"


def fc_user_texts(fc, zalo_user: str) -> list[str]:
    users = [u for u in fc.state()["users"] if u["reference_id"].endswith(":" + zalo_user)]
    return [
        p["text"]["content"]
        for u in users
        for c in fc.conversations_of(u["id"])
        for m in c["messages"]
        if m["actor_type"] == "user"
        for p in m["message_parts"]
        if "text" in p
    ]


def zalo_texts(zalo, zalo_user: str) -> list[str]:
    return [m["message"].get("text", "") for m in zalo.messages_to(zalo_user)]


def end_of_run(bridge, zalo, fc, conversations: dict, inbound: bool = True, outbound: bool = True, text: str = END):
    """Send `text` (END) last in each conversation (user -> FreshChat and/or agent -> Zalo) and wait until
    it arrives. A lane delivers in order and moves on only once an item is recorded, so a
    duplicate of anything sent before (a resend after a crash, a redelivered webhook) would have
    landed before END: the counts are final then, without sleeping to see if more arrives."""
    for user, conversation in conversations.items():
        if inbound:
            zhook = bridge.url + "/webhooks/zalo"
            send_until_accepted(zalo, zhook, lambda: zalo.send_text(zhook, user, text))
        if outbound:
            fhook = bridge.url + "/webhooks/freshchat"
            send_until_accepted(fc, fhook, lambda: fc.send_agent_message(fhook, conversation, text))

    def arrived():
        return all(
            (not inbound or text in fc_user_texts(fc, u)) and (not outbound or text in zalo_texts(zalo, u))
            for u in conversations
        )

    wait_until(arrived, timeout=60, interval=0.2, what="the end-of-run marker in every conversation")


def send_until_accepted(sim, url: str, send, attempts: int = 200):
    """Like Zalo and FreshChat: redeliver the *same* event until the bridge answers 200.

    A 503 during a Redis restart may come after Redis stored the event (its reply was lost
    in the shutdown), so a resend must carry the same msg_id for the bridge to dedupe it.
    """
    sent = send()
    for _ in range(attempts):
        if sent.statuses[-1] == 200:
            return sent
        time.sleep(0.1)
        sent = sim.deliver(url, dict(sent))
    raise AssertionError("the bridge never accepted the event")


def report(name: str, expected: dict, delivered: dict) -> tuple[int, int, int]:
    """Print delivered/expected, duplicates and order violations; return them."""
    total = sum(len(v) for v in expected.values())
    got = sum(len(set(delivered[k]) & set(v)) for k, v in expected.items())
    dups = sum(len(delivered[k]) - len(set(delivered[k])) for k in expected)
    disorder = sum(
        1
        for k, v in expected.items()
        if [x for x in delivered[k] if x in v] != v[: len([x for x in delivered[k] if x in v])]
        or sorted(set(delivered[k]), key=delivered[k].index) != [x for x in v if x in delivered[k]]
    )
    print(f"\n{name}: delivered {got}/{total}, duplicates {dups}, order violations {disorder}")
    for k in expected:
        twice = sorted({x for x in delivered[k] if delivered[k].count(x) > 1})
        if twice:
            print(f"  duplicated in {k}: {twice}")
    return got - total, dups, disorder


def start_conversations(bridge, zalo, fc) -> dict[str, str]:
    """One first message per user, so every Zalo user has a FreshChat conversation."""
    hook = bridge.url + "/webhooks/zalo"
    for n in range(CONVERSATIONS):
        send_until_accepted(zalo, hook, lambda n=n: zalo.send_text(hook, uid(n), "hello"))
    wait_until(lambda: all(fc_user_texts(fc, uid(n)) for n in range(CONVERSATIONS)), timeout=60, what="first messages")
    return {
        uid(n): fc.conversations_of(
            next(u["id"] for u in fc.state()["users"] if u["reference_id"].endswith(":" + uid(n)))
        )[0]["conversation_id"]
        for n in range(CONVERSATIONS)
    }


def both_directions(bridge, zalo, fc, conversations: dict[str, str], during=None, pause: float = 0.0):
    """20 x 20 messages each way, sent per conversation in order, conversations in parallel.
    `bridge.url` is read per message, so a front that alternates web hosts spreads them. With a
    `pause` between a conversation's messages every conversation sends at once, at that pace."""

    def inbound(user):
        for i in range(MESSAGES):
            zhook = bridge.url + "/webhooks/zalo"
            send_until_accepted(zalo, zhook, lambda: zalo.send_text(zhook, user, f"in {user} #{i:02d}"))
            time.sleep(pause)

    def outbound(user):
        for i in range(MESSAGES):
            fhook = bridge.url + "/webhooks/freshchat"
            send_until_accepted(
                fc, fhook, lambda: fc.send_agent_message(fhook, conversations[user], f"out {user} #{i:02d}")
            )
            time.sleep(pause)

    with ThreadPoolExecutor(2 * len(conversations) if pause else 16) as pool:
        futures = [pool.submit(inbound, u) for u in conversations] + [pool.submit(outbound, u) for u in conversations]
        if during:
            during()
        [f.result() for f in futures]


def expectations(conversations):
    inbound = {u: [f"in {u} #{i:02d}" for i in range(MESSAGES)] for u in conversations}
    outbound = {u: [f"out {u} #{i:02d}" for i in range(MESSAGES)] for u in conversations}
    return inbound, outbound


def settle(bridge, zalo, fc, conversations, inbound, outbound, timeout=240):
    def done():
        return all(set(v) <= set(fc_user_texts(fc, u)) for u, v in inbound.items()) and all(
            set(v) <= set(zalo_texts(zalo, u)) for u, v in outbound.items()
        )

    wait_until(done, timeout=timeout, interval=0.5, what="every message delivered")
    end_of_run(bridge, zalo, fc, conversations)  # late duplicates, if any, have landed


def check(zalo, fc, inbound, outbound, label):
    fc_got = {u: [t for t in fc_user_texts(fc, u) if t not in ("hello", END)] for u in inbound}
    zalo_got = {u: [t for t in zalo_texts(zalo, u) if t != END] for u in outbound}
    assert report(f"{label} zalo->freshchat", inbound, fc_got) == (0, 0, 0)
    assert report(f"{label} freshchat->zalo", outbound, zalo_got) == (0, 0, 0)
    for u in inbound:
        assert fc_got[u] == inbound[u] and zalo_got[u] == outbound[u]


def stall_partners_and_kill(bridge, zalo, fc, victim: str):
    """Kill a worker while its jobs hang inside partner calls (holding their lanes' leases).
    The partners are slow, not down: each call of the stall is carried out after the bridge
    gave up on it (HTTP_TIMEOUT_SECONDS 1 < 1.5), or after its caller died, so every send in
    flight then has an unknown outcome, and only reconciliation keeps it from repeating."""
    sends = {zalo: "message_cs", fc: "message_create"}
    wait_until(lambda: all(sim.faults.calls(e) > 20 for sim, e in sends.items()), timeout=30, what="sends under way")
    before = {sim: sim.faults.calls(e) for sim, e in sends.items()}
    for sim in (zalo, fc):
        sim.faults.fail_fraction("*", 1.0, ["slow"], seconds=1.5)
    stalled = lambda: all(sim.faults.calls(e) >= before[sim] + 3 for sim, e in sends.items())  # noqa: E731
    wait_until(stalled, timeout=10, what="sends caught in the stall")
    bridge.kill(victim)
    for sim in (zalo, fc):
        sim.faults.clear()
        sim.faults.fail_fraction("*", 0.2, FAILURES[sim is zalo], seed=11, retry_after=1)
    time.sleep(0.5)
    bridge.start(victim, "worker")


FAILURES = {True: ["http500", "http429", -32], False: ["http500", "http429"]}


def test_20x20_each_way_with_20pct_failures_and_a_sigkilled_worker(make_bridge, sims, redis):
    _, zalo, fc = sims
    bridge = make_bridge(workers=2, WORKER_CONCURRENCY="3", HTTP_TIMEOUT_SECONDS="1", RATE_WINDOW_SECONDS="1")
    conversations = start_conversations(bridge, zalo, fc)
    zalo.faults.fail_fraction("*", 0.2, FAILURES[True], seed=3, retry_after=1)
    fc.faults.fail_fraction("*", 0.2, FAILURES[False], seed=4, retry_after=1)
    inbound, outbound = expectations(conversations)
    both_directions(
        bridge, zalo, fc, conversations, during=lambda: stall_partners_and_kill(bridge, zalo, fc, "worker0")
    )
    for sim in (zalo, fc):
        sim.faults.clear()
    settle(bridge, zalo, fc, conversations, inbound, outbound)
    check(zalo, fc, inbound, outbound, "chaos")
    settled = bridge_status(redis)["reconciled"]
    print(f"unknown outcomes settled: {settled}")
    assert settled.get("zalo") and settled.get("freshchat")  # unknown outcomes both ways, none repeated
    assert "worker.child_died" not in bridge.log("worker1")  # the survivor never crashed


def test_redis_restart_during_a_run_loses_nothing_acknowledged(make_bridge, sims, redis_server):
    _, zalo, fc = sims
    bridge = make_bridge(workers=1)
    conversations = start_conversations(bridge, zalo, fc)
    inbound, outbound = expectations(conversations)

    def restart_redis():
        time.sleep(1.0)
        redis_server.restart()  # SIGTERM: AOF is flushed; webhooks answer 503 meanwhile

    both_directions(bridge, zalo, fc, conversations, during=restart_redis)
    settle(bridge, zalo, fc, conversations, inbound, outbound)
    check(zalo, fc, inbound, outbound, "redis restart")


def test_partner_down_then_back_delivers_everything_in_order(make_bridge, sims):
    _, zalo, fc = sims
    bridge = make_bridge(workers=1)
    conversations = start_conversations(bridge, zalo, fc)
    outage = time.time() + 8  # a 2-minute outage, compressed: backoff is capped at 1 s here
    for sim in (zalo, fc):  # down until every message is posted (on a busy machine that takes longer)
        sim.faults.down_until("*", outage + 3600)
    inbound, outbound = expectations(conversations)
    both_directions(bridge, zalo, fc, conversations)
    assert not any(zalo_texts(zalo, u) for u in conversations)  # nothing got through while down
    for sim in (zalo, fc):  # then back 8 s after they went down, or now if posting took longer
        sim.faults.down_until("*", outage)
    settle(bridge, zalo, fc, conversations, inbound, outbound)
    check(zalo, fc, inbound, outbound, "outage")


def cli(bridge, *args) -> str:
    env = {**bridge.env, "FLASK_APP": "app"}
    out = subprocess.run(
        [sys.executable, "-m", "flask", "bridge", "dead-letters", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_always_failing_job_becomes_a_dead_letter_and_replay_delivers_once(make_bridge, sims):
    _, zalo, fc = sims
    bridge = make_bridge(workers=1, RETRY_HORIZON_SECONDS="2")
    conversations = start_conversations(bridge, zalo, fc)
    user = next(iter(conversations))
    zalo.faults.fail_fraction("message_cs", 1.0, ["http500"])
    fc.send_agent_message(bridge.url + "/webhooks/freshchat", conversations[user], "never gets through")
    wait_until(lambda: "1 dead letter(s)" in cli(bridge, "list"), timeout=30, what="a dead letter")
    listing = cli(bridge, "list")
    item_id = listing.splitlines()[0].split("\t")[0]
    assert item_id.startswith("freshchat:") and "HTTP 500" in listing
    assert json.loads(cli(bridge, "show", item_id))["lane"] == f"out:{conversations[user]}"
    zalo.faults.clear()
    assert "replayed" in cli(bridge, "replay", item_id)
    wait_until(lambda: "never gets through" in zalo_texts(zalo, user), timeout=20, what="replayed delivery")
    end_of_run(bridge, zalo, fc, {user: conversations[user]}, inbound=False)
    assert zalo_texts(zalo, user) == ["never gets through", END]
    assert "0 dead letter(s)" in cli(bridge, "list")


def notes_of(fc, conversation: str) -> list[str]:
    return [
        p["text"]["content"]
        for m in fc.conversation(conversation)["messages"]
        if m["message_type"] == "private"
        for p in m["message_parts"]
        if "text" in p
    ]


def test_zalo_answering_after_the_timeout_delivers_each_reply_once(make_bridge, sims, redis):
    """Zalo carries every call out, but answers only after the bridge gave up (4 s > 2 s),
    for a while: each reply reaches the user once, its echo is known as ours, no dead letter."""
    _, zalo, fc = sims
    bridge = make_bridge(workers=1, HTTP_TIMEOUT_SECONDS="2")
    conversations = start_conversations(bridge, zalo, fc)
    users = list(conversations)[:3]
    zalo.echo_url = bridge.url + "/webhooks/zalo"
    try:
        zalo.faults.fail_fraction("*", 1.0, ["slow"], seconds=4)
        for user in users:
            fc.send_agent_message(bridge.url + "/webhooks/freshchat", conversations[user], f"late reply {user}")
        wait_until(lambda: all(zalo_texts(zalo, u) for u in users), timeout=20, what="the slow sends carried out")
        wait_until(lambda: zalo.faults.calls("conversation"), timeout=20, what="a look-up while Zalo is slow")
        zalo.faults.clear()
        found = lambda: bridge_status(redis)["reconciled"].get("zalo", {}).get("found", 0) == len(users)  # noqa: E731
        wait_until(found, timeout=30, interval=0.2, what="every reply found in Zalo's history")
        end_of_run(bridge, zalo, fc, {u: conversations[u] for u in users}, inbound=False)  # a repeat lands first
    finally:
        zalo.echo_url = None
    for user in users:
        assert zalo_texts(zalo, user) == [f"late reply {user}", END]
        assert not notes_of(fc, conversations[user])  # neither a dead letter nor a stranger's echo
    assert "0 dead letter(s)" in cli(bridge, "list")


def test_a_dead_letter_delivered_after_all_is_replayed_without_a_second_copy(make_bridge, sims, redis):
    _, zalo, fc = sims
    bridge = make_bridge(workers=1, RETRY_HORIZON_SECONDS="2", HTTP_TIMEOUT_SECONDS="1")
    conversations = start_conversations(bridge, zalo, fc)
    user = next(iter(conversations))
    zalo.faults.fail_next("message_cs", 1, "slow", seconds=1.5)  # carried out after the bridge gave up
    zalo.faults.fail_fraction("conversation", 1.0, ["http500"])  # and the history cannot be read then
    fc.send_agent_message(bridge.url + "/webhooks/freshchat", conversations[user], "delivered after all")
    wait_until(lambda: "1 dead letter(s)" in cli(bridge, "list"), timeout=30, what="a dead letter")
    assert zalo_texts(zalo, user) == ["delivered after all"]
    zalo.faults.clear()
    item_id = cli(bridge, "list").splitlines()[0].split("\t")[0]
    assert "replayed" in cli(bridge, "replay", item_id)
    found = lambda: bridge_status(redis)["reconciled"].get("zalo", {}).get("found")  # noqa: E731
    wait_until(found, timeout=20, what="the replayed reply found in Zalo's history")
    lane = f"out:{conversations[user]}"
    wait_until(lambda: redis.zscore(DUE, lane) is None, timeout=20, what="the replay finished")
    end_of_run(bridge, zalo, fc, {user: conversations[user]}, inbound=False)
    assert zalo_texts(zalo, user) == ["delivered after all", END]
    assert "0 dead letter(s)" in cli(bridge, "list")


def test_rate_limiter_at_three_times_the_limit_never_exceeds_it(make_bridge, sims):
    _, zalo, fc = sims
    # The limiter grants at most 97 % of the limit in any window (app/bridge/ratelimit.py); the
    # stamps are arrivals at the simulator, each late by however long the bridge's and this
    # process's threads waited for a core. 21 grants span 108.7 % of a window, so 21 arrivals fit
    # in one only if one call is 8.7 % of the window later than another: 174 ms in a 2 s window,
    # which a loaded 2-core machine has (worst window 21 was seen); in a 6 s window, 522 ms (21
    # was seen again there, at load 40 during a fresh-clone run); in this 12 s window, 1.04 s.
    limit, window = 20, 12.0
    bridge = make_bridge(
        workers=2, WORKER_CONCURRENCY="4", ZALO_RATE_PER_MINUTE=str(limit), RATE_WINDOW_SECONDS=str(window)
    )
    conversations = start_conversations(bridge, zalo, fc)
    hook = bridge.url + "/webhooks/freshchat"
    offered = 3 * limit
    with ThreadPoolExecutor(8) as pool:  # 3x the limit offered within one window
        list(
            pool.map(
                lambda i: fc.send_agent_message(hook, list(conversations.values())[i % CONVERSATIONS], f"burst {i}"),
                range(offered),
            )
        )
    wait_until(
        lambda: sum(len(zalo.messages_to(u)) for u in conversations) >= offered, timeout=120, what="the burst delivered"
    )
    stamps = sorted(m["time"] for u in conversations for m in zalo.messages_to(u))
    worst = max(sum(1 for s in stamps if t <= s < t + window) for t in stamps)
    print(f"\nrate limiter: offered {offered} in one window, limit {limit}/{window}s, worst window {worst}")
    assert worst <= limit
