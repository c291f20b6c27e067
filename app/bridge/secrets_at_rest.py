"""Secrets the bridge keeps in Redis (tokens, connection credentials) are sealed with Fernet.

Anyone who reads Redis (a backup, a replica, a shared host) must not get a working Zalo
token. `ENCRYPTION_KEY` holds comma-separated Fernet keys: the first seals, every one
unseals, so a key is rotated by putting the new one first and dropping the old one once
everything has been rewritten. Unset, one key is derived from `SECRET_KEY`, the same in
every process of a deployment.

Values written before sealing existed are clear text; they are still read (a Fernet token
always starts with `gAAAAA`, a Zalo token never does) and the caller rewrites them sealed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config.formats import parse_keys
from config.settings import Settings

FERNET_PREFIX = "gAAAAA"  # version byte 0x80, then a 64-bit timestamp whose high bytes stay 0 for ages
FERNET_MIN_BYTES = 1 + 8 + 16 + 16 + 32  # version, time, IV, one cipher block, MAC
DERIVE_INFO = b"zalo-freshchat-bridge secrets at rest v1"  # changing it orphans every sealed value


class UnreadableSecret(Exception):
    """A sealed value that none of the configured keys opens."""


def derive_key(secret_key: str) -> bytes:
    """The Fernet key used when ENCRYPTION_KEY is unset: HKDF-SHA256 of SECRET_KEY."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVE_INFO).derive(secret_key.encode())
    return base64.urlsafe_b64encode(raw)


class Sealer:
    """Seal with the first key, unseal with any."""

    def __init__(self, keys: list[bytes]):
        self._fernet = MultiFernet([Fernet(k) for k in keys])
        # Fernet's spec: a key is 16 bytes signing key then 16 bytes encryption key (base64url)
        self._signing_keys = [base64.urlsafe_b64decode(k)[:16] for k in keys]

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def unseal(self, value: str) -> str:
        """The clear text; a value stored before sealing existed comes back as it is."""
        if not is_sealed(value):
            return value
        try:
            return self._fernet.decrypt(value.encode()).decode()
        except InvalidToken:
            raise UnreadableSecret(
                "no key in ENCRYPTION_KEY (or derived from SECRET_KEY) opens this value; "
                "was the key changed without keeping the old one after it?"
            ) from None

    def opens(self, value: str) -> bool:
        """Whether some key would open the value, told without decrypting it: Fernet's MAC
        (HMAC-SHA256 with the key's signing half over all but the last 32 bytes) verifies.
        A clear value (stored before sealing) opens."""
        if not is_sealed(value):
            return True
        try:
            token = base64.urlsafe_b64decode(value.encode())
        except (ValueError, binascii.Error):
            return False
        body, mac = token[:-32], token[-32:]
        return len(token) >= FERNET_MIN_BYTES and any(
            hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), mac) for key in self._signing_keys
        )


def is_sealed(value: str) -> bool:
    return value.startswith(FERNET_PREFIX)


def sealer_for(settings: Settings) -> Sealer:
    """ENCRYPTION_KEY's keys, or the one derived from SECRET_KEY. With ENCRYPTION_KEY set, the
    derived key still unseals (last): values sealed before it was set stay readable, and
    whoever knows SECRET_KEY could derive that key anyway."""
    keys = parse_keys(settings.encryption_key) if settings.encryption_key else []
    if settings.secret_key:
        keys.append(derive_key(settings.secret_key))
    if not keys:
        raise ValueError("ENCRYPTION_KEY or SECRET_KEY must be set to seal secrets")
    return Sealer(keys)
