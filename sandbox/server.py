"""Both partner simulators in one WSGI app: Zalo under /zalo, FreshChat under /freshchat.

More FreshChat accounts (each its own API key and signing key) mount under their own
prefixes, e.g. /freshchat2; more Zalo OAs are added to the one Zalo simulator (`add_oa`).

With the server at http://127.0.0.1:9100 the bridge's sandbox settings (config/sandbox.py) are
ZALO_API_BASE_URL = ZALO_OAUTH_BASE_URL = http://127.0.0.1:9100/zalo and
FRESHCHAT_API_URL = http://127.0.0.1:9100/freshchat/v2. `GET /` lists every URL.
"""

from __future__ import annotations

import dataclasses
import threading

from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import WSGIRequestHandler, make_server

from config.sandbox import DEFAULTS, local_only
from sandbox.freshchat_sim import FreshchatSimulator
from sandbox.zalo_sim import ZaloSimulator


def build_partners(settings=None, freshchat_accounts: dict | None = None):
    """(wsgi_app, zalo_sim, freshchat_sim) from a dict (or Settings) of the bridge's field names.

    `freshchat_accounts` maps a prefix (`/freshchat2`) to another FreshchatSimulator to mount.

    Missing values default to config/sandbox.py so the bridge in sandbox mode matches.
    Extra keys: `freshchat_private_key` (PEM or key object; the webhook signing key),
    `reopen_mode`, `public_url` (how the bridge reaches this server, for media links).
    """
    if dataclasses.is_dataclass(settings):
        settings = dataclasses.asdict(settings)
    s = {**DEFAULTS, **{k: v for k, v in (settings or {}).items() if v not in (None, "")}}
    zalo = ZaloSimulator(
        s["zalo_app_id"],
        s["zalo_oa_id"],
        s["zalo_oa_secret_key"],
        s["zalo_app_secret"],
        s["zalo_access_token"],
        s["zalo_refresh_token"],
        int(s.get("zalo_access_ttl", 90000)),
    )
    fc = FreshchatSimulator(
        s["freshchat_channel_id"],
        s["freshchat_api_key"],
        private_key=s.get("freshchat_private_key"),
        reopen_mode=s.get("reopen_mode", "classic"),
    )
    accounts = {"/freshchat": fc, **(freshchat_accounts or {})}
    if s.get("public_url"):
        set_public_url(s["public_url"], zalo, fc, accounts)
    mounts = {"/zalo": zalo.app, **{prefix: account.app for prefix, account in accounts.items()}}
    # Their state hands out tokens and their actions sign webhooks: this machine's clients only.
    app = local_only(DispatcherMiddleware(_index_app(zalo, accounts), mounts))
    return app, zalo, fc


def set_public_url(base: str, zalo: ZaloSimulator, fc: FreshchatSimulator, accounts: dict | None = None) -> None:
    """Tell the simulators their own address, for CDN and asset links they hand out."""
    base = base.rstrip("/")
    zalo.base_url = base + "/zalo"
    for prefix, account in {"/freshchat": fc, **(accounts or {})}.items():
        account.base_url = base + prefix


def _index_app(zalo: ZaloSimulator, accounts: dict) -> Flask:
    app = Flask("sandbox_partners")

    def account_view(fc: FreshchatSimulator) -> dict:
        return {
            "api_url": fc.base_url + "/v2",
            "channel_id": fc.channel_id,
            "public_key": fc.base_url + "/_sim/public_key",
            "state": fc.base_url + "/_sim/state",
        }

    @app.get("/")
    def index():
        oas = [{"app_id": oa.app_id, "oa_id": oa.oa_id} for oa in zalo.oas().values()]
        views = {prefix.strip("/"): account_view(fc) for prefix, fc in accounts.items()}
        return jsonify(
            {
                "zalo": {
                    "api_base_url": zalo.base_url,
                    "oauth_base_url": zalo.base_url,
                    "app_id": zalo.app_id,
                    "oa_id": zalo.oa_id,
                    "oas": oas,
                    "state": zalo.base_url + "/_sim/state",
                },
                **views,
            }
        )

    return app


class PartnerRequestHandler(WSGIRequestHandler):
    """Keeps headers with underscores, which werkzeug (and gunicorn) drop as spoofing risks:
    Zalo's API depends on them (`access_token`, `secret_key`)."""

    quiet = False
    # Zalo and FreshChat keep connections alive; so do the simulators, so the bridge's pooled
    # sessions (and a benchmark's CPU figures) behave as they do against the real APIs.
    protocol_version = "HTTP/1.1"

    def make_environ(self):
        environ = super().make_environ()
        for key, value in self.headers.items():
            if "_" in key:
                environ["HTTP_" + key.upper().replace("-", "_")] = value.replace("\r\n", "")
        return environ

    def log_request(self, *args, **kwargs):
        if not self.quiet:
            super().log_request(*args, **kwargs)


class QuietRequestHandler(PartnerRequestHandler):
    quiet = True  # tests and throughput runs do not want a log line per request


def serve(app, host: str, port: int, quiet: bool = False):
    """A threaded werkzeug server for `app` that keeps Zalo's underscore headers."""
    handler = QuietRequestHandler if quiet else PartnerRequestHandler
    return make_server(host, port, app, threaded=True, request_handler=handler)


def start_in_thread(
    port: int = 0, settings=None, host: str = "127.0.0.1", quiet: bool = True, freshchat_accounts: dict | None = None
):
    """Serve both simulators (and any more FreshChat accounts) from a daemon thread:
    (base_url, zalo_sim, fc_sim, stop)."""
    app, zalo, fc = build_partners(settings, freshchat_accounts)
    server = serve(app, host, port, quiet)
    base_url = f"http://{host}:{server.port}"
    set_public_url(base_url, zalo, fc, freshchat_accounts)
    thread = threading.Thread(target=server.serve_forever, name="sandbox-partners", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()

    return base_url, zalo, fc, stop
