"""1. Webhook ack: signed `user_send_text` events with unique ids, keep-alive load against
POST /webhooks/zalo, and the same load against a bare LPUSH app (bench/reference_app.py)
under the same gunicorn command line. Requests/s, p50, p99, and the ratio. Then the same load
spread over three connections (bench/connections.py; each event signed with its OA's own OA
Secret Key) against the same bridge, and its ratio to the one-connection figure.

    python -m bench.webhook_ack [--quick] [--connections-only]

Environment: BENCH_ACK_SECONDS (10), BENCH_ACK_ROUNDS (2), BENCH_CONNECTIONS (16),
BENCH_NO_WRK=1 forces the Python client."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import NamedTuple

from app.bridge.keys import Keys
from app.connections.store import Registry
from bench import connections as three
from bench.common import (
    CpuMeter,
    bridge,
    log,
    machine,
    main_for,
    redis_client,
    row,
    start_redis,
    tmpdir,
    web_command,
    zalo_text_event,
    zalo_user_id,
)
from bench.loadgen import ensure_wrk, run_python, run_wrk, write_bodies
from config.sandbox import sandbox_keypair
from sandbox.procs import answers, free_port, wait_until
from sandbox.server import build_partners

SECTION = "1 ack"
USERS = 1000  # lanes the events are spread over
BODIES_PER_SECOND = 9000  # more than either target has reached here; a wrap is reported
ACK_RATIO_GOAL = 0.9  # "no worse than one connection", less the run-to-run noise of this box


class Target(NamedTuple):
    url: str
    pid: int  # the gunicorn master, for CPU
    bodies: object  # the prefix of the signed-body files
    setup: Callable[[], None] | None = None  # after each Redis flush


def count_keys(r, pattern: str) -> int:
    return sum(1 for _ in r.scan_iter(match=pattern, count=5000))


def make_bodies(n: int, files: int, run_id: str, oas: dict | None = None) -> list[list[str]]:
    """Signed bodies for the default OA, or, given `oas`, for each user's connection's OA."""
    per_file: list[list[str]] = [[] for _ in range(files)]
    _, zalo, _ = build_partners()  # signs like Zalo, with the sandbox OA secret the bridge is given
    now = int(time.time() * 1000)
    for i in range(n):
        oa = oas[three.of_user(i % USERS)] if oas else zalo
        event = zalo_text_event(
            zalo_user_id(i % USERS), f"bench ack message {i}", msg_id=f"{run_id}{i:014x}", ts_ms=now + i, oa=oa
        )
        raw, headers = oa.sign(event)
        per_file[i % files].append(f"{headers['X-ZEvent-Signature']} {raw.decode()}")
    return per_file


def seen_keys(r) -> int:
    """Events the bridge stored (one dedupe key each), over every connection's keys."""
    return sum(count_keys(r, Keys(conn_id).seen("*", "*")) for conn_id in three.IDS)


def store_connections(r, env: dict, oas: dict, public_pem: str):
    """The three-connection target's set-up after each flush: store b2 and a1 (FreshChat is
    not called here, so its URLs lead nowhere)."""
    nowhere = "http://127.0.0.1:9"
    accounts = {
        "b2": (nowhere + three.FRESHCHAT2 + "/v2", three.FC2_KEY, three.TOPIC_B2, public_pem),
        "a1": (nowhere + "/freshchat/v2", env["FRESHCHAT_API_KEY"], three.TOPIC_A1, public_pem),
    }

    def setup() -> None:
        three.store(r, env, oas, accounts)

    return setup


