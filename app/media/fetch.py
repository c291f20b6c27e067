"""Download partner media safely: public addresses only, hand-checked redirects, a size cap."""

from __future__ import annotations

import ipaddress
import mimetypes
import re
import socket
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urljoin, urlsplit

import filetype
import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy

from app.media.types import FROM_BYTES_ONLY, OCTET_STREAM, known_type

MAX_HOPS = 5
REDIRECTS = {301, 302, 303, 307, 308}
CHUNK = 64 * 1024
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}
BLOCKED_FLAGS = ("is_loopback", "is_private", "is_link_local", "is_reserved", "is_multicast", "is_unspecified")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAME_MAX = 200


@dataclass(frozen=True)
class Downloaded:
    data: bytes
    content_type: str
    filename: str


class MediaFetchError(Exception):
    """The media could not be copied; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class MediaTooLarge(MediaFetchError):
    pass


class BlockedAddress(MediaFetchError):
    pass


def download(
    session: requests.Session,
    url: str,
    *,
    max_bytes: int,
    allow_private: bool,
    timeout: float = 15,
    filename_hint: str | None = None,
) -> Downloaded:
    """The body of `url` with its sniffed type and a display filename; MediaFetchError if not."""
    try:
        response, final_url = _follow(session, url, allow_private, timeout)
        with response:
            data = _read_capped(response, max_bytes)
    except requests.RequestException as exc:
        # `from None`: requests' messages and tracebacks carry the full URL, tokens included.
        raise MediaFetchError(f"{type(exc).__name__} fetching {redact(url)}") from None
    name = pick_filename(filename_hint, response.headers.get("Content-Disposition"), final_url)
    content_type = sniff(data, response.headers.get("Content-Type"), name)
    return Downloaded(data, content_type, with_extension(name, content_type))


def redact(url: str) -> str:
    """scheme://host/path: CDN links carry access tokens in the query string."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{parts.path}"


class PinnedAdapter(HTTPAdapter):
    """Connects to the one address that was checked, whatever DNS answers by then: a name that
    resolved to a public address for the check and to a private one for the request (DNS
    rebinding) still reaches the public one. The URL's host stays the Host header, the TLS
    server name (SNI) and the name the certificate is verified against."""

    def __init__(self, address: str):
        super().__init__(max_retries=0)
        self.address = address

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        if select_proxy(request.url, proxies):
            return super().get_connection_with_tls_context(request, verify, proxies, cert)  # the proxy resolves
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        hostname = host_params["host"]
        if host_params["scheme"] == "https":
            pool_kwargs = {**pool_kwargs, "server_hostname": hostname, "assert_hostname": hostname}
        return self.poolmanager.connection_from_host(**{**host_params, "host": self.address}, pool_kwargs=pool_kwargs)

    def add_headers(self, request, **kwargs):
        request.headers.setdefault("Host", urlsplit(request.url).netloc.rpartition("@")[2])


def _get(session: requests.Session, url: str, address: str | None, timeout: float):
    """One hop, to `address` when it was checked (a session of its own: the shared one keeps
    its pools for partner APIs)."""
    if address is None:
        return session.get(url, stream=True, allow_redirects=False, timeout=timeout)
    pinned = requests.Session()
    pinned.headers.update(session.headers)
    adapter = PinnedAdapter(address)
    pinned.mount("http://", adapter)
    pinned.mount("https://", adapter)
    return pinned.get(url, stream=True, allow_redirects=False, timeout=timeout)


def _follow(session, url: str, allow_private: bool, timeout: float):
    """The first non-redirect response and its URL, every hop checked before it is requested
    and sent to the address that was checked."""
    for _ in range(MAX_HOPS + 1):
        address = check_url(url, allow_private)
        response = _get(session, url, address, timeout)
        location = response.headers.get("Location")
        if response.status_code not in REDIRECTS or not location:
            return _require_success(response, url), url
        response.close()
        url = urljoin(url, location)
    raise MediaFetchError(f"more than {MAX_HOPS} redirects from {redact(url)}")


