"""The one place that builds HTTP sessions for partner APIs."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

USER_AGENT = "zalo-freshchat-bridge/1.0 (+https://github.com/)"


class TimeoutSession(requests.Session):
    """A Session that never waits for ever: requests has no session-wide timeout."""

    def __init__(self, timeout: float):
        super().__init__()
        self.default_timeout = timeout

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, **kwargs)


def build_session(timeout: float = 15.0, pool_size: int = 32) -> requests.Session:
    """A keep-alive session without transport retries: retries belong to the lane scheduler."""
    session = TimeoutSession(timeout)
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session
