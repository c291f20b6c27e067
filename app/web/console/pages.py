"""The console's pages: the dashboard, a connection's form, its events and dead letters.

Everything goes through the operator's jobs the JSON API calls (app/connections/: service,
checks, verification; app/operations/: overview, dead_letters); the page only turns a form into
its body and its Problems into messages next to the fields.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_timedelta, get_locale, gettext
from flask_babel import lazy_gettext as _l

from app import extensions
from app.connections.problem import Problem
from app.connections.service import OPTION_DEFAULTS
from app.errors import PartnerError
from app.integrations.zalo import events_catalog
from app.operations import problems
from app.operations.template_status import template_statuses
from app.relay import catchup
from app.texts import vn_time
from app.web import jobs
from app.web.console import bp, forms, settings
from app.web.oauth import permission_url
from app.wording import said

MAX_IDS = 500  # dead letters handled by one click
# Why a catch-up from Zalo's history ran (app/relay/catchup.py, workers/catchup.py), in words.
CATCH_UP_REASONS = {
    "start": _l("when the worker started"),
    "redis": _l("after Redis came back"),
    "web": _l("after the web process started again"),
    "quiet": _l("Zalo webhooks had gone quiet"),
    "on_demand": _l("on demand"),
    "command_line": _l("from the command line"),
    "history": _l("bringing in the chats from before the first activation"),
}
# An event's state (app/operations/journal.py STATES): the API keeps the code, a page shows the word.
STATE_LABELS = {
    "received": _l("received"),
    "queued": _l("queued"),
    "delivered": _l("delivered"),
    "retrying": _l("retrying"),
    "failed": _l("failed"),
    "dropped": _l("dropped"),
}
DEFAULT_NAME = "Default (environment)"  # app/connections/store.py default_connection


def language() -> str:
    return str(get_locale() or "en")


@bp.errorhandler(Problem)
def _problem(exc: Problem):
    return render_template("console/error.html", code=exc.status, message=said(exc.message)), exc.status


@bp.app_template_filter("said")
def _said(text: object) -> str:
    return said(text)


@bp.app_template_filter("state")
def _state(code: str) -> str:
    return str(STATE_LABELS.get(code, code))


def named(view: dict) -> dict:
    """The view, with the environment's connection named in the reader's language."""
    if view.get("from_env") and view.get("name") == DEFAULT_NAME:
        view["name"] = gettext("Default (environment)")
    return view


@bp.app_template_filter("ago")
def _ago(at: float | None) -> str:
    return format_timedelta(at - time.time(), add_direction=True) if at else gettext("never")


@bp.app_template_filter("duration")
def _duration(seconds: float | None) -> str:
    return format_timedelta(seconds, threshold=1.1) if seconds is not None else gettext("unknown")


# -- the dashboard ------------------------------------------------------------------------------


@bp.get("/")
def dashboard() -> ResponseReturnValue:
    connections = [named(view) for view in jobs.overview().list()]
    for view in connections:  # the problems in the visitor's language, from their codes
        status = view["status"]
        status["problems"] = [_problem_text(p) for p in status.get("problems", [])]
        status["last_errors"] = [_error_line(e) for e in status.get("last_errors", [])]
    bridge_status = jobs.overview().status()
    bridge = [problems.problem_text(p["code"], language(), **p["values"]) for p in bridge_status["problems"]]
    return render_template(
        "console/dashboard.html",
        connections=connections,
        overview=bridge_status,
        bridge_problems=bridge,
        reasons=CATCH_UP_REASONS,
    )


def _problem_text(problem: dict) -> dict:
    """A problem's text; its values that are the bridge's English (a test's detail) translated."""
    values = {k: said(v) if isinstance(v, str) else v for k, v in problem["values"].items()}
    return problems.problem_text(problem["code"], language(), **values)


def _error_line(raw: str) -> str:
    """A stored error ({"at", "lane", "item", "error"} as JSON, or older plain text) as one line:
    when, then what."""
    try:
        entry = json.loads(raw)
    except ValueError:
        return said(raw)
    if not isinstance(entry, dict):
        return said(raw)
    when = vn_time(int(float(entry.get("at") or 0) * 1000)) if entry.get("at") else ""
    return f"{when} {said(entry.get('error', ''))}".strip()


# -- a connection's form ------------------------------------------------------------------------


@bp.get("/connections/new")
def new_connection() -> ResponseReturnValue:
    return _form_page(None, forms.shown_values(_blank()))


@bp.post("/connections/new")
def create_connection() -> ResponseReturnValue:
    body = forms.body_from_form(request.form, creating=True)
    body["enabled"] = False  # switched on with Activate, once the partners are set up
    try:
        created = jobs.service().create(body)
    except Problem as exc:
        return _refused(None, _blank(), exc)
    flash(gettext("Connection saved. Connect the OA, test it, then activate it."))
    return redirect(url_for("console.edit_connection", connection_id=created))


@bp.get("/connections/<connection_id>")
def edit_connection(connection_id: str):
    view = named(jobs.overview().show(connection_id))
    other_oa = request.args.get("oa", "")  # the OA Zalo connected instead, shown only as digits
    return _form_page(
        view,
        forms.shown_values(view),
        zalo_outcome=request.args.get("zalo", ""),
        zalo_other_oa=other_oa if re.fullmatch(r"\d{1,30}", other_oa) else "",
    )


@bp.post("/connections/<connection_id>")
def save_connection(connection_id: str):
    body = forms.body_from_form(request.form, creating=False)
    try:
        jobs.service().update(connection_id, body)
    except Problem as exc:
        return _refused(named(jobs.overview().show(connection_id)), None, exc)
    flash(gettext("Connection saved."))
    return redirect(url_for("console.edit_connection", connection_id=connection_id))


def _refused(view: dict | None, blank: dict | None, exc: Problem):
    values = forms.shown_values(view or blank or {}, request.form)
    errors = forms.field_messages(exc.fields)
    return _form_page(view, values, errors=errors, error=said(exc.message) if not exc.fields else ""), exc.status


def _blank() -> dict:
    return {"id": "", "name": "", "zalo": {}, "freshchat": {}, "options": dict(OPTION_DEFAULTS)}


def _form_page(view: dict | None, values: dict, **extra):
    base = settings().public_base_url
    urls = {
        "zalo_webhook": base + "/webhooks/zalo",
        "oauth_callback": base + "/oauth/zalo/callback",
        "freshchat_webhook": view["webhooks"]["freshchat"] if view else "",
    }
    return render_template(
        "console/connection.html",
        view=view,
        values=values,
        urls=urls,
        errors=extra.pop("errors", {}),
        zalo_events=events_catalog.catalog(language()),
        webhook_retry=events_catalog.webhook_retry_advice(language()),
        verifiers=jobs.uploads().files(view["id"]) if view else [],
        template_statuses=template_statuses(extensions.redis(), view["id"]) if view else {},
        # sandbox mode: the simulators' spare OA and FreshChat account, to paste (sandbox/routes.py)
        sandbox_spare=current_app.extensions.get("sandbox_spare") if view is None else None,
        history_days=catchup.history_days(settings()),
        **extra,
    )


@bp.post("/connections/<connection_id>/test")
def test_connection(connection_id: str):
    view = named(jobs.overview().show(connection_id))
    result = jobs.checks().test(connection_id)
    return _form_page(view, forms.shown_values(view), test=result)


@bp.post("/connections/<connection_id>/enabled")
def set_enabled(connection_id: str):
    enabled = request.form.get("enabled") == "1"
    jobs.service().set_enabled(connection_id, enabled)
    flash(gettext("Connection activated.") if enabled else gettext("Connection deactivated."))
    return redirect(url_for("console.edit_connection", connection_id=connection_id))


@bp.post("/connections/<connection_id>/catch-up")
def catch_up(connection_id: str):
    """What POST /api/connections/<id>/catch-up does: queue a catch-up since the last one."""
    try:
        catchup.on_demand(jobs.redis(), jobs.connections(), connection_id)
    except Problem as exc:
        if exc.status != 409:
            raise
        flash(gettext("Activate the connection first: a catch-up relays what it finds."), "error")
    else:
        flash(gettext("Catch-up queued: a worker reads Zalo's history and relays what no webhook brought."))
    return redirect(url_for("console.edit_connection", connection_id=connection_id))


@bp.post("/connections/<connection_id>/history")
def import_history(connection_id: str):
    """The offer of a connection's first activation: bring in the last N days of the OA's
    chats through a catch-up (`days`), or not (`decline`). Nothing is read unless chosen."""
    if request.form.get("decline"):
        catchup.decline_history(jobs.redis(), jobs.connections().get(connection_id).id)
        flash(gettext("The chats from before are left out."))
        return redirect(url_for("console.edit_connection", connection_id=connection_id))
    days = request.form.get("days", "")
    try:
        catchup.import_history(jobs.redis(), jobs.connections(), connection_id, days, jobs.settings())
    except Problem as exc:
        if exc.status not in (400, 409):
            raise
        flash("; ".join(map(said, exc.fields.values())) or said(exc.message), "error")
    else:
        flash(
            gettext(
                "Queued: a worker brings in the last %(days)s day(s) of chats, each message with its own time.",
                days=days,
            )
        )
    return redirect(url_for("console.edit_connection", connection_id=connection_id))


@bp.post("/connections/<connection_id>/connect-zalo")
def connect_zalo(connection_id: str):
    """OAuth with PKCE for this connection, started from the session: no token in any URL."""
    connection = jobs.connections().get(connection_id)
    back = url_for("console.edit_connection", connection_id=connection.id)
    return redirect(permission_url(connection, return_to=back))


@bp.post("/connections/<connection_id>/verification")
def upload_verification(connection_id: str):
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        flash(gettext("Choose the HTML file Zalo gave you."), "error")
        return redirect(url_for("console.edit_connection", connection_id=connection_id))
    try:
        jobs.uploads().upload(connection_id, sent.filename, sent.read(), client=request.remote_addr or "-")
    except Problem as exc:
        if exc.status not in (400, 409):  # 409: another connection's file for this code
            raise
        reason = "; ".join(map(said, exc.fields.values())) or said(exc.message)
        flash(gettext("Not stored: %(reason)s", reason=reason), "error")
    else:
        flash(gettext("Verification file stored; Zalo can now verify the domain."))
    return redirect(url_for("console.edit_connection", connection_id=connection_id))


def _picker_fields() -> list[str | None]:
    """api_url, api_key and connection_id of a picker's JSON body: each a text or None; a body
    that is not an object of texts is a 400 (the page's script only sends those)."""
    data = request.get_json(silent=True)
    fields = (
        [data.get(name) or None for name in ("api_url", "api_key", "connection_id")] if isinstance(data, dict) else []
    )
    if not fields or any(not isinstance(value, str | None) for value in fields):
        raise Problem(400, "the body must be a JSON object")
    return fields


@bp.post("/topics")
def load_topics() -> ResponseReturnValue:
    """The topics of a FreshChat account, for the picker: from the key typed in the form, or a
    saved connection's own key (the page never holds it)."""
    return _picked("topics", jobs.checks().topics)


@bp.post("/groups")
def load_groups() -> ResponseReturnValue:
    """The groups of a FreshChat account, for the option freshchat_group_id: as `load_topics`."""
    return _picked("groups", jobs.checks().groups)


def _picked(name: str, read: Callable[..., list[dict]]) -> ResponseReturnValue:
    """A picker's answer: what `read` found, or its refusal in the reader's words."""
    try:
        found = read(*_picker_fields())
    except Problem as exc:
        words = "; ".join(f"{field}: {said(message)}" for field, message in exc.fields.items())
        return jsonify({"error": words or said(exc.message)}), exc.status
    return jsonify({name: found})


# -- events and dead letters ------------------------------------------------------------------


@bp.get("/connections/<connection_id>/events")
def events(connection_id: str):
    view = named(jobs.overview().show(connection_id))
    filters = {k: request.args.get(k, "").strip() for k in ("direction", "state", "find")}
    try:
        recent, refused = jobs.overview().events(connection_id, limit=100, **filters), ""
    except Problem as exc:
        recent, refused = [], "; ".join(map(said, exc.fields.values())) or said(exc.message)
    letters = jobs.dead_letter_desk().list(connection_id, 100)
    return render_template(
        "console/events.html", view=view, recent=recent, refused=refused, filters=filters, letters=letters
    )


@bp.get("/connections/<connection_id>/templates")
def templates(connection_id: str):
    """The connection's approved Zalo templates, as agents' /templates lists them, each with the
    last change Zalo reported of it (change_template_status), and the templates Zalo reported a
    change of that are not approved now (rejected, disabled...); `?refresh=1` reads Zalo again."""
    view = named(jobs.overview().show(connection_id))
    catalogue = jobs.template_catalogue(connection_id)
    try:
        listing, refused = (catalogue.refresh() if request.args.get("refresh") else catalogue.current()), ""
    except PartnerError as exc:
        listing, refused = None, said(str(exc))
    changes = template_statuses(extensions.redis(), view["id"])
    listed = {t.id for t in listing.templates} if listing else set()
    others = {template_id: c for template_id, c in changes.items() if template_id not in listed}
    return render_template(
        "console/templates.html", view=view, listing=listing, refused=refused, changes=changes, others=others
    )


@bp.post("/connections/<connection_id>/dead-letters")
def dead_letters(connection_id: str):
    """Replay or drop the ticked dead letters, or the one whose row button was pressed."""
    action, ids = request.form.get("action", ""), request.form.getlist("ids")[:MAX_IDS]
    for one in ("replay", "drop"):
        if request.form.get(f"{one}_one"):
            action, ids = one, [request.form[f"{one}_one"]]
    if action not in ("replay", "drop") or not ids:
        flash(gettext("Tick at least one dead letter."), "error")
        return redirect(url_for("console.events", connection_id=connection_id))
    done = 0
    for item_id in ids:
        try:
            getattr(jobs.dead_letter_desk(), action)(connection_id, item_id)
            done += 1
        except Problem as exc:
            flash(said(exc.message), "error")
    if action == "replay":
        flash(gettext("%(count)d replayed.", count=done))
    else:
        flash(gettext("%(count)d dropped.", count=done))
    return redirect(url_for("console.events", connection_id=connection_id))


@bp.post("/connections/<connection_id>/forget")
def forget_person(connection_id: str):
    """What DELETE /api/connections/<id>/users/<zalo_user_id> does, once the box saying that it
    cannot be undone is ticked; FreshChat's copy is FreshChat's to delete, and the page says so."""
    zalo_user = request.form.get("zalo_user_id", "").strip()
    if request.form.get("confirm") != "1":
        flash(gettext("Tick the box to confirm: forgetting a person cannot be undone."), "error")
        return redirect(url_for("console.events", connection_id=connection_id))
    try:
        done = jobs.forgetting().person(connection_id, zalo_user)
    except Problem as exc:
        if exc.status not in (400, 404):
            raise
        flash("; ".join(map(said, exc.fields.values())) or said(exc.message), "error")
        return redirect(url_for("console.events", connection_id=connection_id))
    count = sum(done["deleted"].values())
    flash(gettext("Zalo user %(user)s forgotten: %(count)d records deleted.", user=zalo_user, count=count))
    if done["freshchat"]["user"]:
        flash(
            gettext(
                "FreshChat keeps its own copy (user %(user)s): delete it in FreshChat.", user=done["freshchat"]["user"]
            )
        )
    return redirect(url_for("console.events", connection_id=connection_id))
