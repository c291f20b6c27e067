"""TRUSTED_PROXIES: who the client is when Caddy, nginx or a load balancer stands in front.

The socket's peer is then the proxy, so every client would share one sign-in throttle and one
address in the logs: five wrong tokens from anyone would lock everyone out. The proxies say who
they saw in X-Forwarded-For, but any client can send that header too, so it is believed only
from a peer in TRUSTED_PROXIES, and only as far as the trusted hops go: walking the list from
the right (each proxy appends the address it saw), every trusted address is skipped and the
first untrusted one is the client. Anything left of it was written by the client and is never
read. X-Forwarded-Proto from a trusted peer gives the scheme (url_for, Secure cookies, HSTS).

Not werkzeug's ProxyFix: it believes a fixed number of hops from whoever connects, so a client
reaching the web process directly (or through a second path) would choose its own address.
Without TRUSTED_PROXIES this middleware is not installed and gunicorn believes no forwarding
header either (app/web/gunicorn_hooks.py): the socket's address is the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from config.formats import Network

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


class TrustedProxies:
    """WSGI middleware: REMOTE_ADDR and the scheme become those the nearest trusted proxy saw."""

    def __init__(self, app: WSGIApplication, networks: tuple[Network, ...]) -> None:
        self.app = app
        self.networks = networks

    def trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def client(self, peer: Address | None, forwarded_for: str) -> Address | None:
        """Walk X-Forwarded-For from the right while the hop before it is a trusted proxy."""
        client = peer
        for hop in reversed(forwarded_for.split(",")):
            if not self.trusted(client):
                break
            seen = _address(hop)
            if seen is None:
                break  # not an address: keep the last hop that can be believed
            client = seen
        return client

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        peer = _address(environ.get("REMOTE_ADDR", ""))
        if self.trusted(peer):
            environ["bridge.proxy_peer"] = environ["REMOTE_ADDR"]
            environ["REMOTE_ADDR"] = str(self.client(peer, environ.get("HTTP_X_FORWARDED_FOR", "")))
            proto = environ.get("HTTP_X_FORWARDED_PROTO", "").rpartition(",")[2].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
        return self.app(environ, start_response)
