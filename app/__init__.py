"""The Flask application factory: `gunicorn 'app:create_app()'`."""

from __future__ import annotations

import logging
import secrets
import time

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from app.logs import configure_logging, context_id

MAX_BODY = 1024 * 1024  # docs/interface.md §3: 413 above 1 MiB
# Answers that hold secrets or one-time state: no proxy or browser may keep a copy.
NO_STORE_PREFIXES = ("/admin", "/api", "/oauth")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # media links and OAuth URLs carry signed ids
    "Content-Security-Policy": "frame-ancestors 'none'",  # no page of ours inside another site's frame
    "X-Frame-Options": "DENY",  # the same, for browsers without CSP level 2
}
HSTS = "max-age=31536000"


def _note_start(app) -> None:
    """Tell the workers a web process started: while none answered, Zalo's retries may have run
    out, so they catch up from its history (workers/catchup.py)."""
    from redis.exceptions import RedisError

    from app.bridge.keys import WEB_STARTED

    try:
        app.extensions["redis"].set(WEB_STARTED, time.time())
    except RedisError:
        pass  # Redis away: webhooks answer 503 and the workers catch up once it is back


def create_app(settings=None, cli: bool = False) -> Flask:
    """Build the web app; reads the environment only when no Settings are given. `cli`: for a
    `bin/bridge` command, whose output the server's start-up warnings would only precede."""
    if settings is None:
        settings = _settings_or_exit()
    configure_logging(settings)
    from app.startup import warn_about_settings

    if not cli:
        warn_about_settings(settings)
    app = Flask(__name__)
    # Media links are signed with settings.secret_key; the console's session and CSRF tokens
    # with a key derived from it, and only console requests open a session (app/console/).
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY, CLI=cli)
    from app import extensions
    from app.console import init_console
    from app.metrics import init_metrics

    extensions.init_app(app, settings)
    _note_start(app)
    init_metrics(app)
    init_console(app, settings)
    _register_blueprints(app, settings)
    _register_hooks(app)
    _register_headers(app, settings.public_base_url.startswith("https://"))
    _trust_proxies(app, settings.trusted_proxies)
    return app


def _trust_proxies(app: Flask, trusted: str) -> None:
    """Behind TRUSTED_PROXIES, the client and scheme are those the nearest trusted proxy saw."""
    from app.proxies import TrustedProxies
    from config.formats import parse_networks

    if trusted:
        app.wsgi_app = TrustedProxies(app.wsgi_app, parse_networks(trusted))


def _settings_or_exit():
    import sys

    from config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def _register_blueprints(app: Flask, settings) -> None:
    from app import admin, api, console, health, oauth
    from app.media.routes import bp as media_bp
    from app.webhooks import freshchat, zalo

    for bp in (health.bp, zalo.bp, freshchat.bp, media_bp, oauth.bp, admin.bp, console.bp, api.bp):
        app.register_blueprint(bp)
    if settings.sandbox:
        from sandbox.routes import register_sandbox

        register_sandbox(app, settings)


def _register_headers(app: Flask, public_https: bool) -> None:
    @app.after_request
    def _headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if public_https or request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if request.path.startswith(NO_STORE_PREFIXES):
            response.headers["Cache-Control"] = "no-store"
        return response


def _register_hooks(app: Flask) -> None:
    log = logging.getLogger("web")

    @app.before_request
    def _request_id():
        context_id.set(request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(6))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return jsonify({"error": exc.description if exc.code != 404 else "not found"}), exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("web.unhandled_error")
        return jsonify({"error": "internal error"}), 500
