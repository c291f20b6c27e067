"""Sandbox wiring inside the bridge's web app (the simulators run as their own process)."""

from __future__ import annotations

import logging

log = logging.getLogger("sandbox")


def register_sandbox(app, settings) -> None:
    log.warning("SANDBOX MODE: no Zalo/FreshChat credentials set; partners are the built-in "
                "simulators at %s and %s", settings.zalo_api_base_url, settings.freshchat_api_url)
