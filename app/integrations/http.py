"""The one place that builds HTTP sessions for partner APIs."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

USER_AGENT = "zalo-freshchat-bridge/1.0 (+https://github.com/)"


ENV_CACHE_SIZE = 256  # origins; partner APIs are a handful, media CDNs a few more


class TimeoutSession(requests.Session):
    """A Session that never waits for ever (requests has no session-wide timeout) and reads
    the proxy environment once per origin instead of on every call."""

    def __init__(self, timeout: float):
        super().__init__()
        self.default_timeout = timeout
        self._env_settings: dict = {}

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, **kwargs)

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        """requests scans os.environ (HTTP(S)_PROXY, NO_PROXY, CA bundles) on every call: a
        quarter of a Zalo call's CPU in the worker profile (bench/). The environment does not
        change while we run, so the answer is remembered per origin."""
        if proxies or not self.trust_env:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert if not isinstance(cert, list) else tuple(cert))
        if key not in self._env_settings:
            if len(self._env_settings) >= ENV_CACHE_SIZE:
                self._env_settings.clear()
            self._env_settings[key] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        settings = self._env_settings[key]
        return {**settings, "proxies": dict(settings["proxies"])}  # callers may edit proxies


def build_session(timeout: float = 15.0, pool_size: int = 32) -> requests.Session:
    """A keep-alive session without transport retries: retries belong to the lane scheduler."""
    session = TimeoutSession(timeout)
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def maybe_sent(exc: requests.RequestException) -> bool:
    """Whether a failed request may still have reached the partner: a read timeout or a reset
    after connecting may hide an accepted send; a connection never made cannot."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, (requests.ReadTimeout, requests.exceptions.ChunkedEncodingError)):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        return not isinstance(getattr(reason, "reason", reason), NewConnectionError)
    return False
