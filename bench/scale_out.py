"""6. Scale-out: relay throughput with one, two and three worker hosts on one Redis, Zalo
answering after 100 ms (the simulator's latency fault), as a ratio to the one-host figure.

    python -m bench.scale_out [--quick]

Each worker host is its own `python -m workers` process tree from the Procfile with its own
environment (and WORKER_CONCURRENCY processes); one gunicorn web host takes the webhooks. The
load and its measurement are bench/relay.py's throughput run; every run starts from an empty
Redis and fresh simulators, so the hosts' figures differ only by the hosts."""

from __future__ import annotations

from bench.common import bridge, log, machine, main_for, redis_client, row, start_redis, tmpdir
from bench.relay import CONVERSATIONS, PER_CONVERSATION, ZALO_LATENCY_MS, open_conversations, throughput
from sandbox.procs import wait_until
from sandbox.server import start_in_thread

HOSTS = (1, 2, 3)
PER_HOST = "12"  # worker processes per host: 3 hosts reach bench/relay.py's 36-48


def measure(tmp, redis_url: str, base: str, zalo, fc, hosts: int, quick: bool) -> dict:
    redis_client(redis_url).flushall()
    zalo.reset(), fc.reset()
    env = {"WORKER_CONCURRENCY": PER_HOST, "ZALO_RATE_PER_MINUTE": "1000000"}
    workers = [bridge(redis_url, base, fc.public_key_pem, tmp / f"worker-{n}", **env) for n in range(hosts)]
    web = bridge(redis_url, base, fc.public_key_pem, tmp / "web", **env)
    try:
        for host in workers:
            host.start("worker")
        web.start("web")
        wait_until(web.ready, timeout=60, what="bridge /readyz")
        conversations = open_conversations(web.url, zalo, fc, CONVERSATIONS)
        zalo.faults.latency("message_cs", ZALO_LATENCY_MS)
        per = 3 if quick else PER_CONVERSATION
        first = workers[0].procs["worker"].pid
        r = throughput(web.url, zalo, first, conversations, per, "so", timeout=120, redis_url=redis_url)
        log(f"scale-out, {hosts} worker host(s): {r}")
        return r
    finally:
        zalo.faults.clear()
        for host in (web, *workers):
            host.stop()


def rows_for(results: dict[int, dict]) -> list[dict]:
    one = results[1]["rate"]
    out = []
    for hosts, r in results.items():
        out.append(
            row(
                "6 scale-out",
                f"{hosts} worker host(s) x {PER_HOST} processes: agent messages/s, Zalo +{ZALO_LATENCY_MS} ms",
                round(r["rate"], 1),
                "msg/s",
                "",
                None,
                f"{r['delivered']}/{r['expected']} delivered, {r['duplicates']} duplicates, "
                f"{r['violations']} order violations",
            )
        )
        if hosts > 1:
            ratio = round(r["rate"] / one, 2)
            out.append(row("6 scale-out", f"{hosts} worker hosts / one: messages/s", ratio, "x", "", None))
    clean = all(
        r["delivered"] == r["expected"] and not r["duplicates"] and not r["violations"] for r in results.values()
    )
    out.append(row("6 scale-out", "all delivered, no duplicates, order kept", clean, "", "True", clean))
    return out


def run(quick: bool = False) -> dict:
    tmp, server = tmpdir("scale-out"), start_redis()
    base, zalo, fc, stop_partners = start_in_thread()
    try:
        results = {hosts: measure(tmp / f"h{hosts}", server.url, base, zalo, fc, hosts, quick) for hosts in HOSTS}
    finally:
        stop_partners()
        server.stop()
    return {"name": "scale_out", "rows": rows_for(results), "machine": machine()}


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
