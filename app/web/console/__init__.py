"""The admin console: server-rendered pages under /admin/ (docs/interface.md §3), on top of the
same code as the JSON API (app/connections/service.py), so a connection is validated one way.

Sign-in with ADMIN_TOKEN, then Flask's signed session cookie, which exists only below /admin
(webhooks, media and /api never read or set a cookie); CSRF on every form of the console and
nowhere else. Every console path answers 404 while ADMIN_TOKEN is unset.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

from flask import Blueprint, Flask, Request, abort, render_template, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from app.extensions import settings
from app.web.console import i18n
from config.settings import Settings

PREFIX = "/admin"
SESSION_HOURS = 12
csrf = CSRFProtect()
bp = Blueprint(
    "console",
    __name__,
    url_prefix=PREFIX,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def in_console(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


class ConsoleSessions(SecureCookieSessionInterface):
    """The cookie session, for console paths only: no other request pays for a signer."""

    salt = "zfb-admin-console"

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        return super().open_session(app, request) if in_console(request.path) else None

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure when PUBLIC_BASE_URL is https, or a trusted proxy says the browser used https."""
        return super().get_cookie_secure(app) or request.is_secure


def init_console(app: Flask, settings: Settings) -> None:
    """Sessions, CSRF and translations for the console; its routes come with the blueprint."""
    app.config.update(
        # A key of its own, derived from SECRET_KEY: a session or CSRF token is no media signature.
        SECRET_KEY=_derived_key(settings.secret_key),
        SESSION_COOKIE_NAME="zfb_admin",
        SESSION_COOKIE_PATH=PREFIX,
        SESSION_COOKIE_HTTPONLY=True,
        # Lax, not Strict: the browser comes back from Zalo's consent page to the console.
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        SESSION_REFRESH_EACH_REQUEST=False,  # 12 hours from sign-in, not from the last click
        WTF_CSRF_CHECK_DEFAULT=False,  # the console protects its own requests (console/auth.py)
        WTF_CSRF_TIME_LIMIT=None,  # a form's token lives as long as the session it belongs to
    )
    app.session_interface = ConsoleSessions()
    csrf.init_app(app)
    i18n.init_app(app)


def _derived_key(secret_key: str) -> str:
    return hmac.new(secret_key.encode(), b"zfb admin console", hashlib.sha256).hexdigest()


@bp.errorhandler(CSRFError)
def _csrf_refused(exc: CSRFError):
    return render_template("console/error.html", code=400, reason="csrf"), 400


def absent_without_token() -> None:
    if not settings().admin_token:
        abort(404)


from app.web.console import auth, pages  # noqa: E402,F401  (routes register on bp)
