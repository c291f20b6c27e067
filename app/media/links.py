"""Signed, never-expiring media links: the signature is the only access check."""

from __future__ import annotations

from itsdangerous import BadData, URLSafeSerializer

from config.settings import Settings

SALT = "media-link"


def _serializer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=SALT)


def sign_key(secret: str, key: str) -> str:
    return _serializer(secret).dumps(key)


def unsign_key(secret: str, signed: str) -> str | None:
    """The key, or None for anything forged, truncated or not a key at all."""
    try:
        key = _serializer(secret).loads(signed)
    except (BadData, UnicodeError, ValueError):
        return None
    return key if isinstance(key, str) else None


def media_url(settings: Settings, key: str) -> str:
    return f"{settings.public_base_url.rstrip('/')}/media/{sign_key(settings.secret_key, key)}"
