"""Shared test helpers: fixtures on disk, signed webhook posts, settings."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.integrations.freshchat.signature import sign as fc_sign
from app.integrations.zalo.signature import compute_mac
from config.settings import Settings

FIXTURES = Path(__file__).parent.parent / "tests" / "fixtures"
ZALO_APP_ID = "360846524940903967"
ZALO_OA_ID = "388613280878808645"
ZALO_OA_SECRET = "oa-secret-key-example"
FC_API = "https://acme.freshchat.com/v2"
ZALO_API = "https://openapi.zalo.me"
ZALO_OAUTH = "https://oauth.zaloapp.com"
CHANNEL = "5f0c9e43-1b7e-4c59-9c6a-0a1c2b3d4e5f"
PUBLIC_BASE = "https://bridge.example.com"

# The smallest valid files of each type the relays sniff: a 1x1 PNG, a 2x3 GIF, a PDF.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000050001a5f645400000000049454e44ae426082"
)
GIF = (
    b"GIF89a\x02\x00\x03\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x00\x00\x00\x00\x00,"
    b"\x00\x00\x00\x00\x02\x00\x03\x00\x00\x02\x02D\x01\x00;"
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FC_PRIVATE_KEY = _KEY
FC_PUBLIC_PEM = (
    _KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
)
FIXTURE_AGE_SECONDS = 30 * 365 * 86400


def make_settings(redis_url: str = "redis://127.0.0.1:6379/0", **overrides) -> Settings:
    values = dict(
        redis_url=redis_url,
        public_base_url=PUBLIC_BASE,
        secret_key="test-secret-key-0123456789",
        zalo_app_id=ZALO_APP_ID,
        zalo_app_secret="app-secret-example",
        zalo_oa_id=ZALO_OA_ID,
        zalo_oa_secret_key=ZALO_OA_SECRET,
        zalo_access_token="access-0",
        zalo_refresh_token="refresh-0",
        zalo_api_base_url=ZALO_API,
        zalo_oauth_base_url=ZALO_OAUTH,
        freshchat_api_url=FC_API,
        freshchat_api_key="fc-api-key-example",
        freshchat_channel_id=CHANNEL,
        freshchat_webhook_public_key=FC_PUBLIC_PEM,
        log_format="text",
        retry_base_seconds=0.01,
        retry_max_seconds=0.05,
        # The fixtures keep their real, years-old times; tests of the window set their own.
        replay_window_seconds=FIXTURE_AGE_SECONDS,
    )
    values.update(overrides)
    return Settings(**values)


def load_fixture(*parts: str) -> dict:
    return json.loads((FIXTURES.joinpath(*parts)).read_text())


def zalo_body(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def zalo_headers(raw: bytes, event: dict, secret: str = ZALO_OA_SECRET) -> dict:
    mac = compute_mac(ZALO_APP_ID, raw, str(event["timestamp"]), secret)
    return {"X-ZEvent-Signature": mac, "Content-Type": "application/json"}


def post_zalo(client, event: dict, **kw):
    raw = zalo_body(event)
    return client.post("/webhooks/zalo", data=raw, headers=zalo_headers(raw, event), **kw)


def fc_headers(raw: bytes) -> dict:
    return {
        "X-Freshchat-Signature": fc_sign(raw, FC_PRIVATE_KEY),
        "Content-Type": "application/json",
        "X-Freshchat-Payload-Version": "2022",
        "X-Retry-Count": "0",
    }


def post_freshchat(client, event: dict):
    raw = json.dumps(event, separators=(",", ":")).encode()
    return client.post("/webhooks/freshchat", data=raw, headers=fc_headers(raw))


def partners_answer_probes(mock) -> None:
    """Both partners are up: the worker's circuit breakers probe them when an item fails."""
    mock.get(f"{ZALO_API}/v2.0/oa/getoa", json=load_fixture("zalo", "answers", "getoa.json"))
    mock.get(f"{FC_API}/channels", json=load_fixture("freshchat", "answers", "channels.json"))


def redis_dump(redis) -> list[bytes]:
    """Every key name, field, member and value in Redis: where a leaked secret would show."""
    found = []
    for key in redis.scan_iter():
        kind = redis.type(key).decode()
        found.append(key)
        if kind == "string":
            found.append(redis.get(key))
        elif kind == "hash":
            found += [item for pair in redis.hgetall(key).items() for item in pair]
        elif kind == "list":
            found += redis.lrange(key, 0, -1)
        elif kind == "set":
            found += list(redis.smembers(key))
        elif kind == "zset":
            found += redis.zrange(key, 0, -1)
        elif kind == "stream":
            found += [item for _, entry in redis.xrange(key) for pair in entry.items() for item in pair]
    return found


def clear_in_redis(redis, *secrets: str) -> list[bytes]:
    """The stored items that contain one of `secrets` in clear (empty: none leaked)."""
    return [item for item in redis_dump(redis) if any(s.encode() in item for s in secrets)]
