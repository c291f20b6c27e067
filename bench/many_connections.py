"""Issue 3 point 5, a thousand OAs on one bridge: the same bridge with one connection and with
1 000 stored connections (stored as POST /api/connections stores them, secrets sealed), the
load spread over 10 of them.

    python -m bench.many_connections [--quick]

1. Webhook acknowledgement: signed `user_send_text` events against POST /webhooks/zalo (the web
   process alone, as bench.webhook_ack runs it), one connection and 1 000 alternating, Redis
   flushed and the connections stored again before each run: req/s and the ratio.
2. Idle CPU: web and worker process trees (utime+stime from /proc) over BENCH_IDLE_SECONDS with
   nothing to do, once start-up work (a catch-up job and a credentials test per connection) is
   done: no lane due and the worker under 2 % of a CPU for BENCH_SETTLE_SECONDS in a row (the
   time that took is shown too).
   After each ack run, GET /readyz (every connection's status, the ack's lanes still waiting).
3. Relay throughput: bench.relay's throughput run (agent replies, Zalo +100 ms) on one
   connection, and on its three connections with 997 more stored beside them (the traffic on
   those three; the others' OAs exist in the Zalo simulator and stay quiet).

Environment: BENCH_MANY (1000), BENCH_ACK_SECONDS (8), BENCH_ACK_ROUNDS (2), BENCH_IDLE_SECONDS
(20), BENCH_SETTLE_SECONDS (10), BENCH_CONNECTIONS (16), BENCH_MANY_RELAY=0 skips part 3."""

from __future__ import annotations

import os
import time

import requests

from app.bridge.keys import CONNECTIONS, DUE, HEARTBEAT
from app.bridge.secrets_at_rest import sealer_for
from app.connections.store import ConnectionStore
from bench import connections as three
from bench import relay
from bench.common import (
    CpuMeter,
    bridge,
    cpu_seconds,
    log,
    machine,
    main_for,
    redis_client,
    row,
    start_redis,
    tmpdir,
    zalo_text_event,
    zalo_user_id,
)
from bench.loadgen import ensure_wrk, run_python, run_wrk, write_bodies
from config.settings import load_settings
from sandbox.connections import simulated_record
from sandbox.freshchat_sim import FreshchatSimulator
from sandbox.procs import answers, wait_until
from sandbox.server import start_in_thread

SECTION = "3.5 many connections"
BUSY = 10  # connections the load is spread over
USERS = 1000
BODIES_PER_SECOND = 9000
RATIO_GOAL, IDLE_GOAL = 0.9, 1.1
MANY_APP = "7000000000000000007"  # the app of the stored OAs (an agency: one Zalo app, many OAs)


def add_many(zalo, n: int) -> list:
    """`n` OAs of one app in the Zalo simulator: (connection id, OA handle)."""
    return [
        (f"oa-{i:04d}", zalo.add_oa(MANY_APP, f"71{i:017d}", f"oa-{i:04d}-secret-key", "many-app-secret"))
        for i in range(n)
    ]


def clear_but_connections(r) -> None:
    """Every key but the stored connections (a flush would make every process re-read them all)."""
    doomed = [k for k in r.scan_iter(count=5000) if not k.startswith(CONNECTIONS.encode())]
    for i in range(0, len(doomed), 5000):
        r.unlink(*doomed[i : i + 5000])


def start(procs, r) -> None:
    """Web and one worker, up once the worker beats: not /readyz, which reads every connection's
    status (with 1 000 connections it takes seconds; see BENCHMARKS.md)."""
    procs.start("web")
    procs.start("worker0", "worker")
    wait_until(lambda: answers(procs.url + "/healthz") and r.get(HEARTBEAT), 120, what="web and worker")


