"""The Flask application factory: `gunicorn 'app:create_app()'`."""

from __future__ import annotations

import logging
import secrets

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from app.logs import configure_logging, context_id

MAX_BODY = 1024 * 1024  # docs/interface.md §3: 413 above 1 MiB


def create_app(settings=None) -> Flask:
    """Build the web app; reads the environment only when no Settings are given."""
    if settings is None:
        settings = _settings_or_exit()
    configure_logging(settings)
    app = Flask(__name__)
    # Media links are signed with settings.secret_key; the console's session and CSRF tokens
    # with a key derived from it, and only console requests open a session (app/console/).
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY)
    from app import extensions
    from app.console import init_console

    extensions.init_app(app, settings)
    init_console(app, settings)
    _register_blueprints(app, settings)
    _register_hooks(app)
    return app


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
