"""Zalo's domain-verification files, uploaded per connection and served at the domain root.

Zalo proves a domain by fetching `/zalo_verifier<code>.html`; serving the downloaded file's exact
bytes is the safest answer (its markup varies). The domain is the bridge's, not a connection's,
so one index says which connection uploaded each code, and the file is that connection's (it
goes when the connection is removed).
"""

from __future__ import annotations

import re

from redis import Redis

from app.bridge.keys import VERIFIER_OWNERS, Keys

NAME = re.compile(r"^zalo_verifier([A-Za-z0-9_-]{1,64})\.html$")
MAX_BYTES = 16 * 1024


def code_of(filename: str) -> str | None:
    """The code in a file name of Zalo's form, None for any other name."""
    found = NAME.match(filename or "")
    return found.group(1) if found else None


def filename_of(code: str) -> str:
    return f"zalo_verifier{code}.html"


class VerificationFiles:
    def __init__(self, redis: Redis, connection_id: str):
        self.redis = redis
        self.connection = connection_id
        self.key = Keys(connection_id).verifier_files

    def put(self, code: str, content: bytes) -> None:
        pipe = self.redis.pipeline()
        pipe.hset(self.key, code, content)
        pipe.hset(VERIFIER_OWNERS, code, self.connection)  # the latest upload of a code serves it
        pipe.execute()

    def sizes(self) -> dict[str, int]:
        """Code -> bytes of each file this connection uploaded."""
        codes = sorted(c.decode() for c in self.redis.hkeys(self.key))
        pipe = self.redis.pipeline(transaction=False)
        for code in codes:
            pipe.hstrlen(self.key, code)
        return dict(zip(codes, pipe.execute(), strict=True))

    def remove(self, code: str) -> bool:
        removed = bool(self.redis.hdel(self.key, code))
        if self.redis.hget(VERIFIER_OWNERS, code) == self.connection.encode():
            self.redis.hdel(VERIFIER_OWNERS, code)
        return removed

    def remove_all(self) -> None:
        for code in self.sizes():
            self.remove(code)


def served(redis: Redis, code: str) -> bytes | None:
    """The uploaded file for `code`, whichever connection uploaded it."""
    owner = redis.hget(VERIFIER_OWNERS, code)
    return redis.hget(Keys(owner.decode()).verifier_files, code) if owner else None
