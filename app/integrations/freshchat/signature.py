"""FreshChat webhook signature: base64 RSA PKCS#1 v1.5 / SHA-256 over the raw body."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from config.formats import load_public_key


def verify_signature(header: str | None, *, raw_body: bytes, public_key_pem: str) -> bool:
    """True when `header` is a valid signature of `raw_body` by the configured key."""
    if not header or not public_key_pem:
        return False
    try:
        signature = base64.b64decode(header.strip(), validate=True)
        load_public_key(public_key_pem).verify(signature, raw_body, padding.PKCS1v15(), hashes.SHA256())
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def sign(raw_body: bytes, private_key: rsa.RSAPrivateKey) -> str:
    """Produce the header value FreshChat would send (used by the simulator and tests)."""
    return base64.b64encode(private_key.sign(raw_body, padding.PKCS1v15(), hashes.SHA256())).decode()
