"""Zalo OA webhook signature: mac = sha256_hex(app_id + raw_body + timestamp + oa_secret_key)."""

from __future__ import annotations

import hashlib
import hmac


def compute_mac(app_id: str, raw_body: bytes, timestamp: str, oa_secret_key: str) -> str:
    """Return the header value Zalo sends, `mac=<64 hex>` (plain SHA-256, not HMAC)."""
    material = app_id.encode() + raw_body + str(timestamp).encode() + oa_secret_key.encode()
    return "mac=" + hashlib.sha256(material).hexdigest()


def verify_signature(header: str | None, *, app_id: str, raw_body: bytes, timestamp: str, oa_secret_key: str) -> bool:
    """True when `header` (with or without the `mac=` prefix) matches, compared in constant time."""
    if not header or not app_id or not oa_secret_key:
        return False
    given = header.strip()
    given = given[4:] if given.lower().startswith("mac=") else given
    expected = compute_mac(app_id, raw_body, timestamp, oa_secret_key)[4:]
    return hmac.compare_digest(given.lower(), expected)
