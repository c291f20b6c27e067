"""FreshChat webhook signature: base64 RSA PKCS#1 v1.5 / SHA-256 over the raw body."""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_PEM_LINE = re.compile(r"-----(BEGIN|END)[A-Z ]*-----")


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
