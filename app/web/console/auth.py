"""Sign-in with ADMIN_TOKEN, the session that follows, CSRF on every form, and sign-out.

The session holds a keyed fingerprint of the token (never the token: the cookie is signed, not
sealed), so changing ADMIN_TOKEN signs every browser out, and a session id that exists in Redis
only until sign-out (or SESSION_HOURS), so a copied cookie dies with the session. Failed
sign-ins share the bearer routes' throttle per client address (app/web/wrong_tokens.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from flask import Response, abort, current_app, make_response, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale, gettext

from app import extensions
from app.bridge import keys
from app.logs import audit
from app.web.console import PREFIX, SESSION_HOURS, absent_without_token, bp, csrf, settings
from app.web.console.i18n import LANGUAGES
from app.web.wrong_tokens import client_address, count_failure, same_token, throttle

PUBLIC = {"console.sign_in", "console.static", "console.language"}
LANGUAGE_COOKIE = "zfb_lang"


def token_fingerprint(token: str) -> str:
    return hmac.new(current_app.config["SECRET_KEY"].encode(), token.encode(), hashlib.sha256).hexdigest()


def signed_in() -> bool:
    mark, since, sid = session.get("admin", ""), session.get("since", 0), session.get("sid", "")
    fresh = time.time() - since < SESSION_HOURS * 3600
    return (
        fresh
        and hmac.compare_digest(mark, token_fingerprint(settings().admin_token))
        and bool(sid)
        and bool(extensions.redis().exists(keys.console_session(sid)))  # gone once its browser signed out
    )


@bp.before_request
def _guard() -> ResponseReturnValue | None:
    absent_without_token()
    if request.method == "POST":
        csrf.protect()
    if request.endpoint in PUBLIC or signed_in():
        return None
    session.clear()  # an expired session or one of an older ADMIN_TOKEN
    return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))


@bp.context_processor
def _page_context() -> dict[str, object]:
    return {"signed_in": signed_in(), "current_locale": lambda: str(get_locale() or "en")}


@bp.after_request
def _no_store(response: Response) -> Response:
    """Console pages show the state of the bridge: never from a cache."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def _next_page() -> str:
    """Only a console path: an open redirect would make the sign-in page a phishing tool."""
    target = request.values.get("next", "")
    if any(ord(c) < 32 or ord(c) == 127 for c in target):
        # A line break would split the Location header (werkzeug refuses that with a 500).
        abort(make_response(render_template("console/error.html", code=400), 400))
    ok = target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target
    return target if ok else url_for("console.dashboard")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("console/sign_in.html", next=_next_page())
    client = client_address()
    wait = throttle().wait_left(client)
    if wait:
        return _too_many(wait)
    given = request.form.get("token", "")
    if not same_token(given, settings().admin_token):
        audit("sign_in_failed", client=client)
        wait = count_failure(client, "sign_in")
        if wait:
            return _too_many(wait)
        return render_template("console/sign_in.html", next=_next_page(), error=gettext("Wrong token.")), 401
    throttle().succeeded(client)
    sid = secrets.token_urlsafe(24)
    extensions.redis().set(keys.console_session(sid), 1, ex=SESSION_HOURS * 3600)
    session.clear()  # a fresh session (and CSRF token) after sign-in
    session.permanent = True
    session.update(admin=token_fingerprint(given), since=time.time(), sid=sid)
    audit("sign_in", client=client)
    return redirect(_next_page())


def _too_many(wait: int):
    error = gettext("Too many wrong tokens. Try again in %(seconds)d seconds.", seconds=wait)
    page = render_template("console/sign_in.html", next=_next_page(), error=error)
    return page, 429, {"Retry-After": str(wait)}


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    """Ends the session on the server too: a copy of the cookie is worth nothing afterwards."""
    extensions.redis().delete(keys.console_session(session.get("sid", "")))
    session.clear()
    audit("sign_out", client=client_address())
    return redirect(url_for("console.sign_in"))


@bp.get("/language/<code>")
def language(code: str):
    """The language switch: remembered in a cookie, else the browser's Accept-Language decides."""
    response = redirect(_next_page())
    if code in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            code,
            max_age=365 * 86400,
            path=PREFIX,
            samesite="Lax",
            secure=current_app.config["SESSION_COOKIE_SECURE"] or request.is_secure,
            httponly=True,
        )
    return response
