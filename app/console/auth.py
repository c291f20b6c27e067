"""Sign-in with ADMIN_TOKEN, the session that follows, CSRF on every form, and sign-out.

The session holds a keyed fingerprint of the token (never the token: the cookie is signed, not
sealed), so changing ADMIN_TOKEN signs every browser out. Failed sign-ins are counted per client
address in Redis, shared by every web process: after a few, each further try waits longer.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from flask import current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext

from app.bridge import keys
from app.console import (
    PREFIX,
    SESSION_HOURS,
    absent_without_token,
    bp,
    client_address,
    csrf,
    settings,
)

FREE_FAILURES = 5  # a mistyped token or two costs nothing
MAX_WAIT = 15 * 60
FORGET_AFTER = 3600  # failures older than an hour without another are forgotten
PUBLIC = {"console.sign_in", "console.static", "console.language"}
LANGUAGE_COOKIE = "zfb_lang"


class SignInThrottle:
    def __init__(self, redis):
        self.redis = redis

    def wait_left(self, client: str) -> int:
        """Seconds this client must still wait before a sign-in is looked at (0: none)."""
        left = self.redis.pttl(keys.signin_wait(client))
        return math.ceil(left / 1000) if left > 0 else 0

    def failed(self, client: str) -> int:
        """Count a failure; the wait it imposes (doubling from the sixth failure on)."""
        count, _ = (
            self.redis.pipeline()
            .incr(keys.signin_failures(client))
            .expire(keys.signin_failures(client), FORGET_AFTER)
            .execute()
        )
        if count < FREE_FAILURES:
            return 0
        wait = min(2 ** (count - FREE_FAILURES + 1), MAX_WAIT)
        self.redis.set(keys.signin_wait(client), 1, ex=wait)
        return wait

    def succeeded(self, client: str) -> None:
        self.redis.delete(keys.signin_failures(client), keys.signin_wait(client))


def _throttle() -> SignInThrottle:
    return SignInThrottle(current_app.extensions["redis"])


def token_fingerprint(token: str) -> str:
    return hmac.new(current_app.config["SECRET_KEY"].encode(), token.encode(), hashlib.sha256).hexdigest()


def signed_in() -> bool:
    mark, since = session.get("admin", ""), session.get("since", 0)
    fresh = time.time() - since < SESSION_HOURS * 3600
    return fresh and hmac.compare_digest(mark, token_fingerprint(settings().admin_token))


@bp.before_request
def _guard():
    absent_without_token()
    if request.method == "POST":
        csrf.protect()
    if request.endpoint in PUBLIC or signed_in():
        return None
    session.clear()  # an expired session or one of an older ADMIN_TOKEN
    return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))


@bp.context_processor
def _page_context():
    from flask_babel import get_locale

    return {"signed_in": signed_in(), "current_locale": lambda: str(get_locale() or "en")}


@bp.after_request
def _no_store(response):
    """Console pages show the state of the bridge: never from a cache."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _next_page() -> str:
    """Only a console path: an open redirect would make the sign-in page a phishing tool."""
    target = request.values.get("next", "")
    ok = target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target
    return target if ok else url_for("console.dashboard")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if request.method == "GET":
        return render_template("console/sign_in.html", next=_next_page())
    client = client_address()
    wait = _throttle().wait_left(client)
    if wait:
        return _too_many(wait)
    given = request.form.get("token", "")
    if not hmac.compare_digest(given.encode(), settings().admin_token.encode()):
        wait = _throttle().failed(client)
        if wait:
            return _too_many(wait)
        return render_template("console/sign_in.html", next=_next_page(), error=gettext("Wrong token.")), 401
    _throttle().succeeded(client)
    session.clear()  # a fresh session (and CSRF token) after sign-in
    session.permanent = True
    session.update(admin=token_fingerprint(given), since=time.time())
    return redirect(_next_page())


def _too_many(wait: int):
    error = gettext("Too many wrong tokens. Try again in %(seconds)d seconds.", seconds=wait)
    page = render_template("console/sign_in.html", next=_next_page(), error=error)
    return page, 429, {"Retry-After": str(wait)}


@bp.post("/sign-out")
def sign_out():
    session.clear()
    return redirect(url_for("console.sign_in"))


@bp.get("/language/<code>")
def language(code: str):
    """The language switch: remembered in a cookie, else the browser's Accept-Language decides."""
    from app.console.i18n import LANGUAGES

    response = redirect(_next_page())
    if code in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            code,
            max_age=365 * 86400,
            path=PREFIX,
            samesite="Lax",
            secure=current_app.config["SESSION_COOKIE_SECURE"],
            httponly=True,
        )
    return response
