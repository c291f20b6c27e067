"""Keep-alive HTTP load with a different pre-signed body per request: wrk (preferred; installed
from Debian when missing and we are root) or a multi-process Python client. Whichever is used,
it is the same for every target of a run, at the same concurrency."""

from __future__ import annotations

import http.client
import json
import multiprocessing
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import log, percentile

LUA = Path(__file__).with_name("wrk_signed.lua")


def ensure_wrk() -> str | None:
    """Path of wrk; try `apt-get install -y wrk` once when it is missing."""
    found = shutil.which("wrk")
    if found or os.environ.get("BENCH_NO_WRK"):
        return None if os.environ.get("BENCH_NO_WRK") else found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    log("wrk not found: apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "install", "-y", "-qq", "wrk"],
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "wrk"],
    ):
        try:
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180)
        except (subprocess.TimeoutExpired, OSError):
            return None
        if shutil.which("wrk"):
            return shutil.which("wrk")
    return None


def write_bodies(prefix: Path, lines_per_thread: list[list[str]]) -> None:
    for t, lines in enumerate(lines_per_thread):
        Path(f"{prefix}.{t}").write_text("\n".join(lines) + "\n")


def run_wrk(wrk: str, url: str, prefix: Path, threads: int, connections: int, seconds: float) -> dict:
    cmd = [
        wrk,
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{int(seconds)}s",
        "--timeout",
        "5s",
        "-s",
        str(LUA),
        url,
        "--",
        str(prefix),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((row for row in out.stdout.splitlines() if row.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    r = json.loads(line[len("WRKJSON ") :])
    seconds = r["duration_us"] / 1e6
    return {
        "requests": r["requests"],
        "seconds": seconds,
        "rps": r["requests"] / seconds,
        "p50_ms": r["p50_us"] / 1000,
        "p90_ms": r["p90_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "max_ms": r["max_us"] / 1000,
        "errors": r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"],
        "non_2xx": r["status_errors"],
        "wraps": r["wraps"],
    }


# -- the Python fallback -----------------------------------------------------------------------


def _client_process(url: str, lines: list[str], threads: int, seconds: float, queue) -> None:
    parts = urlsplit(url)
    per_thread = [lines[t::threads] for t in range(threads)]
    lat: list[list[float]] = [[] for _ in range(threads)]
    bad = [0] * threads
    start_at = time.monotonic()
    stop_at = start_at + seconds

    def run(t: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        for line in per_thread[t]:
            if time.monotonic() >= stop_at:
                break
            sig, body = line.split(" ", 1)
            data = body.encode()
            t0 = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    parts.path,
                    body=data,
                    headers={"Content-Type": "application/json", "X-ZEvent-Signature": sig},
                )
                resp = conn.getresponse()
                resp.read()
                ok = 200 <= resp.status < 300
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
                ok = False
            lat[t].append((time.perf_counter() - t0) * 1000)
            bad[t] += 0 if ok else 1
        conn.close()

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    queue.put({"lat": [x for xs in lat for x in xs], "bad": sum(bad), "seconds": time.monotonic() - start_at})


def run_python(url: str, prefix: Path, processes: int, connections: int, seconds: float) -> dict:
    """`connections` keep-alive connections spread over `processes` processes (threads inside)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    per_proc = max(1, connections // processes)
    procs = []
    for p in range(processes):
        lines = Path(f"{prefix}.{p}").read_text().splitlines()
        procs.append(ctx.Process(target=_client_process, args=(url, lines, per_proc, seconds, queue)))
    for proc in procs:
        proc.start()
    results = [queue.get(timeout=seconds + 60) for _ in procs]
    for proc in procs:
        proc.join(10)
    lat = [x for r in results for x in r["lat"]]
    took = max(r["seconds"] for r in results)
    return {
        "requests": len(lat),
        "seconds": took,
        "rps": len(lat) / took,
        "p50_ms": percentile(lat, 50),
        "p90_ms": percentile(lat, 90),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else 0,
        "errors": 0,
        "non_2xx": sum(r["bad"] for r in results),
        "wraps": 0,
    }
