"""The sandbox's second connection: another simulated OA, bound to its own simulated FreshChat
account, so `make run` shows two connections at work. And a spare one, which no connection
uses: an OA of the same app that has not allowed it yet, with a FreshChat account of its own,
for an operator to add as a new connection in the console (whose form shows its values).
And two merging ones (MERGING): two more OAs of the same app on the first FreshChat account,
each in its own topic, with the option merge_users_by_app, and one person ("Lan Zalo") who
follows both: what she writes to either OA reaches one FreshChat user, in two conversations.

The partners process (`python -m sandbox`) adds the OAs and topics and mounts the accounts under
/freshchat2 and /freshchat3; the bridge's web process stores the second and merging connections
at start (`store_second`). Both take the values from here, and the accounts' signing keys from
the same files under the var dir.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config.sandbox import DEFAULTS, MERGING_SECRETS, SECOND_SECRETS, sandbox_keypair

log = logging.getLogger("sandbox")
SECOND_ID = "sandbox-2"
SECOND_NAME = "Sandbox OA 2"
SECOND_OA = {  # an OA of the same Zalo app as the default one: one app, two OAs
    "app_id": DEFAULTS["zalo_app_id"],
    "app_secret": DEFAULTS["zalo_app_secret"],
    "oa_id": "2000000000000000003",
    "oa_secret_key": SECOND_SECRETS["oa_secret_key"],
    "access_token": SECOND_SECRETS["access_token"],
    "refresh_token": SECOND_SECRETS["refresh_token"],
}
SECOND_PREFIX = "/freshchat2"
SECOND_ACCOUNT = {"api_key": SECOND_SECRETS["api_key"], "channel_id": "sandbox-zalo-topic-2"}
KEY_FILE = "sandbox-freshchat2-key.pem"
SPARE_NAME = "Sandbox OA 3"
SPARE_OA = {  # a third OA of the same app, which has not allowed it yet: no token pair
    "app_id": DEFAULTS["zalo_app_id"],
    "app_secret": DEFAULTS["zalo_app_secret"],
    "oa_id": "2000000000000000004",
    "oa_secret_key": "sandbox-oa3-secret-key",
}
SPARE_PREFIX = "/freshchat3"
SPARE_ACCOUNT = {"api_key": "sandbox-freshchat3-api-key", "channel_id": "sandbox-zalo-topic-3"}
SPARE_KEY_FILE = "sandbox-freshchat3-key.pem"


def _merging(short: str, name: str, oa_id: str, user_id: str) -> dict:
    """One merging connection: its OA (of the default's app), topic, and the person's id there."""
    return {
        "id": f"sandbox-{short}",
        "name": name,
        "oa": {"app_id": DEFAULTS["zalo_app_id"], "app_secret": DEFAULTS["zalo_app_secret"], "oa_id": oa_id}
        | MERGING_SECRETS[short],
        "channel_id": f"sandbox-zalo-topic-{short}",
        "person": {"user_id": user_id, "display_name": "Lan Zalo", "person": "lan"},
    }


# One app, one FreshChat account (the first), two OAs with the option: one person, one user.
MERGING = (
    _merging("hn", "Sandbox Shop HN", "2000000000000000005", "5100000000000000051"),
    _merging("hcm", "Sandbox Shop HCM", "2000000000000000006", "5100000000000000062"),
)


def keypair(var_dir: Path, name: str = KEY_FILE) -> tuple[bytes, str]:
    """(private PEM, public PEM) of an account (the second by default), made once per checkout.
    The web and partners processes start together: the first to link its key in place wins,
    the other reads that one, so both always hold the same key."""
    path = Path(var_dir) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tmp = path.with_name(f"{name}.{os.getpid()}.tmp")
        tmp.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path.read_bytes(), public.decode()


def second_freshchat(var_dir: Path):
    from sandbox.freshchat_sim import FreshchatSimulator

    return FreshchatSimulator(SECOND_ACCOUNT["channel_id"], SECOND_ACCOUNT["api_key"], private_key=keypair(var_dir)[0])


def add_second_oa(zalo):
    return zalo.add_oa(**SECOND_OA, name=SECOND_NAME)


def add_merging(zalo, freshchat) -> None:
    """The merging connections' OAs in the Zalo simulator, their topics in the first account."""
    for merging in MERGING:
        zalo.add_oa(**merging["oa"], name=merging["name"])
        freshchat.add_channel(merging["channel_id"], merging["name"])


def merging_records(partners_url: str, var_dir: Path) -> list[dict]:
    """The merging connections as ConnectionStore stores them: the first FreshChat account."""
    account = {
        "api_url": partners_url.rstrip("/") + "/freshchat/v2",
        "api_key": DEFAULTS["freshchat_api_key"],
        "webhook_public_key": sandbox_keypair(var_dir)[1],
    }
    return [
        {
            "id": m["id"],
            "name": m["name"],
            "enabled": True,
            "zalo": dict(m["oa"]),
            "freshchat": {**account, "channel_id": m["channel_id"]},
            "options": {"merge_users_by_app": True},
        }
        for m in MERGING
    ]


def spare_freshchat(var_dir: Path):
    from sandbox.freshchat_sim import FreshchatSimulator

    private = keypair(var_dir, SPARE_KEY_FILE)[0]
    return FreshchatSimulator(SPARE_ACCOUNT["channel_id"], SPARE_ACCOUNT["api_key"], private_key=private)


def add_spare_oa(zalo):
    return zalo.add_oa(**SPARE_OA, granted=False, name=SPARE_NAME)


def spare_values(partners_url: str, var_dir: Path) -> dict:
    """What the console's form shows to paste for the spare OA, by its field names. The public
    key under the `RSA PUBLIC KEY` label, as FreshChat's Webhooks page shows it."""
    public = keypair(var_dir, SPARE_KEY_FILE)[1]
    zalo = {f"zalo.{field}": value for field, value in SPARE_OA.items()}
    return {
        "name": SPARE_NAME,
        **zalo,
        "freshchat.api_url": partners_url.rstrip("/") + SPARE_PREFIX + "/v2",
        "freshchat.api_key": SPARE_ACCOUNT["api_key"],
        "freshchat.channel_id": SPARE_ACCOUNT["channel_id"],
        "freshchat.webhook_public_key": public.replace(" PUBLIC KEY-----", " RSA PUBLIC KEY-----"),
    }


def record(partners_url: str, var_dir: Path) -> dict:
    """The connection as ConnectionStore stores it (docs/interface.md §7.2)."""
    return {
        "id": SECOND_ID,
        "name": SECOND_NAME,
        "enabled": True,
        "zalo": dict(SECOND_OA),
        "freshchat": {
            "api_url": partners_url.rstrip("/") + SECOND_PREFIX + "/v2",
            "api_key": SECOND_ACCOUNT["api_key"],
            "channel_id": SECOND_ACCOUNT["channel_id"],
            "webhook_public_key": keypair(var_dir)[1],
        },
        "options": {},
    }


def simulated_record(conn_id: str, name: str, oa, freshchat: dict) -> dict:
    """A connection record for a simulated OA (a ZaloSimulator.add_oa handle) and FreshChat
    account (`api_url`, `api_key`, `channel_id`, `webhook_public_key`), as the admin API stores it."""
    zalo = {
        f: getattr(oa, f) for f in ("app_id", "app_secret", "oa_id", "oa_secret_key", "access_token", "refresh_token")
    }
    return {"id": conn_id, "name": name, "enabled": True, "zalo": zalo, "freshchat": dict(freshchat), "options": {}}


def partners_url(settings) -> str:
    """Where the simulators are, from the Zalo URL the sandbox settings point at them."""
    return settings.zalo_api_base_url.rstrip("/").removesuffix("/zalo")


def store_second(redis, settings) -> bool:
    """Store the second connection and the merging ones unless they are there. False when
    Redis is not reachable yet (the page tries again)."""
    from redis.exceptions import RedisError

    from app.bridge.secrets_at_rest import sealer_for
    from app.connections.store import ConnectionStore

    store = ConnectionStore(redis, settings, sealer_for(settings))
    try:
        var = Path(settings.media_dir).parent
        for wanted in (record(partners_url(settings), var), *merging_records(partners_url(settings), var)):
            if store.get(wanted["id"]) is None:
                store.put(wanted)
        return True
    except RedisError as exc:
        log.warning("sandbox: could not store the second connection yet (%s)", type(exc).__name__)
        return False
