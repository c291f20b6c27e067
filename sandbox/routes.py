"""Sandbox wiring inside the bridge's web app: the /sandbox page and its proxy to the simulators.

The page never plays Zalo or FreshChat itself. Each action goes to `/sandbox/api/...`, which asks
the partners process (`python -m sandbox`) to do what the real partner would: send this
bridge a signed webhook. So a message typed on the page takes the production path: webhook →
Redis lane → worker → partner API → simulator. The page then polls `/sandbox/api/state`, a
view of both simulators plus `bridge_status()`, built from an explicit list of fields so no
token or key reaches the browser.

Two connections run (sandbox/connections.py): the default OA with the first FreshChat account,
and a second OA with its own account; the spare OA joins them once an operator has added (and
activated) a connection for it in the console. Every call names its OA with `oa` (default: the
first); the page has a selector for it.
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path

import requests
from flask import Blueprint, Response, abort, current_app, jsonify, redirect, render_template, request
from redis.exceptions import RedisError

from app.bridge.keys import Keys
from app.operations.status import bridge_status
from config.sandbox import is_local, remote_allowed
from sandbox.connections import (
    MERGING,
    SECOND_ACCOUNT,
    SECOND_ID,
    SECOND_NAME,
    SECOND_OA,
    SECOND_PREFIX,
    SPARE_NAME,
    SPARE_OA,
    SPARE_PREFIX,
    partners_url,
    spare_values,
    store_second,
)

log = logging.getLogger("sandbox")
DEMO_USER = {"user_id": "4937104852669371342", "display_name": "Minh Khánh"}
NEW_NAMES = ("Lan Anh", "Quốc Bảo", "Thu Trang", "Đức Huy", "Ngọc Mai", "Hoàng Nam")
TIMEOUT = 15  # some calls wait for the simulator's webhook to this bridge to be answered
MAX_UPLOAD = 32 * 1024 * 1024  # the app caps bodies at 1 MiB; attachments travel as base64 here
SECOND_SIDE, SPARE_SIDE = SECOND_PREFIX.strip("/"), SPARE_PREFIX.strip("/")
MEDIA_PREFIXES = {
    "zalo": ("cdn/", "_sim/uploads/"),
    "freshchat": ("assets/",),
    SECOND_SIDE: ("assets/",),
    SPARE_SIDE: ("assets/",),
}


SHARED_FIELDS = ("name", "phone", "address", "district", "city")  # the form the phone fills in (zalo.md §3.8)


def register_sandbox(app, settings) -> None:
    if not app.config.get("CLI"):
        log.warning(
            "SANDBOX MODE: no Zalo/FreshChat credentials set; partners are the built-in "
            "simulators at %s and %s; open %s/sandbox",
            settings.zalo_api_base_url,
            settings.freshchat_api_url,
            settings.public_base_url,
        )
        store_second(app.extensions["redis"], settings)  # a command needs no second connection stored
    # the console's new-connection form shows these to paste (app/web/console/pages.py)
    app.extensions["sandbox_spare"] = spare_values(partners_url(settings), Path(settings.media_dir).parent)
    app.register_blueprint(build_blueprint(Partners(settings)))
    # Whoever opens the bridge's address in sandbox mode wants the page, not a JSON 404.
    app.add_url_rule("/", "sandbox_home", lambda: redirect("/sandbox"))


class PartnerError(Exception):
    """The simulators are unreachable or refused an action."""


class Partners:
    """Talks to both simulators at the roots the bridge itself uses, and maps their links."""

    def __init__(self, settings):
        self.settings = settings
        self.roots = {
            "zalo": settings.zalo_api_base_url.rstrip("/"),
            "freshchat": settings.freshchat_api_url.rstrip("/").removesuffix("/v2"),
        }
        self.roots[SECOND_SIDE] = self.roots["zalo"].removesuffix("/zalo") + SECOND_PREFIX
        self.roots[SPARE_SIDE] = self.roots["zalo"].removesuffix("/zalo") + SPARE_PREFIX
        # The simulators run on this machine, so they reach the bridge on loopback, whatever
        # PUBLIC_BASE_URL says (it may be a tunnel the partners process cannot resolve).
        self.bridge = bridge = f"http://127.0.0.1:{settings.port}"
        self.hooks = {
            "zalo": bridge + "/webhooks/zalo",
            "freshchat": bridge + "/webhooks/freshchat",
            SECOND_SIDE: f"{bridge}/webhooks/freshchat/{SECOND_ID}",
        }
        # each OA of the page: its connection and the FreshChat account (simulator) it is bound to
        # (and its topic, and who is on its phone when the page first opens it)
        first = {"id": settings.zalo_oa_id, "name": "Sandbox OA", "connection": "default", "freshchat": "freshchat"}
        self.oas = [
            {**first, "channel": settings.freshchat_channel_id, "demo": DEMO_USER},
            {
                "id": SECOND_OA["oa_id"],
                "name": SECOND_NAME,
                "connection": SECOND_ID,
                "freshchat": SECOND_SIDE,
                "channel": SECOND_ACCOUNT["channel_id"],
                "demo": DEMO_USER,
            },
            *(
                # the merging OAs share the first account; the same person follows both
                {"id": m["oa"]["oa_id"], "name": m["name"], "connection": m["id"], "freshchat": "freshchat"}
                | {"channel": m["channel_id"], "demo": m["person"]}
                for m in MERGING
            ),
        ]

    def page_oas(self) -> list[dict]:
        """The page's OAs: the two of the start, and the spare once an enabled connection
        holds it (its id is the operator's choice). While Redis is away the connections cannot
        be read (once their 2-second cache is stale): the two of the start, so the page still
        gets its state and says Redis is unreachable."""
        try:
            held = current_app.extensions["connections"].for_zalo(SPARE_OA["app_id"], SPARE_OA["oa_id"])
        except RedisError:
            return self.oas
        if held is None:
            return self.oas
        spare = {"id": SPARE_OA["oa_id"], "name": SPARE_NAME, "connection": held.id, "freshchat": SPARE_SIDE}
        return [*self.oas, {**spare, "channel": held.settings.freshchat_channel_id, "demo": DEMO_USER}]

    def hook(self, side: str) -> str:
        """Where a simulator sends its webhooks: the spare account's name its connection."""
        if side != SPARE_SIDE:
            return self.hooks[side]
        held = [o for o in self.page_oas() if o["freshchat"] == side]
        return f"{self.bridge}/webhooks/freshchat/{held[0]['connection'] if held else '-'}"

    def oa(self, oa_id: str | None) -> dict:
        """The OA a request names (the first when none); an unknown one is a 400."""
        found = [o for o in self.page_oas() if o["id"] == (oa_id or self.oas[0]["id"])]
        if not found:
            abort(400, "unknown oa")
        return found[0]

    def get(self, side: str, path: str) -> dict:
        return self._call("GET", side, path)

    def act(self, side: str, action: str, kwargs: dict, webhook: bool = True, oa: dict | None = None) -> dict:
        """Run a simulator action; those that send a webhook are pointed at this bridge. Zalo
        actions of an OA other than the first name it."""
        body = {**kwargs, "bridge_url": self.hook(side)} if webhook else dict(kwargs)
        if side == "zalo" and oa and oa["id"] != self.oas[0]["id"]:
            body["oa_id"] = oa["id"]
        return self._call("POST", side, f"_sim/actions/{action}", json=body)

    def _call(self, method: str, side: str, path: str, **kwargs) -> dict:
        try:
            resp = requests.request(method, f"{self.roots[side]}/{path}", timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise PartnerError(f"the {side} simulator is not reachable ({type(exc).__name__})") from exc
        if resp.status_code >= 400:
            raise PartnerError(f"the {side} simulator refused: {resp.text[:200]}")
        return resp.json()

    def page_url(self, url: str) -> str:
        """Links the browser can open: partner media through our proxy, our media relative."""
        for side, root in self.roots.items():
            if url.startswith(root + "/"):
                return f"/sandbox/partners/{side}/{url[len(root) + 1 :]}"
        base = self.settings.public_base_url.rstrip("/")
        return url[len(base) :] if url.startswith(base + "/") else url

    def wire(self, phone: dict, inbox: dict, oa: dict) -> bool:
        """After a (re)start of the partners process: the demo user exists, and FreshChat echoes
        the bridge's own posts back to it as the real one does. True if the demo user was added."""
        side = oa["freshchat"]
        if inbox.get("webhook_url") != self.hook(side):
            self.act(side, "settings", {"webhook_url": self.hook(side)}, webhook=False)
        if any(u["user_id"] == oa["demo"]["user_id"] for u in phone["users"]):
            return False
        self.act("zalo", "add_user", oa["demo"], webhook=False, oa=oa)
        return True


def build_blueprint(partners: Partners) -> Blueprint:
    bp = Blueprint("sandbox", __name__, url_prefix="/sandbox", template_folder="templates", static_folder="static")
    remote = remote_allowed()

    @bp.before_request
    def _local_only_and_attachments():
        # The page drives the simulators and its proxy fetches what they link to: from another
        # machine that would be a way to read whatever this host reaches (docs/security.md).
        if not remote and not is_local(request.environ):
            abort(403, "the sandbox answers this machine only (set SANDBOX_ALLOW_REMOTE=1 to open it)")
        request.max_content_length = MAX_UPLOAD

    @bp.errorhandler(PartnerError)
    def _partner_error(exc):
        return jsonify({"error": str(exc)}), 502

    @bp.get("")
    def page():
        return render_template("sandbox.html", demo_user=DEMO_USER["user_id"])

    @bp.get("/api/state")
    def state():
        return jsonify(page_state(partners, partners.oa(request.args.get("oa"))))

    @bp.get("/partners/<side>/<path:path>")
    def partner_media(side: str, path: str):
        return proxy_media(partners, side, path)

    _zalo_routes(bp, partners)
    _agent_routes(bp, partners)
    return bp


def _zalo_routes(bp: Blueprint, partners: Partners) -> None:
    """The simulated user's phone, plus the demo switches that act on Zalo."""

    @bp.post("/api/zalo/send")
    def zalo_send():
        body = _body("user_id", "kind", "text", "file", "latitude", "longitude", "anonymous")
        hours_ago = _hours_ago()
        if not hours_ago:
            return _sent(partners.act("zalo", "phone_send", body, oa=_oa(partners)))
        # "Written 47 h ago": Zalo's clock goes back for this one message, so its time (and the
        # reply window the bridge counts from it) is that old; then it comes back to now.
        partners.act("zalo", "advance_clock", {"seconds": -hours_ago * 3600}, webhook=False)
        try:
            return _sent(partners.act("zalo", "phone_send", body, oa=_oa(partners)))
        finally:
            partners.act("zalo", "advance_clock", {"seconds": hours_ago * 3600}, webhook=False)

    @bp.post("/api/zalo/react")
    def zalo_react():
        """The user reacts to one of the OA's messages (`/-remove` takes the reaction back)."""
        body = _body("user_id", "msg_id", "react_icon")
        return _sent(partners.act("zalo", "react", body, oa=_oa(partners)))

    @bp.post("/api/zalo/share")
    def zalo_share():
        """The user fills in the OA's "share your information" form (user_submit_info)."""
        body = _body("user_id", "info")
        info = body.get("info") if isinstance(body.get("info"), dict) else {}
        answers = {k: str(v)[:200] for k, v in info.items() if k in SHARED_FIELDS and v not in (None, "")}
        action = {"user_id": body.get("user_id"), "info": answers}
        return _sent(partners.act("zalo", "submit_info", action, oa=_oa(partners)))

    @bp.post("/api/zalo/follow")
    def zalo_follow():
        """The user follows the OA again, or unfollows it."""
        body = _body("user_id", "follow")
        name = "follow" if body.get("follow") is True else "unfollow"
        action = {"user_id": body.get("user_id"), "event_name": name}
        return _sent(partners.act("zalo", "follow", action, oa=_oa(partners)))

    @bp.post("/api/zalo/users")
    def zalo_new_user():
        name = (_body("display_name").get("display_name") or "").strip() or secrets.choice(NEW_NAMES)
        user = {"user_id": "49" + "".join(secrets.choice("0123456789") for _ in range(17)), "display_name": name}
        partners.act("zalo", "add_user", user, webhook=False, oa=_oa(partners))
        return jsonify(user)

    @bp.post("/api/zalo/refuse")
    def zalo_refuse():
        """Zalo answers every reply to this user with an error (e.g. -230), or stops doing so."""
        body = _body("user_id", "display_name", "send_error")
        partners.act("zalo", "add_user", body, webhook=False, oa=_oa(partners))
        return jsonify({"ok": True})

    @bp.post("/api/zalo/expire-token")
    def zalo_expire_token():
        partners.act("zalo", "expire_access_token", {}, webhook=False, oa=_oa(partners))
        return jsonify({"ok": True})


def _agent_routes(bp: Blueprint, partners: Partners) -> None:
    """The FreshChat agent's inbox."""

    @bp.post("/api/agent/reply")
    def agent_reply():
        body = _body("conversation_id", "text")
        return _sent(
            partners.act(
                _account(partners),
                "agent_message",
                {"conversation_id": body.get("conversation_id"), "parts": body.get("text") or ""},
            )
        )

    @bp.post("/api/agent/note")
    def agent_note():
        return _sent(partners.act(_account(partners), "private_note", _body("conversation_id", "text")))

    @bp.post("/api/agent/attach")
    def agent_attach():
        body = _body("conversation_id", "name", "content_type", "data", "text")
        return _sent(partners.act(_account(partners), "agent_attach", body))

    @bp.post("/api/agent/resolve")
    def agent_resolve():
        return _sent(partners.act(_account(partners), "resolve", _body("conversation_id")))

    @bp.post("/api/agent/reopen")
    def agent_reopen():
        """A resolved conversation offers "Reopen", as FreshChat's inbox does."""
        return _sent(partners.act(_account(partners), "reopen", _body("conversation_id")))


def _body(*keys: str) -> dict:
    """Only the fields an action takes, so the page cannot steer the simulators elsewhere."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "expected a JSON object")
    return {k: body[k] for k in keys if k in body}


def _hours_ago() -> float:
    """How long ago the page says the user wrote (0-168 h, Zalo's reply window), else 0."""
    raw = (request.get_json(silent=True) or {}).get("hours_ago", 0)
    if not isinstance(raw, (int, float)) or not 0 <= raw <= 168:
        abort(400, "hours_ago: a number of hours from 0 to 168")
    return float(raw)


def _oa(partners: Partners) -> dict:
    """The OA the page acts for: `oa` in the JSON body."""
    body = request.get_json(silent=True)
    return partners.oa(body.get("oa") if isinstance(body, dict) else None)


def _account(partners: Partners) -> str:
    """The FreshChat simulator of that OA's connection."""
    return _oa(partners)["freshchat"]


def _sent(summary: dict):
    """What the bridge answered the simulator's webhook (200 = queued in Redis)."""
    statuses = summary.get("statuses") or []
    return jsonify({"ok": bool(statuses) and statuses[-1] == 200, "webhook_statuses": statuses})


def proxy_media(partners: Partners, side: str, path: str) -> Response:
    """Partner media for the browser, which may not reach the partners' loopback address.
    Only media paths: the simulators' state (with tokens) must stay out of reach."""
    prefixes = MEDIA_PREFIXES.get(side)
    if not prefixes or not path.startswith(prefixes) or ".." in path.split("/"):
        abort(404)
    try:
        resp = requests.get(f"{partners.roots[side]}/{path}", timeout=TIMEOUT)
    except requests.RequestException:
        abort(502)
    media = Response(
        resp.content, status=resp.status_code, mimetype=resp.headers.get("Content-Type", "application/octet-stream")
    )
    # Users upload anything; served from our origin it must never run as a page.
    media.headers.update({"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"})
    return media


# -- the page's view of both sides (explicit fields only: the simulators' state holds tokens) ----


def page_state(partners: Partners, oa: dict) -> dict:
    """What the page shows for one OA: its users' phones, its FreshChat account's inbox."""
    oas = {"oa": oa["id"], "oas": [{"id": o["id"], "name": o["name"]} for o in partners.page_oas()]}
    oas["topic"] = oa["channel"]  # the inbox is the account's: this OA's conversations are in this topic
    phone_path = f"_sim/phone?oa_id={oa['id']}"
    try:
        phone, inbox = partners.get("zalo", phone_path), partners.get(oa["freshchat"], "_sim/state")
        if partners.wire(phone, inbox, oa):
            phone = partners.get("zalo", phone_path)
    except PartnerError as exc:
        return {"partners": str(exc), **oas, "status": status_view(partners, {}, oa)}
    return {
        "partners": "ok",
        **oas,
        "zalo": zalo_view(partners, phone),
        "inbox": inbox_view(partners, inbox),
        "status": status_view(partners, phone, oa),
    }


def zalo_view(partners: Partners, phone: dict) -> dict:
    users = sorted(phone["users"], key=lambda u: (u["user_id"] != DEMO_USER["user_id"], u["display_name"]))
    chats = {u["user_id"]: [] for u in users}
    for m in phone["user_messages"]:
        chats.setdefault(m["user_id"], []).append(user_item(partners, m))
    reactions = {r["msg_id"]: r["react_icon"] for r in phone.get("reactions") or []}  # the last one counts
    for m in phone["oa_messages"]:
        item = oa_item(partners, m, phone["uploads"])
        chats.setdefault(m["user_id"], []).append({**item, "reaction": reactions.get(m["message_id"], "")})
    for m in phone["console_messages"]:  # typed by an OA admin in Zalo's own console
        chats.setdefault(m["user_id"], []).append(
            {"id": m["message_id"], "from": "oa", "time": int(m["time"] * 1000), "kind": "text", "text": m["text"]}
        )
    unfollowed = set()
    for e in phone.get("person_events") or []:  # follows and shared forms, in the order sent
        unfollowed = unfollowed - {e["user_id"]} if e["event_name"] == "follow" else unfollowed
        unfollowed |= {e["user_id"]} if e["event_name"] == "unfollow" else set()
        chats.setdefault(e["user_id"], []).append(person_item(e))
    for items in chats.values():
        items.sort(key=lambda i: i["time"])
    return {
        "users": [
            {
                "user_id": u["user_id"],
                "display_name": u["display_name"],
                "send_error": u.get("send_error"),
                "user_id_by_app": u.get("user_id_by_app", ""),  # one person across the app's OAs
                "follows": u["user_id"] not in unfollowed,
            }
            for u in users
        ],
        # the anonymous id of each user who "went anonymous" (wrote from the OA's web chat widget)
        "visitors": {v["user_id"]: anonymous_id for anonymous_id, v in (phone.get("visitors") or {}).items()},
        "chats": chats,
    }


PERSON_EVENTS = {
    "follow": "You follow the OA",
    "unfollow": "You unfollowed the OA",
    "user_submit_info": "You shared your information",
}


def person_item(e: dict) -> dict:
    """A follow, an unfollow or a shared form, as a line in the user's chat."""
    shared = e.get("info") if isinstance(e.get("info"), dict) else {}
    words = PERSON_EVENTS.get(e["event_name"], e["event_name"])
    return {
        "id": f"{e['event_name']}:{e['time_ms']}",
        "from": "event",
        "time": e["time_ms"],
        "kind": "event",
        "text": words + (": " + ", ".join(str(v) for v in shared.values()) if shared else ""),
        "delivered": (e.get("statuses") or [None])[-1] == 200,
    }


def user_item(partners: Partners, m: dict) -> dict:
    """One message the user sent, as their phone shows it."""
    message = m["message"]
    item = {
        "id": message["msg_id"],
        "from": "user",
        "time": m["time_ms"],
        "kind": "text",
        "text": message.get("text", ""),
        "delivered": (m.get("statuses") or [None])[-1] == 200,
        "anonymous": bool(m.get("anonymous")),
    }
    for attachment in message.get("attachments") or []:
        kind, payload = attachment.get("type", ""), attachment.get("payload") or {}
        item["kind"] = kind
        if kind == "location":
            coords = payload.get("coordinates") or {}
            item["location"] = [coords.get("latitude", ""), coords.get("longitude", "")]
        else:
            item.update(url=partners.page_url(payload.get("url", "")), name=payload.get("name", ""))
    return item


def oa_item(partners: Partners, m: dict, uploads: dict) -> dict:
    """One message the OA (the bridge, for an agent) sent the user."""
    message = m["message"]
    item = {
        "id": m["message_id"],
        "from": "oa",
        "time": m["time_ms"],
        "kind": "text",
        "text": message.get("text", ""),
        "anonymous": bool(m.get("anonymous_id")),
    }
    if message.get("template"):  # a template message by user id (sandbox/zalo_templates.py)
        template = message["template"]
        return {**item, "kind": "template", "title": template["name"], "text": template["text"]}
    payload = (message.get("attachment") or {}).get("payload") or {}
    element = (payload.get("elements") or [{}])[0]
    if payload.get("template_type") == "request_user_info":
        return {**item, "kind": "template", "title": element.get("title", ""), "text": element.get("subtitle", "")}
    if payload.get("token"):
        name = uploads.get(payload["token"], {}).get("filename", "")
        return {**item, "kind": "file", "url": _upload_url(partners, payload["token"]), "name": name}
    if element.get("media_type") in ("image", "gif"):
        url = element.get("url") or _upload_url(partners, element.get("attachment_id", ""))
        return {**item, "kind": "image", "url": partners.page_url(url)}
    if element.get("media_type") == "sticker":
        return {**item, "text": "[sticker]"}
    return item


def _upload_url(partners: Partners, ident: str) -> str:
    return partners.page_url(f"{partners.roots['zalo']}/_sim/uploads/{ident}")


def inbox_view(partners: Partners, inbox: dict) -> dict:
    users = {u["id"]: u for u in inbox["users"]}
    agents = {a["id"]: " ".join(filter(None, (a["first_name"], a["last_name"]))) for a in inbox["agents"]}
    conversations = sorted(inbox["conversations"], key=lambda c: c["updated_time"], reverse=True)
    topics = {o["channel"]: o["name"] for o in partners.page_oas()}
    return {
        "conversations": [
            {
                **conversation_view(partners, c, users.get(c["user_id"], {}), agents),
                "topic": c.get("channel_id") or "",
                "topic_oa": topics.get(c.get("channel_id"), ""),
            }
            for c in conversations
        ]
    }


def conversation_view(partners: Partners, conv: dict, user: dict, agents: dict) -> dict:
    # zalo:<user id>, or zalo:app:<app id>:<user id by app> for a person merged across OAs
    reference = user.get("reference_id") or ""
    properties = {p.get("name"): p.get("value") for p in user.get("properties") or [] if isinstance(p, dict)}
    return {
        "id": conv["conversation_id"],
        "status": conv["status"],
        "group": conv.get("assigned_group_id") or "",
        # what agents see on the user's FreshChat profile: the phone and the properties worth showing
        "profile": {
            "phone": user.get("phone") or "",
            **{k: v for k, v in properties.items() if k == "zalo_oa" or str(k).startswith("shared_")},
        },
        "updated": conv["updated_time"],
        "user_name": " ".join(filter(None, (user.get("first_name"), user.get("last_name")))) or "User",
        "fc_user_id": conv["user_id"],  # one person merged across OAs: one user, a conversation per OA
        "zalo_user_id": reference.rsplit(":", 1)[-1] if reference.startswith("zalo:") else "",
        "messages": [message_view(partners, m, agents) for m in conv["messages"]],
    }


def message_view(partners: Partners, m: dict, agents: dict) -> dict:
    return {
        "id": m["id"],
        "actor": m["actor_type"],
        "private": m["message_type"] == "private",
        "time": m["created_time"],
        "author": agents.get(m.get("actor_id"), ""),
        "parts": [part_view(partners, p) for p in m["message_parts"]],
    }


def part_view(partners: Partners, part: dict) -> dict:
    ((kind, value),) = part.items()
    if kind == "text":
        return {"kind": "text", "text": value.get("content", "")}
    if kind in ("image", "file", "video"):
        return {
            "kind": "image" if kind == "image" else "file",
            "url": partners.page_url(value.get("url", "")),
            "name": value.get("name", ""),
        }
    return {"kind": "text", "text": f"[{kind}]"}


def status_view(partners: Partners, phone: dict, oa: dict) -> dict:
    """bridge_status() (already free of secrets) with the picked OA's own last errors (the
    top level holds the default connection's), plus what the demo switches change."""
    redis = current_app.extensions["redis"]
    try:
        status = bridge_status(redis)
        status["last_errors"] = [e.decode() for e in redis.lrange(Keys(oa["connection"]).errors, 0, 9)]
    except RedisError as exc:
        status = {"redis": f"unreachable ({type(exc).__name__})"}
    status["last_errors"] = [_error_line(e) for e in status.get("last_errors", [])]
    settings = _connection_settings(partners, oa)
    status.update(
        resolve_notification=settings.resolve_notification,
        satisfaction_survey=settings.satisfaction_survey,
        merge_users_by_app=settings.merge_users_by_app,
        zalo_refreshes=phone.get("refresh_count"),
    )
    return status


def _connection_settings(partners: Partners, oa: dict):
    """The options of the picked OA's connection; the default's while Redis is away."""
    try:
        held = current_app.extensions["connections"].get(oa["connection"])
    except RedisError:
        held = None
    return held.settings if held is not None else partners.settings


def _error_line(raw: str) -> dict:
    try:
        entry = json.loads(raw)
    except ValueError:
        return {"at": None, "lane": "", "error": raw[:300]}
    return {"at": entry.get("at"), "lane": entry.get("lane", ""), "error": str(entry.get("error", ""))[:300]}
