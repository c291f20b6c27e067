"""Zalo's domain-verification files, uploaded per connection and served at the domain root.

Zalo proves a domain by fetching `/zalo_verifier<code>.html` and reading its
`zalo-platform-site-verification` meta tag; the downloaded file's exact bytes are served (its
markup varies). It is HTML served on the bridge's origin, so only the page's shape is accepted
(`is_verification_page`: a few plain tags, the meta tags, text; no script, no other attribute),
and it is served with a CSP that runs nothing (`HEADERS`). The domain is the bridge's, not a
connection's, so one index says which connection uploaded each code; the first connection to
upload a code owns it, and no other can replace its file (it goes when that connection is removed).
An operator uploads, lists and removes a connection's files through `VerificationUploads`.
"""

from __future__ import annotations

import logging
import re

from redis import Redis

from app.bridge.keys import VERIFIER_OWNERS, Keys
from app.bridge.replies import text
from app.connections.problem import Problem
from app.connections.store import Connections
from app.logs import audit
from app.media.types import CSP
from config.settings import Settings

log = logging.getLogger("connections.admin")

NAME = re.compile(r"^zalo_verifier([A-Za-z0-9_-]{1,64})\.html$")
MAX_BYTES = 16 * 1024
HEADERS = {"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": CSP}
# The whole page is these pieces and nothing else: a doctype, plain tags without attributes,
# meta tags with quoted attributes, and text with no "<" at all.
ATTRIBUTE = r"""\s+([a-z-]+)\s*=\s*(?:"([^"<>]*)"|'([^'<>]*)')"""
PIECE = re.compile(
    rf"<!doctype\s+html\s*>|</?(?:html|head|body|title|div|p|span|br)\s*/?>|<meta((?:{ATTRIBUTE})*)\s*/?>|[^<]+",
    re.I,
)
META_ATTRIBUTES = {"property", "name", "content", "charset"}
VERIFIER_META = "zalo-platform-site-verification"
CODE = re.compile(r"[A-Za-z0-9_-]{1,128}")
# What people read in answers and on the command line (app/wording.py says them in Vietnamese).
TEXTS = {
    "bad_verifier_name": "Zalo's file name: zalo_verifier<code>.html (code: up to 64 letters, digits, _ or -)",
    "bad_verifier_size": "the file is empty or larger than 16 KiB",
    "no_verifier": "no verification file {name}",
    "bad_verifier_page": "not Zalo's verification page: only its meta tag and plain text, no script or other markup",
    "verifier_taken": "connection {other} already uploaded the file for this code",
}


class TakenCode(Exception):
    """Another connection uploaded the file for this code."""


def is_verification_page(content: bytes) -> bool:
    """True when `content` has the shape of Zalo's verification page and nothing that could run."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return False
    position, found = 0, False
    for piece in PIECE.finditer(text):
        if piece.start() != position:
            return False
        position = piece.end()
        if piece.group(1) is not None:
            meta = _meta_attributes(piece.group(1))
            if meta is None:
                return False
            found = found or _is_verifier_meta(meta)
    return found and position == len(text)


def _meta_attributes(source: str) -> dict[str, str] | None:
    pairs = [(m.group(1).lower(), m.group(2) or m.group(3) or "") for m in re.finditer(ATTRIBUTE, source, re.I)]
    names = [name for name, _ in pairs]
    if set(names) - META_ATTRIBUTES or len(names) != len(set(names)):
        return None
    return dict(pairs)


def _is_verifier_meta(meta: dict[str, str]) -> bool:
    said = meta.get("property", meta.get("name", "")).strip().lower()
    return said == VERIFIER_META and CODE.fullmatch(meta.get("content", "").strip()) is not None


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
        """Store this connection's file for `code`; TakenCode when another connection has it."""
        self.redis.hsetnx(VERIFIER_OWNERS, code, self.connection)  # the first upload owns the code
        owner = self.redis.hget(VERIFIER_OWNERS, code)
        if owner != self.connection.encode():
            raise TakenCode(code)
        self.redis.hset(self.key, code, content)

    def sizes(self) -> dict[str, int]:
        """Code -> bytes of each file this connection uploaded."""
        codes = sorted(text(c) for c in self.redis.hkeys(self.key))
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


def owner_of(redis: Redis, code: str) -> str | None:
    owner = redis.hget(VERIFIER_OWNERS, code)
    return text(owner) if owner else None


def served(redis: Redis, code: str) -> bytes | None:
    """The uploaded file for `code`, whichever connection uploaded it, if it has the page's shape
    (files uploaded before the shape was checked are checked here)."""
    owner = owner_of(redis, code)
    content = redis.hget(Keys(owner).verifier_files, code) if owner else None
    # bytes: the client does not decode replies (app/bridge/replies.py)
    return content if isinstance(content, bytes) and is_verification_page(content) else None


class VerificationUploads:
    """An operator's uploads of a connection's verification files (the API and the console)."""

    def __init__(self, redis: Redis, settings: Settings):
        self.redis = redis
        self.connections = Connections(redis, settings)
        self.base_url = settings.public_base_url

    def upload(self, connection_id: str, filename: str, content: bytes, client: str = "-") -> dict:
        """Store the file; a refused page or a code another connection owns leaves an audit
        line naming `client` (the uploader's address)."""
        self.connections.get(connection_id)
        code = code_of(filename)
        if code is None:
            raise Problem(400, "invalid verification file", {"file": TEXTS["bad_verifier_name"]})
        if not content or len(content) > MAX_BYTES:
            raise Problem(400, "invalid verification file", {"file": TEXTS["bad_verifier_size"]})
        if not is_verification_page(content):
            _refused(client, connection_id, filename, "not_the_page")
            raise Problem(400, "invalid verification file", {"file": TEXTS["bad_verifier_page"]})
        try:
            VerificationFiles(self.redis, connection_id).put(code, content)
        except TakenCode:
            other = owner_of(self.redis, code)
            _refused(client, connection_id, filename, "taken", owner=other)
            raise Problem(
                409, "invalid verification file", {"file": TEXTS["verifier_taken"].format(other=other)}
            ) from None
        log.info("connections.verification_uploaded", extra={"connection": connection_id, "file": filename})
        return self._shown(code, len(content))

    def files(self, connection_id: str) -> list[dict]:
        self.connections.get(connection_id)
        return [self._shown(code, size) for code, size in VerificationFiles(self.redis, connection_id).sizes().items()]

    def remove(self, connection_id: str, filename: str) -> None:
        self.connections.get(connection_id)
        code = code_of(filename)
        if code is None or not VerificationFiles(self.redis, connection_id).remove(code):
            raise Problem(404, TEXTS["no_verifier"].format(name=filename))
        log.info("connections.verification_removed", extra={"connection": connection_id, "file": filename})

    def _shown(self, code: str, size: int) -> dict:
        name = filename_of(code)
        return {"filename": name, "url": f"{self.base_url}/{name}", "bytes": size}


def _refused(client: str, connection_id: str, filename: str, reason: str, **fields) -> None:
    audit("verification.refused", client=client, connection=connection_id, file=filename, reason=reason, **fields)
