"""Sandbox mode: with no partner credentials the bridge talks to the built-in simulators."""

from __future__ import annotations

from pathlib import Path

PARTNERS_URL = "http://127.0.0.1:9100"
DEFAULTS = {
    "zalo_app_id": "1000000000000000001",
    "zalo_oa_id": "2000000000000000002",
    "zalo_app_secret": "sandbox-app-secret",
    "zalo_oa_secret_key": "sandbox-oa-secret-key",
    "zalo_access_token": "sandbox-access-token-0",
    "zalo_refresh_token": "sandbox-refresh-token-0",
    "freshchat_api_key": "sandbox-freshchat-api-key",
    "freshchat_channel_id": "sandbox-zalo-topic",
    "media_fetch_allow_private": True,
    # The Zalo simulator's clock can be moved by days (to show reply windows), so its events may
    # carry times far from ours; real Zalo's never do.
    "replay_window_seconds": 6 * 86400,
    "replay_skew_seconds": 6 * 86400,
}


def apply_sandbox_defaults(values: dict, env: dict[str, str]) -> None:
    """Point every partner URL at the simulators and share their webhook signing key."""
    partners = env.get("SANDBOX_PARTNERS_URL", PARTNERS_URL).rstrip("/")
    for key, value in DEFAULTS.items():
        values.setdefault(key, value)
    values.setdefault("zalo_api_base_url", partners + "/zalo")
    values.setdefault("zalo_oauth_base_url", partners + "/zalo")
    values.setdefault("freshchat_api_url", partners + "/freshchat/v2")
    var = Path(values.get("media_dir", "./var/media")).parent
    values.setdefault("freshchat_webhook_public_key", sandbox_keypair(var)[1])


def sandbox_keypair(var_dir: Path) -> tuple[bytes, str]:
    """(private PEM, public PEM) the FreshChat simulator signs with; made once per checkout."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = var_dir / "sandbox-freshchat-key.pem"
    if not path.exists():
        var_dir.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.replace(path)
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path.read_bytes(), public.decode()
