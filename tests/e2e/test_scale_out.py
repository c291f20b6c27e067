"""Scale-out: two web and three worker hosts on one Redis, one worker host SIGKILLed mid-run.

Each host is its own `Bridge`: its own environment, port, working directory, logs and process
tree, sharing only Redis (and the partners), as separate machines would. The dead host's
conversations are read from Redis lease keys (a token names its holder's pid) right after the
kill, when they still show what it held."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.bridge.keys import lease
from app.bridge.lanes import lease_holder
from sandbox.procs import ROOT, Bridge, descendants, wait_until
from tests.e2e.test_delivery import (
    END,
    both_directions,
    expectations,
    report,
    settle,
    start_conversations,
)

LEASE_SECONDS = 4
# After the lease ends: the starter's next tick (1 s) and one partner call, 0.5 s on a quiet box;
# this box is shared by parallel test runs (load averages of 20 on 2 cores), hence the margin.
PICK_UP_SECONDS = 3.0
IN_FLIGHT_SECONDS = 0.25  # a call the dead host had in flight lands within the latency below
PARTNER_LATENCY_MS = 100  # keeps workers inside partner calls, holding leases, when the kill comes
METRICS_TOKEN = "scale-out-metrics-token-0123456789"
# 8 conversations, each sending a message each way every half second: 32 messages/s, well under
# what two worker hosts relay on this box, so a resumed lane is not also queued behind a backlog
# (lanes are served oldest-due first: an overloaded bridge delays it by the backlog, fairly).
BUSY_CONVERSATIONS, PAUSE_SECONDS = 8, 0.5


class Front:
    """What a load balancer does for the partners: each webhook goes to the next web host."""

    def __init__(self, webs: list[Bridge]):
        self._urls = itertools.cycle([w.url for w in webs])
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        with self._lock:
            return next(self._urls)


@pytest.fixture
def hosts(sims, redis_server, tmp_path):
    base, _, fc = sims
    started: list[Bridge] = []

    def host(name: str, kind: str) -> Bridge:
        home = tmp_path / name
        bridge = Bridge(
            redis_server.url,
            base,
            fc.public_key_pem_rsa_label,
            home,
            LEASE_SECONDS=str(LEASE_SECONDS),
            WORKER_CONCURRENCY="3",
            WEB_CONCURRENCY="1",
            # A send the dead host left in flight is looked up 3 timeouts after it was made
            # (app/relay/reconcile.py): 3 s, so inside the lease and not what the test measures.
            HTTP_TIMEOUT_SECONDS="1",
            METRICS_TOKEN=METRICS_TOKEN,  # each web host's own count of the webhooks it answered
            PYTHONPATH=str(ROOT),  # the code, run from the host's own directory
        )
        bridge.cwd = home
        started.append(bridge)
        bridge.start(kind)
        return bridge

    workers = [host(f"worker-host-{n}", "worker") for n in range(3)]
    webs = [host(f"web-host-{n}", "web") for n in range(2)]
    for web in webs:
        wait_until(web.ready, timeout=30, what=f"{web.url}/readyz")
    fc.webhook_url = webs[0].url + "/webhooks/freshchat"  # FreshChat's echoes of the bridge's posts
    yield webs, workers
    for bridge in started:
        bridge.stop(signal.SIGKILL)  # nothing is asked of how they stop
    fc.webhook_url = None


def accepted_by(web: Bridge) -> float:
    """The webhooks this web host answered 200 (its bridge_webhooks counter, GET /metrics)."""
    text = requests.get(web.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10).text
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "bridge_webhooks_total" and s.labels.get("code") == "200"
    )


def leases_by_pid(redis) -> dict[str, int]:
    """lane -> pid of the process holding its lease, for every conversation lane leased now."""
    held = {}
    for key in redis.scan_iter(match=lease("*"), count=1000):
        token = redis.get(key)
        lane = key.decode()[len(lease("")) :]
        if token and lane.startswith(("in:", "out:")):
            held[lane] = lease_holder(token.decode())[1]
    return held


def kill_the_busiest_worker_host(redis, workers: list[Bridge], killed: dict):
    """SIGKILL the process group of the worker host holding the most conversations, and note
    which lanes it held at that moment and when it died.

    The host is frozen (SIGSTOP) before its leases are read, so the lanes noted are the lanes it
    holds when it dies: read while it ran, a job could finish and give its lanes back between the
    look and the kill (seen on a loaded machine: a host chosen for its lanes died holding none)."""

    def tree(host: Bridge) -> set[int]:
        root = host.procs["worker"].pid
        return {root, *descendants(root)}

    time.sleep(3.0)  # traffic flowing on every host
    trees = [tree(w) for w in workers]

    def frozen_busiest():
        held = leases_by_pid(redis)
        counts = [sum(1 for pid in held.values() if pid in t) for t in trees]
        best = max(range(len(workers)), key=counts.__getitem__)
        if not counts[best]:
            return None
        group = workers[best].procs["worker"].pid
        os.killpg(group, signal.SIGSTOP)
        lanes = {lane for lane, pid in leases_by_pid(redis).items() if pid in trees[best]}
        if lanes:
            return best, lanes
        os.killpg(group, signal.SIGCONT)  # it gave its lanes back meanwhile: look again
        return None

    index, lanes = wait_until(frozen_busiest, timeout=20, interval=0.01, what="a worker host holding lanes")
    killed["lease_left"] = {lane: redis.pttl(lease(lane)) / 1000 for lane in lanes}
    workers[index].kill("worker")
    killed["at"] = time.time()
    killed["host"] = workers[index]
    killed["lanes"] = lanes


def deliveries(zalo, fc, conversations: dict[str, str]) -> dict[str, list[tuple[float, str]]]:
    """lane -> (partner's receipt time, text) of every message delivered in it, oldest first."""
    from datetime import datetime

    users = {u["reference_id"].rsplit(":", 1)[-1]: u["id"] for u in fc.state()["users"]}
    out: dict[str, list[tuple[float, str]]] = {}
    for user, conversation in conversations.items():
        out[f"out:{conversation}"] = [
            (m["time"], m["message"].get("text", "")) for m in zalo.messages_to(user) if m["message"].get("text") != END
        ]
        out[f"in:{user}"] = [
            (datetime.fromisoformat(m["created_time"].replace("Z", "+00:00")).timestamp(), p["text"]["content"])
            for c in fc.conversations_of(users[user])
            for m in c["messages"]
            if m["actor_type"] == "user"
            for p in m["message_parts"]
            if "text" in p and p["text"]["content"] not in ("hello", END)
        ]
    return out


def collapsed(texts: list[str]) -> list[str]:
    """The texts with immediate repeats folded: a message re-sent after a crash comes right
    after its first copy, since its lane only moves on once it is recorded."""
    return [t for i, t in enumerate(texts) if i == 0 or texts[i - 1] != t]


def test_two_web_three_worker_hosts_survive_a_sigkilled_worker_host(hosts, sims, redis):
    _, zalo, fc = sims
    webs, workers = hosts
    front = Front(webs)
    conversations = dict(list(start_conversations(front, zalo, fc).items())[:BUSY_CONVERSATIONS])
    inbound, outbound = expectations(conversations)
    for sim in (zalo, fc):
        sim.faults.latency("*", PARTNER_LATENCY_MS)
    killed: dict = {}
    both_directions(
        front,
        zalo,
        fc,
        conversations,
        during=lambda: kill_the_busiest_worker_host(redis, workers, killed),
        pause=PAUSE_SECONDS,
    )
    settle(front, zalo, fc, conversations, inbound, outbound)

    delivered = deliveries(zalo, fc, conversations)
    expected = {f"in:{u}": v for u, v in inbound.items()} | {f"out:{conversations[u]}": v for u, v in outbound.items()}
    texts = {lane: [t for _, t in delivered[lane]] for lane in expected}
    lost, repeats, _ = report("scale-out (both ways)", expected, texts)
    assert lost == 0
    assert {lane: collapsed(texts[lane]) for lane in expected} == expected  # order kept, nothing extra
    repeated = {lane for lane in expected if len(texts[lane]) != len(set(texts[lane]))}
    assert repeated <= killed["lanes"], "only a message in the dead host's hands may be sent twice"
    print(f"repeats: {repeats}, in {len(repeated)} of the {len(killed['lanes'])} lanes the dead host held")

    resumed = {
        lane: min(t for t, _ in delivered[lane] if t > killed["at"] + IN_FLIGHT_SECONDS) - killed["at"]
        for lane in killed["lanes"]
        if any(t > killed["at"] + IN_FLIGHT_SECONDS for t, _ in delivered[lane])
    }
    print(
        "resumed after the kill (s): "
        + ", ".join(f"{after:.2f} (lease left {killed['lease_left'][lane]:.2f})" for lane, after in resumed.items())
        + f"; LEASE_SECONDS={LEASE_SECONDS}"
    )
    assert resumed, f"none of the dead host's lanes {killed['lanes']} had work left to resume"
    left = killed["lease_left"]
    assert max(left.values()) <= LEASE_SECONDS
    for lane, after in resumed.items():  # untouched while the dead host's lease lasted, then taken up
        assert left[lane] - 0.1 <= after <= left[lane] + PICK_UP_SECONDS, (lane, left[lane], after)
    for web in webs:  # the front really spread the webhooks
        assert accepted_by(web) > 100
    for survivor in (w for w in workers if w is not killed["host"]):
        assert "worker.child_died" not in survivor.log("worker")
