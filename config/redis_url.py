"""The forms of REDIS_URL beyond redis-py's own: Sentinel, and a printable (masked) form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

SENTINEL_SCHEME = "redis+sentinel://"


@dataclass(frozen=True)
class SentinelTarget:
    sentinels: list[tuple[str, int]]
    master: str
    db: int
    password: str | None


def parse_sentinel_url(url: str) -> SentinelTarget:
    """`redis+sentinel://[:password@]host:port,host:port/<master name>/<db>` (CONTRACT §2).

    One password serves the sentinels and the Redis servers, as in most deployments."""
    rest = url.removeprefix(SENTINEL_SCHEME)
    auth, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not hosts or not 1 <= len(parts) <= 2:
        raise ValueError("expected redis+sentinel://[:password@]host:port,host:port/<master name>/<db>")
    sentinels = []
    for host in hosts.split(","):
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"sentinel address {host!r} is not host:port")
        sentinels.append((name, int(port)))
    db = parts[1] if len(parts) == 2 else "0"
    if not db.isdigit():
        raise ValueError("the database after the master name must be a number")
    password = unquote(auth.partition(":")[2]) if auth else None
    return SentinelTarget(sentinels, unquote(parts[0]), int(db), password or None)


def masked(url: str) -> str:
    """The URL with its password replaced, for logs and configuration errors."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
