"""Run the bridge as real processes, from the Procfile commands, against the simulators.

The e2e tests and the benchmarks both use this: one place knows how a deployment's processes
are started, with which environment, and how to stop every one of them (and only them)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from config.sandbox import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line and not line.startswith("#"))


# Ports handed out by free_port: below the kernel's ephemeral range (32768-60999 on Linux), so no
# outgoing connection takes one between the pick and the bind, and one block per pytest-xdist
# worker (PYTEST_XDIST_WORKER gw0, gw1, ...; block 0 without xdist), so two workers never pick the
# same one. Within a block a process counts upwards from a random start (two runs at once rarely
# meet) and skips any port it cannot bind now (another program's, or one still in TIME_WAIT).
PORTS_FROM, PORTS_PER_BLOCK, BLOCKS = 20000, 1000, 12
_next_port: list[int] = []


def _port_block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    block = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    start = PORTS_FROM + (block % BLOCKS) * PORTS_PER_BLOCK
    return range(start, start + PORTS_PER_BLOCK)


def free_port() -> int:
    """A port of this process's block that nothing is bound to now, never the same one twice."""
    block = _port_block()
    if not _next_port:
        _next_port.append(random.randrange(len(block)))
    for _ in range(len(block)):
        port = block[_next_port[0] % len(block)]
        _next_port[0] += 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))  # no SO_REUSEADDR: a port in TIME_WAIT is skipped too
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {block.start}-{block.stop - 1}")


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def answers(url: str, ok=(200,)) -> bool:
    """Whether `url` answers one of the `ok` statuses now (a refused connection is a no)."""
    try:
        return requests.get(url, timeout=1).status_code in ok
    except requests.RequestException:
        return False


def descendants(root: int) -> set[int]:
    """Every process below `root`, from /proc (honcho puts each entry in its own session)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
        except (ValueError, OSError, IndexError):
            continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


class Bridge:
    """gunicorn web + N `worker` processes with the environment a deployment would set.

    The defaults shorten leases and retries so crash tests finish quickly; pass production
    values as keyword arguments (the benchmarks do)."""

    def __init__(self, redis_url: str, partners_url: str, public_key_pem: str, tmp: Path, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = self._env(redis_url, partners_url, public_key_pem, tmp, env)
        self.procs: dict[str, subprocess.Popen] = {}
        self.cwd = ROOT  # another directory (with PYTHONPATH=ROOT) makes a separate host
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def _env(self, redis_url, partners_url, public_key_pem, tmp, extra) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZALO_", "FRESHCHAT_"))}
        env.update({k.upper(): str(v) for k, v in DEFAULTS.items()})
        env.update(
            PORT=str(self.port),
            REDIS_URL=redis_url,
            PUBLIC_BASE_URL=self.url,
            SECRET_KEY="e2e-secret-key-0123456789",
            SANDBOX="false",
            SATISFACTION_SURVEY="false",  # the sandbox page's demo default; off as in production
            ZALO_API_BASE_URL=partners_url + "/zalo",
            ZALO_OAUTH_BASE_URL=partners_url + "/zalo",
            ZALO_BUSINESS_API_BASE_URL=partners_url + "/zalo/business",
            FRESHCHAT_API_URL=partners_url + "/freshchat/v2",
            FRESHCHAT_WEBHOOK_PUBLIC_KEY=public_key_pem,
            MEDIA_DIR=str(tmp / "media"),
            MEDIA_FETCH_ALLOW_PRIVATE="true",
            LOG_FORMAT="text",
            WORKER_CONCURRENCY="4",
            RETRY_BASE_SECONDS="0.2",
            RETRY_MAX_SECONDS="1",
            LEASE_SECONDS="3",
            WEB_CONCURRENCY="2",
            PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, name: str, kind: str | None = None, command: str | None = None, **env) -> subprocess.Popen:
        """Start the Procfile process `kind` (default `name`: `web` or `worker`), or `command`,
        under `name`, in its own process group, with this bridge's environment plus `env`."""
        command = command or procfile()[kind or name].strip()
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=self.cwd,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_all(self, workers: int = 1, timeout: float = 30) -> Bridge:
        self.start("web")
        for i in range(workers):
            self.start(f"worker{i}", "worker")
        wait_until(self.ready, timeout=timeout, what="bridge /readyz")
        return self

    def ready(self) -> bool:
        return answers(self.url + "/readyz")

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        """Signal the whole process group: a SIGKILL takes the worker and its children down at once.
        A group still there after `timeout` seconds is killed."""
        proc = self.procs.pop(name)
        for signum in (sig, signal.SIGKILL):
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout)
                break
            except subprocess.TimeoutExpired:
                continue

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop every process (SIGTERM: as a deployment would; a test's teardown, which asks
        nothing of how they stop, may SIGKILL them at once)."""
        for name in list(self.procs):
            self.kill(name, sig)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")
