"""The Flask application factory: `gunicorn 'app:create_app()'`."""

from __future__ import annotations

import logging
import secrets
import sys
import time

from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from app.bridge.keys import WEB_STARTED
from app.logs import configure_logging, context_id
from config import ConfigError, Settings, load_settings
from config.formats import parse_networks

# Answers that hold secrets or one-time state: no proxy or browser may keep a copy.
NO_STORE_PREFIXES = ("/admin", "/api", "/oauth")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # media links and OAuth URLs carry signed ids
    "Content-Security-Policy": "frame-ancestors 'none'",  # no page of ours inside another site's frame
    "X-Frame-Options": "DENY",  # the same, for browsers without CSP level 2
}
HSTS = "max-age=31536000"


def _note_start(app: Flask) -> None:
    """Tell the workers a web process started: while none answered, Zalo's retries may have run
    out, so they catch up from its history (workers/catchup.py)."""
    try:
        app.extensions["redis"].set(WEB_STARTED, time.time())
    except RedisError:
        pass  # Redis away: webhooks answer 503 and the workers catch up once it is back


def create_app(settings: Settings | None = None, cli: bool = False) -> Flask:
    """Build the web app; reads the environment only when no Settings are given. `cli`: for a
    `bin/bridge` command, whose output the server's start-up warnings would only precede."""
    if settings is None:
        settings = _settings_or_exit()
    configure_logging(settings)
    # Imported here, not at the top: every process imports the `app` package (a worker for
    # app.bridge.keys), and only the web process needs the web stack.
    from app import extensions, web
    from app.cli import bridge
    from app.operations.startup import warn_about_settings
    from app.web.console import init_console
    from app.web.metrics import init_metrics
    from app.web.proxies import TrustedProxies

    if not cli:
        warn_about_settings(settings)
    app = Flask(__name__)
    # Media links are signed with settings.secret_key; the console's session and CSRF tokens
    # with a key derived from it, and only console requests open a session (app/web/console/).
    app.config.update(SETTINGS=settings, MAX_CONTENT_LENGTH=web.MAX_BODY, CLI=cli)
    extensions.init_app(app, settings)
    _note_start(app)
    init_metrics(app)
    init_console(app, settings)
    web.register(app, settings)
    app.cli.add_command(bridge)
    _register_hooks(app)
    _register_headers(app, settings.public_base_url.startswith("https://"))
    if settings.trusted_proxies:  # behind them, the client and scheme are those the nearest one saw
        # Flask's documented way to add WSGI middleware; mypy refuses any assignment to a method
        app.wsgi_app = TrustedProxies(app.wsgi_app, parse_networks(settings.trusted_proxies))  # type: ignore[method-assign]
    return app


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None


def _register_headers(app: Flask, public_https: bool) -> None:
    @app.after_request
    def _headers(response: Response) -> Response:
        # one pass over the answer's headers, not a scan per header (every webhook pays this)
        present = {name.lower() for name, _ in response.headers.items()}
        response.headers.extend([(n, v) for n, v in SECURITY_HEADERS.items() if n.lower() not in present])
        if public_https or request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if request.path.startswith(NO_STORE_PREFIXES):
            response.headers["Cache-Control"] = "no-store"
        return response


def _register_hooks(app: Flask) -> None:
    log = logging.getLogger("web")

    @app.before_request
    def _request_id() -> None:
        context_id.set(request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(6))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> ResponseReturnValue:
        # Flask hands an HTTPException without a code (a proxy exception) back unhandled
        return jsonify({"error": exc.description if exc.code != 404 else "not found"}), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> ResponseReturnValue:
        log.exception("web.unhandled_error")
        return jsonify({"error": "internal error"}), 500
