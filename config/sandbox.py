"""Sandbox mode: with no partner credentials the bridge talks to the built-in simulators."""

from __future__ import annotations

import functools
import ipaddress
import os
from pathlib import Path
from urllib.parse import urlparse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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
    # The page shows the survey: resolve a conversation, the phone gets the rating question, a
    # digit typed back reaches the inbox as the note "rated N/5" (README, sandbox section).
    "satisfaction_survey": True,
    # The Zalo simulator's clock can be moved by days (to show reply windows), so its events may
    # carry times far from ours; real Zalo's never do.
    "replay_window_seconds": 6 * 86400,
    "replay_skew_seconds": 6 * 86400,
}


# The second simulated OA and FreshChat account (sandbox/connections.py).
SECOND_SECRETS = {
    "oa_secret_key": "sandbox-oa2-secret-key",
    "access_token": "sandbox2-access-token-0",
    "refresh_token": "sandbox2-refresh-token-0",
    "api_key": "sandbox-freshchat2-api-key",
}
# The two OAs whose connections merge one person's FreshChat user (sandbox/connections.py).
MERGING_SECRETS = {
    "hn": {
        "oa_secret_key": "sandbox-oa-hn-secret-key",
        "access_token": "sandbox-hn-access-token-0",
        "refresh_token": "sandbox-hn-refresh-token-0",
    },
    "hcm": {
        "oa_secret_key": "sandbox-oa-hcm-secret-key",
        "access_token": "sandbox-hcm-access-token-0",
        "refresh_token": "sandbox-hcm-refresh-token-0",
    },
}
# Published in this repository, so they prove nothing: never accepted outside sandbox mode
# (config/settings.py refuses them at start, app/web/webhooks/zalo.py on a stored connection).
FIXED_SECRETS = frozenset(
    {DEFAULTS[k] for k in ("zalo_app_secret", "zalo_oa_secret_key", "zalo_access_token", "zalo_refresh_token")}
    | {DEFAULTS["freshchat_api_key"], *SECOND_SECRETS.values()}
    | {secret for oa in MERGING_SECRETS.values() for secret in oa.values()}
)
# The sandbox page, its API and media proxy, and the simulators answer only this machine's
# own clients, unless this variable opens them on purpose (docs/security.md, "Sandbox mode is
# not a door").
ALLOW_REMOTE = "SANDBOX_ALLOW_REMOTE"
FORWARDED = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")
REFUSED = f"the sandbox answers this machine only (set {ALLOW_REMOTE}=1 to open it)".encode()


@functools.lru_cache(maxsize=256)  # asked on every Zalo webhook that carries a sandbox key
def simulated(url: str) -> bool:
    """Whether a partner URL is on this machine (the simulators: sandbox mode, tests, benchmarks)."""
    host = urlparse(url).hostname or ""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def published_secret(secret: str, zalo_api_base_url: str) -> bool:
    """A fixed sandbox secret in front of a Zalo that is not this machine's simulator: anyone
    can sign with it, so it proves nothing and is refused."""
    return secret in FIXED_SECRETS and not simulated(zalo_api_base_url)


def remote_allowed(env=None) -> bool:
    return (os.environ if env is None else env).get(ALLOW_REMOTE, "").strip().lower() in ("1", "true", "yes", "on")


def is_local(environ: dict) -> bool:
    """A client on this machine: a loopback address, and no proxy or tunnel in between (one on
    this machine connects from loopback too, on behalf of anyone who has its address)."""
    if any(environ.get(h) for h in FORWARDED):
        return False
    try:
        return ipaddress.ip_address(environ.get("REMOTE_ADDR") or "").is_loopback
    except ValueError:
        return False


def local_only(app, env=None):
    """WSGI middleware: 403 for a client that is not local (`app` unchanged when allowed)."""
    if remote_allowed(env):
        return app

    def guarded(environ, start_response):
        if is_local(environ):
            return app(environ, start_response)
        start_response("403 Forbidden", [("Content-Type", "text/plain"), ("Content-Length", str(len(REFUSED)))])
        return [REFUSED]

    return guarded


def apply_sandbox_defaults(values: dict, env: dict[str, str]) -> None:
    """Point every partner URL at the simulators and share their webhook signing key."""
    partners = env.get("SANDBOX_PARTNERS_URL", PARTNERS_URL).rstrip("/")
    for key, value in DEFAULTS.items():
        values.setdefault(key, value)
    values.setdefault("zalo_api_base_url", partners + "/zalo")
    values.setdefault("zalo_oauth_base_url", partners + "/zalo")
    values.setdefault("zalo_business_api_base_url", partners + "/zalo/business")
    values.setdefault("freshchat_api_url", partners + "/freshchat/v2")
    var = Path(values.get("media_dir", "./var/media")).parent
    values.setdefault("freshchat_webhook_public_key", sandbox_keypair(var)[1])


def sandbox_keypair(var_dir: Path) -> tuple[bytes, str]:
    """(private PEM, public PEM) the FreshChat simulator signs with; made once per checkout."""
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
