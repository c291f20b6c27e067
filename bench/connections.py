"""Three connections for the benchmarks, set up as tests/e2e/test_connections.py does: `default`
(the environment's OA of app B, FreshChat account 1), `b2` (a second OA of app B, account 2)
and `a1` (the OA of another app A, account 1 in another topic). `b2` and `a1` are stored with
ConnectionStore before the bridge starts, sealed with the bridge's own key, as
POST /api/connections would store them."""

from __future__ import annotations

from app.bridge.secrets_at_rest import sealer_for
from app.connections.store import ConnectionStore
from config.settings import load_settings
from sandbox.connections import simulated_record

IDS = ("default", "b2", "a1")
APP_A, APP_A_SECRET = "5000000000000000005", "app-a-secret"
OAS = {
    "b2": {"oa_id": "2000000000000000222", "oa_secret_key": "b2-oa-secret-key"},
    "a1": {"oa_id": "6000000000000000006", "oa_secret_key": "a1-oa-secret-key", "app": APP_A},
}
TOPIC_A1, TOPIC_B2, FC2_KEY = "topic-a1", "topic-b2", "fc2-api-key"
FRESHCHAT2 = "/freshchat2"  # where the second FreshChat account is mounted


def add_oas(zalo) -> dict:
    """The three OAs in the Zalo simulator (after its reset): connection id -> OA handle."""
    oas = {"default": zalo}
    for conn_id, oa in OAS.items():
        app_id = oa.get("app", zalo.app_id)
        app_secret = APP_A_SECRET if app_id == APP_A else zalo.app_secret
        oas[conn_id] = zalo.add_oa(app_id, oa["oa_id"], oa["oa_secret_key"], app_secret)
    return oas


def of_user(index: int) -> str:
    """Which connection the index-th user (or lane) belongs to: round robin, so each user is
    one connection's and the load splits in thirds."""
    return IDS[index % len(IDS)]


def store(redis, bridge_env: dict, oas: dict, accounts: dict[str, tuple]) -> None:
    """Store `b2` and `a1`; `accounts` maps a connection id to (API URL, API key, topic,
    webhook public key PEM) of its FreshChat account."""
    settings = load_settings(bridge_env)
    connections = ConnectionStore(redis, settings, sealer_for(settings))
    for conn_id in OAS:
        oa = oas[conn_id]
        api_url, api_key, topic, public_pem = accounts[conn_id]
        freshchat = {"api_url": api_url, "api_key": api_key, "channel_id": topic, "webhook_public_key": public_pem}
        connections.put(simulated_record(conn_id, f"Bench {conn_id}", oa, freshchat))


def freshchat_hook(bridge_url: str, conn_id: str) -> str:
    """The webhook URL of a connection's FreshChat account. Account 1 (default and a1) has one
    URL, the default's, and the bridge routes a1's events by conversation owner."""
    return bridge_url + ("/webhooks/freshchat/b2" if conn_id == "b2" else "/webhooks/freshchat")
