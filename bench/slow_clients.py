"""Slow clients: SLOW connections trickle one byte every 3 s for SECONDS (half of them in the
headers, half in a body whose Content-Length they never reach, each reconnecting when cut off)
against the web process exactly as the Procfile starts it, while /healthz and a signed
`user_send_text` are asked for four times a second. Prints how fast those answered.

    python -m bench.slow_clients [--quick]

Environment: BENCH_SLOW_CONNECTIONS (200), BENCH_SLOW_SECONDS (30), BENCH_SLOW_TARGETS
(default "gunicorn" plus each of nginx and caddy that is installed).

"gunicorn" is the web process alone. "nginx" and "caddy" are the production proxies
(deploy/nginx.conf, deploy/Caddyfile, rendered onto loopback with a certificate made for the run
by bench/proxies.py) in front of that same gunicorn: the slow clients and the probes then speak
TLS to the proxy, as the internet would.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

import requests

from bench.common import bridge, log, machine, main_for, percentile, row, start_redis, tmpdir, zalo_text_event
from bench.proxies import HOST, Proxy, available
from config.sandbox import sandbox_keypair
from sandbox.procs import answers, wait_until
from sandbox.server import build_partners

SECTION = "slow clients"
TRICKLE_SECONDS = 3.0
DEADLINE = 2.0  # Zalo's: an answer later than this is a failed delivery
HEADERS = "POST /webhooks/zalo HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"


@dataclass
class Figures:
    healthz: list[float] = field(default_factory=list)
    webhook: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cut_off: int = 0  # slow connections the server closed (each then reconnected)
    server_headers: set[str] = field(default_factory=set)


def trickle(host: str, port: int, in_body: bool, until: float, figures: Figures, proxy=None) -> None:
    """One slow client: reconnect whenever the server hangs up, until `until`."""
    headers = HEADERS.format(host=f"{HOST}:{port}" if proxy else "bridge").encode()
    while time.monotonic() < until:
        try:
            raw = socket.create_connection((host, port), timeout=5)
            with proxy.wrap(raw) if proxy else raw as sock:
                if in_body:
                    sock.sendall(headers + b"Content-Length: 100000\r\n\r\n")
                else:
                    sock.sendall(headers)
                while time.monotonic() < until:
                    sock.sendall(b"{" if in_body else b"X")
                    sock.settimeout(TRICKLE_SECONDS)
                    try:
                        sock.recv(1024)  # closed (b"") or answered: either way, start over
                    except TimeoutError:
                        continue
                    figures.cut_off += 1
                    break
        except OSError:
            time.sleep(0.2)


def probe(url: str, sign, until: float, figures: Figures, verify=True) -> None:
    """The requests that must keep working: /healthz and a freshly signed webhook."""
    session = requests.Session()
    while time.monotonic() < until:
        for name in ("healthz", "webhook"):
            started = time.monotonic()
            try:
                if name == "healthz":
                    resp = session.get(url + "/healthz", timeout=DEADLINE * 5, verify=verify)
                else:
                    raw, headers = sign(zalo_text_event("880000000000000001", "still there?", uuid.uuid4().hex[:20]))
                    resp = session.post(
                        url + "/webhooks/zalo", data=raw, headers=headers, timeout=DEADLINE * 5, verify=verify
                    )
                took = time.monotonic() - started
                getattr(figures, name).append(took)
                figures.server_headers.add(resp.headers.get("Server", ""))
                if resp.status_code != 200:
                    figures.failures.append(f"{name} {resp.status_code}")
            except requests.RequestException as exc:
                figures.failures.append(f"{name} {type(exc).__name__}")
        time.sleep(0.25)


def measure(url: str, sign, connections: int, seconds: float, proxy=None) -> Figures:
    """Run `connections` slow clients and the probe for `seconds` against `url` (or `proxy`)."""
    host, port = ("127.0.0.1", proxy.port) if proxy else url.removeprefix("http://").split(":")
    figures = Figures()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=trickle, args=(host, int(port), i % 2 == 1, until, figures, proxy), daemon=True)
        for i in range(connections)
    ]
    for t in threads:
        t.start()
    time.sleep(min(2.0, seconds / 4))  # every slow client connected and holding on
    probe(proxy.url if proxy else url, sign, until, figures, str(proxy.cert) if proxy else True)
    for t in threads:
        t.join(timeout=TRICKLE_SECONDS + 6)
    return figures


def start_web(tmp, redis_url: str, **env):
    """The web process as the Procfile starts it (production flags), nothing else."""
    _, public_pem = sandbox_keypair(tmp)
    web = bridge(redis_url, "http://127.0.0.1:9", public_pem, tmp, **env)
    web.start("web")
    wait_until(lambda: answers(web.url + "/healthz"), timeout=30, what="web /healthz")
    return web


def run(quick: bool = False) -> dict:
    connections = int(os.environ.get("BENCH_SLOW_CONNECTIONS", 50 if quick else 200))
    seconds = float(os.environ.get("BENCH_SLOW_SECONDS", 10 if quick else 30))
    targets = os.environ.get("BENCH_SLOW_TARGETS", ",".join(["gunicorn", *available()])).split(",")
    redis = start_redis()
    tmp = tmpdir("slow")
    web = start_web(tmp, redis.url, TRUSTED_PROXIES="127.0.0.1")
    _, zalo, _ = build_partners()
    out = []
    try:
        for target in targets:
            proxy = Proxy(target, web.port, tmp / target).start() if target != "gunicorn" else None
            try:
                where = proxy.url if proxy else web.url
                log(f"{connections} slow connections for {seconds:.0f} s against {target} ({where})")
                figures = measure(web.url, zalo.sign, connections, seconds, proxy)
            finally:
                if proxy:
                    proxy.stop()
            out += rows(figures, connections, seconds, target)
    finally:
        web.stop()
        redis.stop()
    return {"name": "slow_clients", "machine": machine(), "rows": out}


def rows(f: Figures, connections: int, seconds: float, target: str = "gunicorn") -> list[dict]:
    section = SECTION if target == "gunicorn" else f"{SECTION} via {target}"
    out = [row(section, "slow connections", connections, note=f"{seconds:.0f} s, cut off {f.cut_off} times")]
    for name, took in (("/healthz", f.healthz), ("signed webhook", f.webhook)):
        worst = max(took, default=float("inf"))
        out += [
            row(section, f"{name} answers", len(took)),
            row(section, f"{name} p50", round(percentile(took, 50) * 1000, 1) if took else None, "ms"),
            row(section, f"{name} p99", round(percentile(took, 99) * 1000, 1) if took else None, "ms"),
            row(section, f"{name} max", round(worst * 1000, 1), "ms", f"< {DEADLINE * 1000:.0f}", worst < DEADLINE),
        ]
    out.append(
        row(section, "failed probes", len(f.failures), goal="0", met=not f.failures, note=", ".join(f.failures[:5]))
    )
    out.append(row(section, "Server headers", ", ".join(sorted(f.server_headers))))
    return out


if __name__ == "__main__":
    main_for(run, __doc__.splitlines()[0])
