"""1. Webhook ack: signed `user_send_text` events with unique ids, keep-alive load against
POST /webhooks/zalo, and the same load against a bare LPUSH app (bench/reference_app.py)
under the same gunicorn command line. Requests/s, p50, p99, and the ratio.

    python -m bench.webhook_ack [--quick]

Environment: BENCH_ACK_SECONDS (10), BENCH_ACK_ROUNDS (2), BENCH_CONNECTIONS (16),
BENCH_NO_WRK=1 forces the Python client."""

from __future__ import annotations

import os
import time

from app.bridge.keys import DEFAULT_KEYS
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


def count_keys(r, pattern: str) -> int:
    return sum(1 for _ in r.scan_iter(match=pattern, count=5000))


def make_bodies(n: int, files: int, run_id: str) -> list[list[str]]:
    per_file: list[list[str]] = [[] for _ in range(files)]
    _, zalo, _ = build_partners()  # signs like Zalo, with the sandbox OA secret the bridge is given
    now = int(time.time() * 1000)
    for i in range(n):
        event = zalo_text_event(
            zalo_user_id(i % USERS), f"bench ack message {i}", msg_id=f"{run_id}{i:014x}", ts_ms=now + i
        )
        raw, headers = zalo.sign(event)
        per_file[i % files].append(f"{headers['X-ZEvent-Signature']} {raw.decode()}")
    return per_file


def run(quick: bool = False) -> dict:
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
    try:
        ref_port = free_port()
        web = procs.start("web")
        ref = procs.start("reference-web", command=web_command("'bench.reference_app:app'"), PORT=str(ref_port))
        ref_url = f"http://127.0.0.1:{ref_port}"
        wait_until(lambda: answers(procs.url + "/healthz"), 30, what="the bridge")
        wait_until(lambda: answers(ref_url + "/", ok=(200, 405)), 30, what="the reference app")
        targets = {
            "bridge": (procs.url + "/webhooks/zalo", web.pid),
            "reference": (ref_url + "/webhooks/zalo", ref.pid),
        }

        n = int(BODIES_PER_SECOND * seconds)
        prefix = tmp / "bodies"
        write_bodies(prefix, make_bodies(n, threads, "b0"))
        log(f"{n} signed bodies written")

        def load(url: str, secs: float) -> dict:
            if wrk:
                return run_wrk(wrk, url, prefix, threads, connections, secs)
            return run_python(url, prefix, threads, connections, secs)

        for url, _pid in targets.values():  # warm-up (imports, pools, JIT-free but caches)
            r.flushall()
            load(url, 2)
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for rnd in range(rounds):
            order = list(targets) if rnd % 2 else list(reversed(targets))
            for name in order:
                url, pid = targets[name]
                r.flushall()
                time.sleep(0.5)
                meter = CpuMeter({"web": pid}, r).start()
                result = load(url, seconds)
                cpu = meter.stop()
                seen = DEFAULT_KEYS.seen("*", "*")
                stored = r.llen("bench:reference") if name == "reference" else count_keys(r, seen)
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

    b, ref = agg("bridge"), agg("reference")
    ratio = b["rps"] / ref["rps"]
    faults = b["non_2xx"] + b["errors"] + b["wraps"]
    note = f"{client}, {connections} conns, {rounds}x{seconds:.0f}s each; p99 = worst round"
    rows = [
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
        row(
            SECTION,
            "bridge non-2xx, errors, id reuse; all in Redis",
            f"{faults}; {b['stored_ok']}",
            "",
            "0; True",
            faults == 0 and b["stored_ok"],
        ),
    ]
    return {"name": "webhook_ack", "rows": rows, "machine": m, "details": {"runs": runs, "client": client}}


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