def _require_success(response, url: str):
    if 200 <= response.status_code < 300:
        return response
    response.close()
    raise MediaFetchError(f"HTTP {response.status_code} from {redact(url)}", status=response.status_code)


def check_url(url: str, allow_private: bool) -> str | None:
    """Raise unless `url` is http(s) and (unless allowed) every address of its host is public;
    the address to connect to (None when private addresses are allowed: nothing to pin)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaFetchError(f"refusing a {parts.scheme or 'relative'} URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise MediaFetchError(f"bad port in {redact(url)}") from None
    return None if allow_private else _check_host(parts.hostname, port)


def _check_host(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise MediaFetchError(f"cannot resolve {host}") from None
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])  # an IPv4/IPv6 sockaddr: address first
        if is_blocked(address):
            raise BlockedAddress(f"{host} resolves to {address}, which is not a public address")
    return str(infos[0][4][0])


def is_blocked(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    address = _embedded_ipv4(address) or address
    return not address.is_global or any(getattr(address, flag) for flag in BLOCKED_FLAGS)


def _embedded_ipv4(address):
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), so ::ffff:10.0.0.1 is private."""
    if address.version == 4:
        return None
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.ipv4_mapped or address.sixtofour


def _read_capped(response, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise MediaTooLarge(f"{declared} bytes is over the {max_bytes}-byte limit")
    chunks, total = [], 0
    for chunk in response.iter_content(CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise MediaTooLarge(f"more than the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def sniff(data: bytes, declared: str | None = None, filename: str | None = None) -> str:
    """What the bytes are; else what the server said; else the name's extension. Only a type the
    bridge knows (app/media/types.py), and a picture or PDF only from its bytes; anything else is
    application/octet-stream, whatever a partner's header says."""
    kind = filetype.guess(data) if data else None
    if kind is not None:
        return known_type(kind.mime) or OCTET_STREAM
    guessed = mimetypes.guess_type(filename)[0] if filename else None
    for candidate in (declared, guessed):
        found = known_type(candidate)
        if found and found not in FROM_BYTES_ONLY:
            return found
    return OCTET_STREAM


def pick_filename(hint: str | None, disposition: str | None, url: str) -> str:
    for candidate in (hint, disposition_filename(disposition), _url_basename(url)):
        name = clean_filename(candidate or "")
        if name:
            return name
    return "file"


def disposition_filename(header: str | None) -> str | None:
    """filename* (RFC 5987) over filename, as RFC 6266 asks."""
    if not header:
        return None
    extended = re.search(r"filename\*\s*=\s*([\w-]+)'[^']*'([^;\s]+)", header, re.I)
    if extended:
        return unquote(extended.group(2), encoding=extended.group(1), errors="replace")
    plain = re.search(r'filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', header, re.I)
    if not plain:
        return None
    return _utf8_from_latin1(re.sub(r"\\(.)", r"\1", plain.group(1) or plain.group(2)))


def _utf8_from_latin1(value: str) -> str:
    # http.client decodes headers as Latin-1; CDNs often send raw UTF-8 (Vietnamese names).
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _url_basename(url: str) -> str:
    return unquote(PurePosixPath(urlsplit(url).path).name, errors="replace")


def clean_filename(name: str) -> str:
    """A display name only (never a path): last segment, no control characters, NFC, bounded."""
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in unicodedata.normalize("NFC", name) if c.isprintable()).strip()
    if name in (".", ".."):
        return ""
    if len(name) > NAME_MAX:
        suffix = PurePosixPath(name).suffix
        suffix = suffix if len(suffix) <= 16 else ""
        name = name[: NAME_MAX - len(suffix)] + suffix
    return name


def with_extension(name: str, content_type: str) -> str:
    """Add the type's extension unless the name already has it or another known one."""
    extension = _extension_for(content_type)
    suffix = PurePosixPath(name).suffix.lower()
    if not extension or suffix == extension or mimetypes.guess_type(name)[0]:
        return name
    return name + extension


def _extension_for(content_type: str) -> str | None:
    if content_type in GENERIC_TYPES:
        return None
    known = filetype.get_type(mime=content_type)
    return f".{known.extension}" if known else mimetypes.guess_extension(content_type)