def run(quick: bool = False, connections_only: bool = False) -> dict:
    seconds = float(os.environ.get("BENCH_ACK_SECONDS", 4 if quick else 10))
    rounds = int(os.environ.get("BENCH_ACK_ROUNDS", 1 if quick else 2))
    connections = int(os.environ.get("BENCH_CONNECTIONS", 16))
    threads = 2
    tmp = tmpdir("ack")
    server = start_redis()
    r = redis_client(server.url)
    wrk = ensure_wrk()
    client = "wrk" if wrk else "python (multi-process http.client)"
    log(f"webhook ack: load generator {client}, {connections} connections, {rounds} x {seconds:.0f} s per target")
    _, public_pem = sandbox_keypair(tmp)
    procs = bridge(server.url, "http://127.0.0.1:9", public_pem, tmp)
    _, zalo, _ = build_partners()
    oas = three.add_oas(zalo)
    try:
        ref_port = free_port()
        web = procs.start("web")
        ref = procs.start("reference-web", command=web_command("'bench.reference_app:app'"), PORT=str(ref_port))
        ref_url = f"http://127.0.0.1:{ref_port}"
        wait_until(lambda: answers(procs.url + "/healthz"), 30, what="the bridge")
        wait_until(lambda: answers(ref_url + "/", ok=(200, 405)), 30, what="the reference app")

        n = int(BODIES_PER_SECOND * seconds)
        one, spread = tmp / "bodies", tmp / "bodies3"
        write_bodies(one, make_bodies(n, threads, "b0"))
        write_bodies(spread, make_bodies(n, threads, "b3", oas))
        log(f"{n} signed bodies written for one connection, {n} spread over three")
        stored_three = store_connections(r, procs.env, oas, public_pem)
        targets = {  # bridge and bridge3: the same processes, Redis flushed between runs
            "bridge": Target(procs.url + "/webhooks/zalo", web.pid, one),
            "bridge3": Target(procs.url + "/webhooks/zalo", web.pid, spread, stored_three),
            "reference": Target(ref_url + "/webhooks/zalo", ref.pid, one),
        }
        if connections_only:
            del targets["reference"]

        def load(url: str, prefix, secs: float) -> dict:
            if wrk:
                return run_wrk(wrk, url, prefix, threads, connections, secs)
            return run_python(url, prefix, threads, connections, secs)

        def fresh(name: str) -> None:
            r.flushall()
            if targets[name].setup:
                targets[name].setup()
            # the bridge's web processes re-read stored connections this often: let them all
            # see the ones just stored (or see them gone) before measuring
            time.sleep(0.5 if name == "reference" else Registry.REFRESH_SECONDS + 0.5)

        for name in ("bridge", "reference"):  # warm-up per process (imports, pools, caches)
            if name in targets:
                fresh(name)
                load(targets[name].url, targets[name].bodies, 2)
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for rnd in range(rounds):
            order = list(targets) if rnd % 2 else list(reversed(targets))
            for name in order:
                url, pid, prefix, _ = targets[name]
                fresh(name)
                meter = CpuMeter({"web": pid}, r).start()
                result = load(url, prefix, seconds)
                cpu = meter.stop()
                stored = r.llen("bench:reference") if name == "reference" else seen_keys(r)
                result.update(
                    cpu_web_s=cpu["web"],
                    cpu_redis_s=cpu["redis"],
                    stored=stored,
                    web_cpu_us_per_req=cpu["web"] / max(1, result["requests"]) * 1e6,
                )
                runs[name].append(result)
                log(
                    f"round {rnd} {name}: {result['rps']:.0f} req/s p50 {result['p50_ms']:.1f} ms "
                    f"p99 {result['p99_ms']:.1f} ms, stored {stored}, non-2xx {result['non_2xx']}, "
                    f"errors {result['errors']}, web CPU {result['web_cpu_us_per_req']:.0f} us/req"
                )
        m = machine(r)
    finally:
        procs.stop()
        server.stop()

    def agg(name: str) -> dict:
        rs = runs[name]
        total_req = sum(x["requests"] for x in rs)
        total_s = sum(x["seconds"] for x in rs)
        return {
            "rps": total_req / total_s,
            "p50_ms": sum(x["p50_ms"] for x in rs) / len(rs),
            "p99_ms": max(x["p99_ms"] for x in rs),
            "requests": total_req,
            "non_2xx": sum(x["non_2xx"] for x in rs),
            "errors": sum(x["errors"] for x in rs),
            "wraps": sum(x["wraps"] for x in rs),
            "stored_ok": all(x["stored"] >= x["requests"] - x["non_2xx"] for x in rs),
            "web_cpu_us_per_req": sum(x["cpu_web_s"] for x in rs) / max(1, total_req) * 1e6,
        }

    b = agg("bridge")
    note = f"{client}, {connections} conns, {rounds}x{seconds:.0f}s each; p99 = worst round"
    rows = [] if connections_only else reference_rows(b, agg("reference"), note)
    rows += connection_rows(b, agg("bridge3"), note)
    return {"name": "webhook_ack", "rows": rows, "machine": m, "details": {"runs": runs, "client": client}}


def faults_row(metric: str, x: dict) -> dict:
    faults = x["non_2xx"] + x["errors"] + x["wraps"]
    return row(SECTION, metric, f"{faults}; {x['stored_ok']}", "", "0; True", faults == 0 and x["stored_ok"])


def reference_rows(b: dict, ref: dict, note: str) -> list[dict]:
    ratio = b["rps"] / ref["rps"]
    return [
        row(SECTION, "bridge POST /webhooks/zalo", b["rps"], "req/s", note=note),
        row(
            SECTION, "bridge p50 / p99", f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f}", "ms", "p99 < 50 ms", b["p99_ms"] < 50
        ),
        row(
            SECTION,
            "reference LPUSH app",
            ref["rps"],
            "req/s",
            note=f"p50 / p99 {ref['p50_ms']:.1f} / {ref['p99_ms']:.1f} ms",
        ),
        row(SECTION, "bridge / reference throughput", round(ratio, 2), "x", ">= 0.8x", ratio >= 0.8),
        row(
            SECTION,
            "web CPU per request (bridge / ref)",
            f"{b['web_cpu_us_per_req']:.0f} / {ref['web_cpu_us_per_req']:.0f}",
            "us",
            note="gunicorn tree utime+stime",
        ),
        faults_row("bridge non-2xx, errors, id reuse; all in Redis", b),
    ]


def connection_rows(one: dict, spread: dict, note: str) -> list[dict]:
    ratio = round(spread["rps"] / one["rps"], 2)  # the goal is judged on the figure shown
    return [
        row(
            SECTION,
            "3 connections: POST /webhooks/zalo, load spread over 2 OAs of one app + 1 of another",
            spread["rps"],
            "req/s",
            note=f"one connection {one['rps']:,.0f} req/s; same bridge, {note}, alternating with it",
        ),
        row(
            SECTION,
            "3 connections: p50 / p99",
            f"{spread['p50_ms']:.1f} / {spread['p99_ms']:.1f}",
            "ms",
            note=f"one connection {one['p50_ms']:.1f} / {one['p99_ms']:.1f} ms",
        ),
        row(
            SECTION,
            "3 connections / one: throughput",
            ratio,
            "x",
            f">= {ACK_RATIO_GOAL}x",
            ratio >= ACK_RATIO_GOAL,
            f"web CPU per request {spread['web_cpu_us_per_req']:.0f} / {one['web_cpu_us_per_req']:.0f} us",
        ),
        faults_row("3 connections: non-2xx, errors, id reuse; all in Redis", spread),
    ]


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
