"""The shapes of values the settings accept, checked when the settings load and used again by the
code that reads them: proxies' networks (app/web/proxies.py), Fernet keys (app/bridge/
secrets_at_rest.py), FreshChat's public key (app/integrations/freshchat/signature.py).

Here, not beside their users, so that config/ imports nothing of app/ (docs/architecture.md).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from functools import lru_cache

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_PEM_LINE = re.compile(r"-----(BEGIN|END)[A-Z ]*-----")


def parse_networks(raw: str) -> tuple[Network, ...]:
    """The comma-separated addresses and CIDRs of TRUSTED_PROXIES; ValueError names a bad one."""
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item[:60]!r} is not an IP address or CIDR (e.g. 127.0.0.1 or 172.16.0.0/12)") from None
    return tuple(networks)


def parse_keys(raw: str) -> list[bytes]:
    """ENCRYPTION_KEY's items as Fernet keys. The error names the item by position only:
    the value is a secret."""
    items = [item.strip() for item in raw.split(",")]
    keys = []
    for position, item in enumerate(items, start=1):
        if not _is_fernet_key(item):
            raise ValueError(f"item {position} of {len(items)} is not a Fernet key (32 url-safe base64 bytes)")
        keys.append(item.encode())
    return keys


def _is_fernet_key(item: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(item.encode())) == 32 and len(item) == 44
    except (binascii.Error, ValueError):
        return False


@lru_cache(maxsize=8)
def load_public_key(raw: str) -> rsa.RSAPublicKey:
    """Load the key however FreshChat's admin page or an env file presents it.

    FreshChat labels an X.509 SubjectPublicKeyInfo as `RSA PUBLIC KEY` and env files often
    carry literal `\\n`, so we strip every label and whitespace and try SPKI, then PKCS#1.
    """
    body = _PEM_LINE.sub("", raw.replace("\\n", "\n"))
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("public key is not base64") from exc
    for loader in (serialization.load_der_public_key, _load_pkcs1):
        try:
            key = loader(der)
        except (ValueError, UnsupportedAlgorithm):
            continue
        if isinstance(key, rsa.RSAPublicKey):
            return key
    raise ValueError("not an RSA public key")


def _load_pkcs1(der: bytes):
    pem = b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END RSA PUBLIC KEY-----\n"
    return serialization.load_pem_public_key(pem)
