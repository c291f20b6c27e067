"""Every route of the web process, registered in one place (`register`)."""

from __future__ import annotations

from flask import Flask

from app.web import api, console, health, legacy_admin, media, oauth
from app.web.webhooks import freshchat, zalo
from app.web.webhooks.common import MAX_BODY
from config.settings import Settings

__all__ = ["MAX_BODY", "register"]

BLUEPRINTS = (health.bp, zalo.bp, freshchat.bp, media.bp, oauth.bp, legacy_admin.bp, console.bp, api.bp)


def register(app: Flask, settings: Settings) -> None:
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    if settings.sandbox:
        # dev only, and the one place the product names sandbox/: its routes exist in sandbox mode only
        from sandbox.routes import register_sandbox

        register_sandbox(app, settings)
