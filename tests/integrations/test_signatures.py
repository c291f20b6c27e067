"""Signature verifiers are pure functions: vectors, tampering, header and key variants."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app.integrations.freshchat.signature import sign
from app.integrations.freshchat.signature import verify_signature as fc_verify
from app.integrations.zalo.signature import compute_mac
from app.integrations.zalo.signature import verify_signature as zalo_verify
from config.formats import load_public_key
from sandbox.helpers import FC_PRIVATE_KEY, FC_PUBLIC_PEM

RAW = (
    b'{"app_id":"360846524940903967","sender":{"id":"246845883529197922"},"user_id_by_app":'
    b'"552177279717587730","recipient":{"id":"388613280878808645"},"event_name":"user_send_text",'
    b'"message":{"text":"message","msg_id":"96d3cdf3af150460909"},"timestamp":"1543908534740"}'
)
MAC = "mac=f2861c40729dd9398cea27acbb30d6bf4869c7a57b9038202a9d0f44a80fe214"
ZALO = dict(app_id="360846524940903967", raw_body=RAW, timestamp="1543908534740", oa_secret_key="oa-secret-key-example")


def test_zalo_reference_vector():
    assert compute_mac("360846524940903967", RAW, "1543908534740", "oa-secret-key-example") == MAC
    assert zalo_verify(MAC, **ZALO) and zalo_verify(MAC[4:], **ZALO) and zalo_verify(" " + MAC.upper(), **ZALO)


@pytest.mark.parametrize(
    "change",
    [
        {"raw_body": RAW + b" "},
        {"timestamp": "1543908534741"},
        {"oa_secret_key": "other"},
        {"app_id": "1"},
        {"oa_secret_key": ""},
    ],
)
def test_zalo_any_changed_input_fails(change):
    assert not zalo_verify(MAC, **{**ZALO, **change})


@pytest.mark.parametrize("header", [None, "", "mac=", "sha256=" + MAC[4:]])
def test_zalo_malformed_headers_fail(header):
    assert not zalo_verify(header, **ZALO)


def test_freshchat_signature_round_trip_and_tamper():
    header = sign(b'{"a":1}', FC_PRIVATE_KEY)
    assert fc_verify(header, raw_body=b'{"a":1}', public_key_pem=FC_PUBLIC_PEM)
    assert not fc_verify(header, raw_body=b'{"a":2}', public_key_pem=FC_PUBLIC_PEM)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not fc_verify(sign(b'{"a":1}', other), raw_body=b'{"a":1}', public_key_pem=FC_PUBLIC_PEM)


def test_freshchat_key_with_rsa_label_and_escaped_newlines_loads():
    body = "".join(FC_PUBLIC_PEM.strip().splitlines()[1:-1])
    mislabeled = "-----BEGIN RSA PUBLIC KEY-----\\n" + body + "\\n-----END RSA PUBLIC KEY-----"
    assert load_public_key(mislabeled).public_numbers() == load_public_key(FC_PUBLIC_PEM).public_numbers()


@pytest.mark.parametrize("key", ["", "not a key", base64.b64encode(b"junk").decode()])
def test_freshchat_bad_keys_never_verify(key):
    assert not fc_verify(sign(b"x", FC_PRIVATE_KEY), raw_body=b"x", public_key_pem=key)
