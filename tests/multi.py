"""Several connections for tests: a second OA of the default's Zalo app on the default's
FreshChat account, and an OA of another app on another account."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from app.bridge.secrets_at_rest import sealer_for
from app.connections.store import ConnectionStore
from app.integrations.freshchat.signature import sign as fc_sign
from app.integrations.zalo.signature import compute_mac
from sandbox.helpers import FC_API, FC_PUBLIC_PEM, ZALO_APP_ID, load_fixture, zalo_body

USER = "246845883529197922"
OA2_ID, OA2_SECRET = "388613280878800002", "oa2-secret-key-example"
HCM_APP, HCM_OA, HCM_SECRET = "999000111", "777000111", "hcm-oa-secret-example"
HCM_API = "https://hcm.freshchat.com/v2"
_HCM_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
HCM_PUBLIC_PEM = (
    _HCM_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)

OA2 = {
    "id": "oa2",
    "name": "Second OA",
    "enabled": True,
    "zalo": {
        "app_id": ZALO_APP_ID,
        "app_secret": "app-secret-example",
        "oa_id": OA2_ID,
        "oa_secret_key": OA2_SECRET,
        "access_token": "oa2-access",
        "refresh_token": "oa2-refresh",
    },
    "freshchat": {  # the default connection's account, so its key
        "api_url": FC_API,
        "api_key": "oa2-fc-key",
        "channel_id": "chan-oa2",
        "webhook_public_key": FC_PUBLIC_PEM,
    },
}
HCM = {
    "id": "hcm",
    "name": "Shop HCM",
    "enabled": True,
    "zalo": {
        "app_id": HCM_APP,
        "app_secret": "hcm-app-secret",
        "oa_id": HCM_OA,
        "oa_secret_key": HCM_SECRET,
        "access_token": "hcm-access",
        "refresh_token": "hcm-refresh",
    },
    "freshchat": {
        "api_url": HCM_API,
        "api_key": "hcm-fc-key",
        "channel_id": "chan-hcm",
        "webhook_public_key": HCM_PUBLIC_PEM,
    },
}


def store(redis, settings, *records: dict) -> None:
    for record in records:
        ConnectionStore(redis, settings, sealer_for(settings)).put(record)


def zalo_event(name: str, app_id: str = ZALO_APP_ID, oa_id: str | None = None, **changes) -> dict:
    """A fixture event of another app or OA (the OA's side rewritten, as Zalo would send it)."""
    event = dict(load_fixture("zalo", "webhooks", f"{name}.json"), app_id=app_id, **changes)
    if oa_id:
        side = "sender" if name.startswith("oa_send_") else "recipient"
        event[side] = dict(event[side], id=oa_id)
    return event


def post_zalo_as(client, event: dict, secret: str):
    raw = zalo_body(event)
    mac = compute_mac(event["app_id"], raw, str(event["timestamp"]), secret)
    return client.post("/webhooks/zalo", data=raw, headers={"X-ZEvent-Signature": mac})


def post_freshchat_to(client, path: str, event: dict, private_key=_HCM_KEY):
    raw = json.dumps(event, separators=(",", ":")).encode()
    return client.post(path, data=raw, headers={"X-Freshchat-Signature": fc_sign(raw, private_key)})