def settle(r, worker: int, cap: float, calm: float) -> float:
    """Wait for start-up work (a catch-up job and a credentials test per connection) to be done:
    no lane due and the worker tree under 2 % of a CPU for `calm` seconds, at most `cap`
    seconds. The seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < cap:
        before = cpu_seconds(worker)
        time.sleep(calm)
        due = r.zcount(DUE, "-inf", int(time.time() * 1000))
        if not due and cpu_seconds(worker) - before < 0.02 * calm:
            break
    return time.monotonic() - started


def store_many(redis, env: dict, oas: list, freshchat: dict) -> None:
    settings = load_settings(env)
    store = ConnectionStore(redis, settings, sealer_for(settings))
    for conn_id, oa in oas:
        store.put(simulated_record(conn_id, f"Bench {conn_id}", oa, freshchat))


def bodies(n: int, files: int, run_id: str, oas: list | None) -> list[list[str]]:
    """Signed bodies for the default OA, or round robin over `oas` (one OA per user)."""
    from sandbox.server import build_partners

    _, default, _ = build_partners()
    per_file: list[list[str]] = [[] for _ in range(files)]
    now = int(time.time() * 1000)
    for i in range(n):
        oa = oas[(i % USERS) % len(oas)] if oas else default
        event = zalo_text_event(
            zalo_user_id(i % USERS), f"bench many {i}", msg_id=f"{run_id}{i:014x}", ts_ms=now + i, oa=oa
        )
        raw, headers = oa.sign(event)
        per_file[i % files].append(f"{headers['X-ZEvent-Signature']} {raw.decode()}")
    return per_file


def part_ack_and_idle(tmp, server, base, zalo, fc, quick: bool) -> dict:
    many = int(os.environ.get("BENCH_MANY", 1000))
    seconds = float(os.environ.get("BENCH_ACK_SECONDS", 4 if quick else 8))
    rounds = int(os.environ.get("BENCH_ACK_ROUNDS", 1 if quick else 2))
    idle = float(os.environ.get("BENCH_IDLE_SECONDS", 8 if quick else 20))
    calm = float(os.environ.get("BENCH_SETTLE_SECONDS", 5 if quick else 10))
    conns = int(os.environ.get("BENCH_CONNECTIONS", 16))
    r = redis_client(server.url)
    oas = add_many(zalo, many)
    busy = [oa for _, oa in oas[:: max(1, many // BUSY)][:BUSY]]
    freshchat = {
        "api_url": base + "/freshchat/v2",
        "api_key": fc.api_key,
        "channel_id": fc.channel_id,
        "webhook_public_key": fc.public_key_pem,
    }
    procs = bridge(server.url, base, fc.public_key_pem, tmp)
    wrk, threads = ensure_wrk(), 2
    n = int(BODIES_PER_SECOND * seconds)
    prefixes = {"one": tmp / "bodies1", "many": tmp / "bodiesN"}
    write_bodies(prefixes["one"], bodies(n, threads, "m1", None))
    write_bodies(prefixes["many"], bodies(n, threads, "mN", busy))
    log(f"{many} connections stored for the 'many' runs; load over {len(busy)} of them")

    def fresh(name: str) -> None:
        r.flushall()
        if name == "many":
            store_many(r, procs.env, oas, freshchat)

    def load(url: str, prefix, secs: float) -> dict:
        if wrk:
            return run_wrk(wrk, url, prefix, threads, conns, secs)
        return run_python(url, prefix, threads, conns, secs)

    acks: dict[str, list[dict]] = {"one": [], "many": []}
    idles: dict[str, list[dict]] = {"one": [], "many": []}
    try:
        for rnd in range(rounds):
            for name in ("one", "many") if rnd % 2 == 0 else ("many", "one"):
                fresh(name)
                web = procs.start("web")
                wait_until(lambda: answers(procs.url + "/healthz"), 60, what="the bridge")
                load(procs.url + "/webhooks/zalo", prefixes[name], 2)  # warm-up: imports, pools, caches
                clear_but_connections(r)  # the same bodies again, not duplicates; connections unchanged
                meter = CpuMeter({"web": web.pid}, r).start()
                result = load(procs.url + "/webhooks/zalo", prefixes[name], seconds)
                result["web_cpu_us_per_req"] = meter.stop()["web"] / max(1, result["requests"]) * 1e6
                acks[name].append(result)
                log(
                    f"round {rnd} {name}: ack {result['rps']:.0f} req/s p99 {result['p99_ms']:.1f} ms, "
                    f"non-2xx {result['non_2xx']}, web CPU {result['web_cpu_us_per_req']:.0f} us/req"
                )
                result["readyz_s"] = readyz_seconds(procs.url)  # the lanes just filled are still waiting
                procs.kill("web")
                fresh(name)
                start(procs, r)
                waited = settle(r, procs.procs["worker0"].pid, 900, calm)
                meter = CpuMeter({"web": procs.procs["web"].pid, "worker": procs.procs["worker0"].pid}).start()
                time.sleep(idle)
                cpu = meter.stop()
                idles[name].append(dict(cpu, settled_s=waited))
                log(
                    f"round {rnd} {name}: start-up work done after {waited:.0f} s; idle CPU over {cpu['wall']:.1f} s: "
                    f"web {cpu['web']} s, worker {cpu['worker']} s"
                )
                procs.stop()
    finally:
        procs.stop()
    return {
        "acks": acks,
        "idles": idles,
        "many": many,
        "note": f"{rounds}x{seconds:.0f}s ack, {rounds}x{idle:.0f}s idle",
    }


def readyz_seconds(url: str, times: int = 3) -> float:
    """The median time of GET /readyz (every connection's status; 503 without a worker is fine)."""
    took = []
    for _ in range(times):
        started = time.monotonic()
        requests.get(url + "/readyz", timeout=120)
        took.append(time.monotonic() - started)
    return sorted(took)[len(took) // 2]


def ack_rows(got: dict) -> list[dict]:
    def agg(rs: list[dict]) -> dict:
        req, secs = sum(x["requests"] for x in rs), sum(x["seconds"] for x in rs)
        return {
            "rps": req / secs,
            "p99": max(x["p99_ms"] for x in rs),
            "bad": sum(x["non_2xx"] + x["errors"] for x in rs),
            "readyz": max(x["readyz_s"] for x in rs),
        }

    one, many = agg(got["acks"]["one"]), agg(got["acks"]["many"])
    ratio = round(many["rps"] / one["rps"], 2)
    n = got["many"]
    rows = [
        row(SECTION, "ack, one connection", one["rps"], "req/s", note=f"p99 {one['p99']:.1f} ms, {got['note']}"),
        row(SECTION, f"ack, {n} stored, load over {BUSY}", many["rps"], "req/s", note=f"p99 {many['p99']:.1f} ms"),
        row(SECTION, f"ack {n} / one", ratio, "x", f">= {RATIO_GOAL}x", ratio >= RATIO_GOAL),
        row(
            SECTION,
            "ack non-2xx + errors (one; many)",
            f"{one['bad']}; {many['bad']}",
            "",
            "0; 0",
            one["bad"] + many["bad"] == 0,
        ),
    ]
    rows.append(
        row(
            SECTION,
            f"GET /readyz, {n} stored / one (after the ack load, its lanes waiting)",
            f"{many['readyz']:.2f} / {one['readyz']:.2f}",
            "s",
            note="median of 3, worst round",
        )
    )
    for proc in ("web", "worker"):
        per_s = {k: sum(c[proc] for c in v) / sum(c["wall"] for c in v) for k, v in got["idles"].items()}
        ratio = per_s["many"] / per_s["one"] if per_s["one"] else (1.0 if not per_s["many"] else float("inf"))
        rows.append(
            row(
                SECTION,
                f"idle CPU {proc}: {n} / one",
                round(ratio, 2),
                "x",
                f"<= {IDLE_GOAL}x",
                ratio <= IDLE_GOAL,
                f"{per_s['many'] * 1000:.1f} / {per_s['one'] * 1000:.1f} ms CPU per s",
            )
        )
    settled = {k: max(c["settled_s"] for c in v) for k, v in got["idles"].items()}
    rows.append(
        row(
            SECTION,
            f"start-up work (catch-up, credentials tests) done after: {n} / one",
            f"{settled['many']:.0f} / {settled['one']:.0f}",
            "s",
            note="web and worker started together; idle CPU measured after it",
        )
    )
    return rows


def part_relay(tmp, server, base, zalo, fc, fc2, quick: bool) -> list[dict]:
    """bench.relay's throughput run (its pieces, started without /readyz): on one connection,
    then on its three connections with the others stored beside them."""
    many = int(os.environ.get("BENCH_MANY", 1000))
    one = relay_throughput(tmp / "r1", server, base, zalo, fc, quick)
    spread = relay_throughput(tmp / "rN", server, base, zalo, fc, quick, fc2, many)
    ratio = round(spread["rate"] / one["rate"], 2)
    return [
        row(SECTION, "relay, one connection", one["rate"], "msg/s", note=f"worker CPU {one['cpu_ms']:.1f} ms/msg"),
        row(
            SECTION,
            f"relay, {many} stored, load over 3",
            spread["rate"],
            "msg/s",
            note=f"worker CPU {spread['cpu_ms']:.1f} ms/msg",
        ),
        row(SECTION, f"relay {many} / one", ratio, "x", f">= {RATIO_GOAL}x", ratio >= RATIO_GOAL),
        row(
            SECTION,
            "relay order violations; duplicates (one; many)",
            f"{one['violations']}; {one['duplicates']} / {spread['violations']}; {spread['duplicates']}",
            "",
        ),
    ]


def relay_throughput(tmp, server, base, zalo, fc, quick, fc2=None, many: int = 1) -> dict:
    """As bench.relay.measure_throughput; with `fc2`, its three connections and `many` - 3 more."""
    r = redis_client(server.url)
    r.flushall()
    zalo.reset(), fc.reset()
    spread = None
    tmp.mkdir(parents=True, exist_ok=True)
    procs = bridge(server.url, base, fc.public_key_pem, tmp, WORKER_CONCURRENCY="48", ZALO_RATE_PER_MINUTE="1000000")
    if fc2 is not None:
        spread, setup = relay.three_connections(server.url, base, zalo, fc, fc2)
        setup(procs)
        freshchat = {"api_url": base + "/freshchat/v2", "api_key": fc.api_key, "channel_id": fc.channel_id}
        store_many(r, procs.env, add_many(zalo, many - len(three.IDS)), freshchat)
    apps = {oa.app_id: oa for oa, _ in (spread or {"default": (zalo, fc)}).values()}.values()
    try:
        start(procs, r)
        conversations = relay.open_conversations(procs.url, zalo, fc, relay.CONVERSATIONS, spread)
        for oa in apps:
            oa.faults.latency("message_cs", relay.ZALO_LATENCY_MS)
        per = 3 if quick else relay.PER_CONVERSATION
        worker = procs.procs["worker0"].pid
        got = relay.throughput(procs.url, zalo, worker, conversations, per, "tp", timeout=180, redis_url=server.url)
        log(f"relay throughput ({many} stored): {got['rate']:.1f} msg/s, worker CPU {got['cpu_ms']:.1f} ms/msg")
    finally:
        for oa in apps:
            oa.faults.clear()
        procs.stop()
    return got


def run(quick: bool = False) -> dict:
    tmp, server = tmpdir("many"), start_redis()
    fc2 = FreshchatSimulator(three.TOPIC_B2, three.FC2_KEY)
    base, zalo, fc, stop_partners = start_in_thread(freshchat_accounts={three.FRESHCHAT2: fc2})
    try:
        got = part_ack_and_idle(tmp / "ack", server, base, zalo, fc, quick)
        rows = ack_rows(got)
        server_r = redis_client(server.url)
        if os.environ.get("BENCH_MANY_RELAY", "1") != "0":
            rows += part_relay(tmp, server, base, zalo, fc, fc2, quick)
        m = machine(server_r)
    finally:
        stop_partners()
        server.stop()
    return {"name": "many_connections", "rows": rows, "machine": m, "details": got}


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
