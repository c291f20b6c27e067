"""In-memory FreshChat partner: REST API v2 and signed outbound webhooks.

It behaves as the FreshChat facts of docs/interface.md §8.2 (F1..F12) describe, because the
bridge's end-to-end, chaos and demo runs treat it as the real FreshChat:

* Every `/v2` route needs `Authorization: Bearer <api key>`; errors are JSON
  `{"code", "status", "message"}` (F1, F2).
* Users (F3): `reference_id` is not unique; `GET /users` needs a filter; PUT answers an empty body.
* Conversations (F4): `channel_id` must exist; after a resolve, `reopen_mode` "classic" reopens
  on the next user message, "new_conversation" refuses it with 400 "...not the latest
  conversation..." (F6). Messages list newest first (F5).
* `refuse_images()` makes posted image parts fail with 400 `IMAGE_EMPTY_CONTENT`, as a real
  account did for reachable URLs, for every user or one; file parts and text still go through.
* Uploads (F11): `/images/upload` (field `image`) returns a `url` this simulator serves;
  `/files/upload` (field `file`) returns the flat object with `file_hash`.
* Webhooks (F7, F10): `send_agent_message()`, `resolve()`, `reopen()`, `assign()` store the
  change and POST the envelope, signed RSA-SHA256 PKCS#1 v1.5 over the exact bytes. With
  `webhook_url` set, messages posted through the API (the bridge's own) are echoed too, as
  real FreshChat does, from a background thread in order.
* Messages keep `in_reply_to: {message_id}` (stored, and in their `message_create`); `GET
  /agents/{id}` answers the agent object, 404 for an id it does not know (F12).
* `GET /_sim/state` shows users and conversations with their messages in order.
"""

from __future__ import annotations

import base64
import mimetypes
import queue
import re
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, request

from app.integrations.freshchat.signature import sign as rsa_sign
from sandbox.faults import FaultInjector, SentWebhook, add_routes, install, post_webhook, run_action, serialise

MB = 1024 * 1024
ANY_USER = "*"
FILE_MAX = 25 * MB  # the only figure in circulation (docs/interface.md, F11); unconfirmed
PART_KINDS = {
    "text",
    "image",
    "file",
    "video",
    "url_button",
    "quick_reply_button",
    "collection",
    "callback",
    "reference",
    "template_content",
    "email",
}
ACTOR_TYPES = {"user", "agent", "bot", "system"}
MESSAGE_TYPES = {"normal", "private", "system"}
STATUSES = {"new", "assigned", "resolved", "reopened"}
REOPEN_MODES = ("classic", "new_conversation")
PAYLOAD_VERSIONS = {"current": "2022", "legacy": "2018"}
IMAGE_TYPES = {
    b"\x89PNG\r\n\x1a\n": ("image/png", "png"),
    b"\xff\xd8\xff": ("image/jpeg", "jpg"),
    b"GIF87a": ("image/gif", "gif"),
    b"GIF89a": ("image/gif", "gif"),
}


SANDBOX_GROUP = "5f0c6a7e-3b1d-4c2a-9e8f-0a1b2c3d4e5f"  # the one group every simulated account has


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(epoch * 1000) % 1000:03d}Z"


def _error(status: int, name: str, message: str):
    return jsonify({"code": status, "status": name, "message": message}), status


def _fault_body(fault) -> dict:
    names = {429: "TOO_MANY_REQUESTS", 503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT"}
    return {
        "code": fault.status,
        "status": names.get(fault.status, "INTERNAL_SERVER_ERROR"),
        "message": "simulated fault",
    }


def _is_url(value) -> bool:
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def _as_parts(parts) -> list[dict]:
    """A plain string is one text part; anything else is taken as message_parts."""
    return [{"text": {"content": parts}}] if isinstance(parts, str) else list(parts)


def legacy_parts(parts: list[dict]) -> list[dict]:
    """The 2018 `msg_parts` shape: `{"part_type": kind, "properties": {...}}` (docs/interface.md, F8)."""
    legacy = []
    for part in parts:
        ((kind, value),) = part.items()
        properties = {"text": value.get("content", "")} if kind == "text" else dict(value)
        legacy.append({"part_type": kind, "properties": properties})
    return legacy


class FreshchatSimulator:
    def __init__(
        self,
        channel_id: str,
        api_key: str,
        *,
        private_key=None,
        reopen_mode: str = "classic",
        base_url: str = "",
        app_id: str | None = None,
        clock=time.time,
    ):
        self.channel_id, self.api_key, self.base_url, self.clock = channel_id, api_key, base_url, clock
        self.app_id = app_id or str(uuid.uuid4())
        self.private_key = _load_private_key(private_key)
        self.lock = threading.RLock()
        self.faults = FaultInjector(allow_codes=False, clock=clock)
        self.webhook_url: str | None = None  # echo API-created messages here, like real FreshChat
        self._outbox: queue.Queue = queue.Queue()
        self._outbox_thread: threading.Thread | None = None
        self.reopen_mode = reopen_mode
        self.reset()
        self.app = self._build_app()

    def reset(self) -> None:
        """Empty users, conversations, uploads and faults; keeps the key pair and one channel."""
        if self.reopen_mode not in REOPEN_MODES:
            raise ValueError(f"reopen_mode must be one of {REOPEN_MODES}")
        with self.lock:
            self.users: dict[str, dict] = {}
            self.conversations: dict[str, dict] = {}
            self.latest: dict[str, str] = {}  # user id -> newest conversation id
            self.channels = {
                self.channel_id: {
                    "id": self.channel_id,
                    "name": "Zalo",
                    "enabled": True,
                    "public": True,
                    "source": "freshchat",
                }
            }
            self.agents: dict[str, dict] = {}
            # the account's agent groups, as GET /groups answers them (freshchat.md §7)
            self.groups = {
                SANDBOX_GROUP: {
                    "id": SANDBOX_GROUP,
                    "name": "Sandbox team",
                    "description": "The sandbox's agents",
                    "routing_type": "INTELLIASSIGN",
                }
            }
            self.assets: dict[str, tuple[bytes, str]] = {}
            self.files: dict[str, dict] = {}
            self.webhooks: list[dict] = []
            self.image_refusals: set[str] = set()  # FreshChat user ids, or ANY_USER
            self._next_internal = 681406910844650
        self.default_agent_id = self.add_agent(str(uuid.uuid4()), "Sim", "Agent")["id"]
        self.faults.reset()

    # -- keys ------------------------------------------------------------------------------

    @property
    def public_key_pem(self) -> str:
        """SubjectPublicKeyInfo PEM, `-----BEGIN PUBLIC KEY-----`."""
        return (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    @property
    def public_key_pem_rsa_label(self) -> str:
        """The same SPKI body under the misleading `RSA PUBLIC KEY` label FreshChat's admin shows."""
        return self.public_key_pem.replace("BEGIN PUBLIC KEY", "BEGIN RSA PUBLIC KEY").replace(
            "END PUBLIC KEY", "END RSA PUBLIC KEY"
        )

    # -- set-up helpers -------------------------------------------------------------------

    def add_agent(self, agent_id: str, first_name: str, last_name: str = "", email: str = "") -> dict:
        """An agent as `GET /agents/{id}` answers it (docs/interface.md, F12)."""
        agent = {
            "id": agent_id,
            "first_name": first_name,
            "last_name": last_name,
            "email": email or f"{first_name.lower()}@sim.example",
            "avatar": {"url": ""},
            "biography": "",
            "groups": [],
            "is_deactivated": False,
            "phone": "",
            "role_id": "AGENT",
            "skill_id": None,
            "social_profiles": [],
            "availability_status": "AVAILABLE",
            "locale": "en",
            "timezone": "Asia/Ho_Chi_Minh",
            "routing_type": "INTELLIASSIGN",
            "freshid_uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sim-agent:{agent_id}")),
        }
        with self.lock:
            self.agents[agent_id] = agent
        return dict(agent)

    def add_channel(self, channel_id: str, name: str = "Zalo") -> dict:
        """Another topic in this account (two connections may share an account, one topic each);
        gone after `reset()`."""
        channel = {"id": channel_id, "name": name, "enabled": True, "public": True, "source": "freshchat"}
        with self.lock:
            self.channels[channel_id] = channel
        return dict(channel)

    def add_asset(self, name: str, data: bytes, content_type: str) -> str:
        """Host a file (e.g. an agent's attachment) at `<base_url>/assets/media/<name>`."""
        return self._store_asset(f"media/{name}", data, content_type)

    def _store_asset(self, key: str, data: bytes, content_type: str) -> str:
        with self.lock:
            self.assets[key] = (bytes(data), content_type)
        return f"{self.base_url}/assets/{key}"

    def refuse_images(self, user_id: str | None = None, refuse: bool = True) -> None:
        """Refuse image parts posted into conversations of `user_id` (None: every user), or accept
        them again with `refuse=False`."""
        with self.lock:
            (self.image_refusals.add if refuse else self.image_refusals.discard)(user_id or ANY_USER)

    def _image_refusal(self, user_id: str, messages: list[dict]) -> str | None:
        """The error for posting `messages` (with image parts) while images of the user are refused."""
        if ANY_USER not in self.image_refusals and user_id not in self.image_refusals:
            return None
        images = any("image" in part for m in messages for part in m.get("message_parts") or [])
        return "IMAGE_EMPTY_CONTENT" if images else None

    def conversation(self, conversation_id: str) -> dict:
        """A copy of a conversation with its messages in chronological order."""
        with self.lock:
            conv = self.conversations[conversation_id]
            return {**self._view(conv), "messages": [dict(m) for m in conv["messages"]]}

    def conversations_of(self, user_id: str) -> list[dict]:
        with self.lock:
            ids = [c for c, conv in self.conversations.items() if conv["user_id"] == user_id]
        return [self.conversation(c) for c in ids]

    def users_by_reference(self, reference_id: str) -> list[dict]:
        with self.lock:
            return [dict(u) for u in self.users.values() if u.get("reference_id") == reference_id]

    # -- HTTP ----------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("freshchat_sim")
        app.config["MAX_CONTENT_LENGTH"] = FILE_MAX + MB
        install(app, self.faults, _fault_body)
        app.before_request(self._check_auth)
        add_routes(app, self, self._routes())
        app.register_error_handler(413, lambda e: _error(413, "PAYLOAD_TOO_LARGE", "file too large"))
        return app

    def _routes(self) -> list[tuple]:
        return [
            ("/v2/users", "users_create", self._create_user, "POST"),
            ("/v2/users", "users_list", self._list_users, "GET"),
            ("/v2/users/<user_id>", "user_get", self._get_user, "GET"),
            ("/v2/users/<user_id>", "user_update", self._update_user, "PUT"),
            ("/v2/users/<user_id>/conversations", "user_conversations", self._user_conversations, "GET"),
            ("/v2/conversations", "conversation_create", self._create_conversation, "POST"),
            ("/v2/conversations/<cid>", "conversation_get", self._get_conversation, "GET"),
            ("/v2/conversations/<cid>", "conversation_update", self._update_conversation, "PUT"),
            ("/v2/conversations/<cid>/messages", "messages_list", self._list_messages, "GET"),
            ("/v2/conversations/<cid>/messages", "message_create", self._post_message, "POST"),
            ("/v2/images/upload", "image_upload", self._upload_image, "POST"),
            ("/v2/files/upload", "file_upload", self._upload_file, "POST"),
            ("/v2/agents/<agent_id>", "agent_get", self._get_agent, "GET"),
            ("/v2/channels", "channels_list", self._list_channels, "GET"),
            ("/v2/groups", "groups_list", self._list_groups, "GET"),
            ("/v2/accounts/configuration", "account_configuration", self._account, "GET"),
            ("/assets/<path:key>", "asset", self._asset, "GET"),
            ("/_sim/public_key", "sim_public_key", self._http_public_key, "GET"),
        ]

    def _check_auth(self):
        """Bearer token on every API route; assets and `/_sim` stay open like S3 links."""
        name = request.endpoint or ""
        if not name or name.startswith("sim_") or name == "asset":
            return None
        if request.headers.get("Authorization", "") != f"Bearer {self.api_key}":
            return _error(401, "UNAUTHORIZED", "Invalid or expired API token")
        return None

    def _json_object(self):
        body = request.get_json(silent=True)
        return body if isinstance(body, dict) else None

    # users (docs/interface.md, F3)

    def _create_user(self):
        body = self._json_object()
        problem = "body must be a JSON object" if body is None else _user_problem(body)
        if problem:
            return _error(400, "INVALID_VALUE", problem)
        now = _iso(self.clock())
        user = {"properties": [], **body, "id": str(uuid.uuid4()), "created_time": now, "updated_time": now}
        with self.lock:
            self.users[user["id"]] = user
        return jsonify(user), 201

    def _list_users(self):
        filters = {k: v for k, v in request.args.items() if k in ("reference_id", "email", "phone")}
        if not filters:
            return _error(400, "INVALID_VALUE", "a filter such as reference_id is required")
        with self.lock:
            found = [dict(u) for u in self.users.values() if all(str(u.get(k, "")) == v for k, v in filters.items())]
        pagination = {"total_items": len(found), "total_pages": 1, "current_page": 1, "items_per_page": 50}
        return jsonify({"users": found, "pagination": pagination, "links": {}})

    def _get_user(self, user_id: str):
        with self.lock:
            user = self.users.get(user_id)
            return jsonify(user) if user else _error(404, "USER_NOT_FOUND", "user not found")

    def _update_user(self, user_id: str):
        """Properties merge by name (undocumented upstream; the bridge must not rely on either)."""
        body = self._json_object()
        problem = "body must be a JSON object" if body is None else _user_problem(body)
        if problem:
            return _error(400, "INVALID_VALUE", problem)
        with self.lock:
            user = self.users.get(user_id)
            if user is None:
                return _error(404, "USER_NOT_FOUND", "user not found")
            merged = {p["name"]: p for p in user.get("properties", []) + body.pop("properties", [])}
            fields = {k: v for k, v in body.items() if k not in ("id", "created_time")}
            user.update(fields, properties=list(merged.values()), updated_time=_iso(self.clock()))
        return Response(status=200)

    def _user_conversations(self, user_id: str):
        with self.lock:
            if user_id not in self.users:
                return _error(404, "USER_NOT_FOUND", "user not found")
            ids = [c for c, conv in self.conversations.items() if conv["user_id"] == user_id]
        return jsonify({"conversations": [{"id": c} for c in ids]})

    # conversations (docs/interface.md, F4, F6)

    def _create_conversation(self):
        body = self._json_object()
        with self.lock:
            problem = "body must be a JSON object" if body is None else self._conversation_problem(body)
            if problem:
                return _error(400, "INVALID_VALUE", problem)
            refusal = self._image_refusal(str(body["users"][0]["id"]), body.get("messages") or [])
            if refusal:
                return _error(400, "INVALID_VALUE", refusal)
            conv = self._new_conversation(body)
            created = [self._append(conv, m) for m in body.get("messages") or []]
        self._echo(created)
        return jsonify({**self._view(conv), "messages": created})

    def _conversation_problem(self, body: dict) -> str | None:
        if body.get("channel_id") not in self.channels:
            return "channel_id is invalid"
        users = body.get("users")
        if (
            not isinstance(users, list)
            or not users
            or not all(isinstance(u, dict) and str(u.get("id")) in self.users for u in users)
        ):
            return "users must list existing users as {id}"
        if body.get("status", "new") not in STATUSES:
            return "status is invalid"
        messages = body.get("messages") or []
        if not isinstance(messages, list):
            return "messages must be a list"
        members = {str(u["id"]) for u in users}
        return next((p for p in (self._message_problem(m, members) for m in messages) if p), None)

    def _new_conversation(self, body: dict) -> dict:
        self._next_internal += 1
        user_id = str(body["users"][0]["id"])
        now = self.clock()
        conv = {
            "conversation_id": str(uuid.uuid4()),
            "conversation_internal_id": self._next_internal,
            "app_id": self.app_id,
            "channel_id": body["channel_id"],
            "status": body.get("status", "new"),
            "assigned_agent_id": body.get("assigned_agent_id"),
            "assigned_group_id": body.get("assigned_group_id"),
            "properties": body.get("properties") or {},
            "user_id": user_id,
            "members": [str(u["id"]) for u in body["users"]],
            "created_time": _iso(now),
            "updated_time": _iso(now),
            "interaction_id": f"{self._next_internal}-{int(now * 1000)}",
            "messages": [],
        }
        self.conversations[conv["conversation_id"]] = conv
        self.latest[user_id] = conv["conversation_id"]
        return conv

    def _view(self, conv: dict) -> dict:
        """The conversation object of GET/PUT responses (no messages, no internals)."""
        view = {k: v for k, v in conv.items() if k not in ("messages", "members", "interaction_id")}
        view["freshchat_conversation_id"] = str(conv["conversation_internal_id"])
        view["users"] = [{"id": m} for m in conv["members"]]
        return view

    def _get_conversation(self, cid: str):
        with self.lock:
            conv = self.conversations.get(cid)
            return jsonify(self._view(conv)) if conv else _not_found()

    def _update_conversation(self, cid: str):
        body = self._json_object()
        with self.lock:
            conv = self.conversations.get(cid)
            if conv is None:
                return _not_found()
            problem = "Conversation payload not valid" if body is None else _update_problem(body)
            if problem:
                return _error(400, "INVALID_VALUE", problem)
            self._apply_update(conv, body)
            return jsonify(self._view(conv))

    def _apply_update(self, conv: dict, body: dict) -> None:
        if conv["status"] == "resolved" and body.get("status") in ("new", "reopened", "assigned"):
            self._new_interaction(conv)  # a reopen starts a new interaction
        for key in ("status", "assigned_agent_id", "assigned_group_id"):
            if key in body:
                conv[key] = body[key]
        conv["properties"].update(body.get("properties") or {})
        conv["updated_time"] = _iso(self.clock())

    def _new_interaction(self, conv: dict) -> None:
        conv["interaction_id"] = f"{conv['conversation_internal_id']}-{int(self.clock() * 1000)}"

    # messages (docs/interface.md, F5)

    def _list_messages(self, cid: str):
        paging = _paging(request.args)
        if paging is None:
            return _error(400, "INVALID_VALUE", "page and items_per_page must be numbers")
        page, per_page = paging
        with self.lock:
            conv = self.conversations.get(cid)
            if conv is None:
                return _not_found()
            since = request.args.get("from_time") or ""
            newest_first = [dict(m) for m in reversed(conv["messages"]) if m["created_time"] >= since]
        chunk = newest_first[(page - 1) * per_page : page * per_page]
        body = {"messages": chunk}
        if page * per_page < len(newest_first):
            query = urlencode({"page": page + 1, "items_per_page": per_page, **({"from_time": since} if since else {})})
            body["link"] = {"href": f"/v2/conversations/{cid}/messages?{query}", "rel": "next"}
        return jsonify(body)

    def _post_message(self, cid: str):
        body = self._json_object()
        with self.lock:
            conv = self.conversations.get(cid)
            if conv is None:
                return _not_found()
            problem = "body must be a JSON object" if body is None else self._message_problem(body, conv["members"])
            if problem:
                return _error(400, "INVALID_VALUE", problem)
            refusal = self._refusal(conv) or self._image_refusal(conv["user_id"], [body])
            if refusal:
                return _error(400, "INVALID_VALUE", refusal)
            events = self._reopen_on_user_message(conv, body)
            message = self._append(conv, body)
        self._echo(events + [message])
        return jsonify(message)

    def _refusal(self, conv: dict) -> str | None:
        """In new-conversation accounts a resolved or superseded conversation takes no messages."""
        if self.reopen_mode != "new_conversation":
            return None
        if conv["status"] == "resolved" or self.latest.get(conv["user_id"]) != conv["conversation_id"]:
            return f"Conversation {conv['conversation_id']} is not the latest conversation of the user"
        return None

    def _reopen_on_user_message(self, conv: dict, body: dict) -> list[dict]:
        """Classic FreshChat reopens a resolved conversation when the user writes (docs/interface.md, F6)."""
        if conv["status"] != "resolved" or body.get("actor_type") != "user":
            return []
        conv["status"] = "reopened"
        self._new_interaction(conv)
        return [self._reopen_event(conv, "user", body.get("actor_id") or conv["user_id"])]

    def _message_problem(self, message, members) -> str | None:
        if not isinstance(message, dict):
            return "message must be a JSON object"
        parts = message.get("message_parts")
        if not isinstance(parts, list) or not parts:
            return "message_parts is required"
        problem = next((p for p in map(self._part_problem, parts) if p), None)
        if problem:
            return problem
        if message.get("message_type", "normal") not in MESSAGE_TYPES:
            return "message_type is invalid"
        actor = message.get("actor_type")
        if actor not in ACTOR_TYPES:
            return "actor_type must be one of user, agent, bot, system"
        if actor == "user" and str(message.get("actor_id")) not in members:
            return "actor must be a member of the conversation"
        reply_to = message.get("in_reply_to")
        if reply_to is not None and not (isinstance(reply_to, dict) and isinstance(reply_to.get("message_id"), str)):
            return "in_reply_to must be {message_id}"
        return None

    def _part_problem(self, part) -> str | None:
        if not isinstance(part, dict) or len(part) != 1:
            return "each message part has exactly one key"
        ((kind, value),) = part.items()
        if kind not in PART_KINDS or not isinstance(value, dict):
            return f"unknown message part {kind!r}"
        if kind == "text" and not (isinstance(value.get("content"), str) and value["content"]):
            return "text.content is required"
        if kind == "image" and not _is_url(value.get("url")):
            return "IMAGE_EMPTY_CONTENT"
        if kind == "video" and not _is_url(value.get("url")):
            return "video.url is required"
        if kind == "file" and not (_is_url(value.get("url")) or str(value.get("fileHash")) in self.files):
            return "file needs a url or the fileHash of an upload"
        return None

    def _append(self, conv: dict, body: dict) -> dict:
        """Store a message; created_time never repeats so ordering stays unambiguous."""
        message = {
            "id": str(uuid.uuid4()),
            "conversation_id": conv["conversation_id"],
            "freshchat_conversation_id": str(conv["conversation_internal_id"]),
            "channel_id": conv["channel_id"],
            "app_id": self.app_id,
            "actor_type": body.get("actor_type"),
            "actor_id": body.get("actor_id") or "",
            "user_id": conv["user_id"],
            "interaction_id": conv["interaction_id"],
            "message_type": body.get("message_type", "normal"),
            "message_source": "api",
            "message_parts": body["message_parts"],
            "reply_parts": body.get("reply_parts", []),
            **({"in_reply_to": dict(body["in_reply_to"])} if body.get("in_reply_to") else {}),
            "created_time": self._unique_time(conv),
            "restrictResponse": False,
            "botsPrivateNote": False,
        }
        conv["messages"].append(message)
        conv["updated_time"] = message["created_time"]
        return message

    def _unique_time(self, conv: dict) -> str:
        stamp = _iso(self.clock())
        last = conv["messages"][-1]["created_time"] if conv["messages"] else ""
        return stamp if stamp > last else _iso(datetime.fromisoformat(last[:-1] + "+00:00").timestamp() + 0.001)

    # uploads (docs/interface.md, F11)

    def _upload_image(self):
        upload = request.files.get("image")
        data = upload.read() if upload else b""
        kind = next((t for magic, t in IMAGE_TYPES.items() if data.startswith(magic)), None)
        if not data or kind is None:
            return _error(400, "INVALID_VALUE", "IMAGE_EMPTY_CONTENT")
        name = f"img_{int(self.clock() * 1000)}_{secrets.token_hex(4)}.{kind[1]}"
        url = self._store_asset(f"images/{name}", data, kind[0])
        return jsonify({"url": url, "id": str(uuid.uuid4()), "name": name, "content_type": kind[0]})

    def _upload_file(self):
        upload = request.files.get("file")
        data = upload.read() if upload else b""
        if not data:
            return _error(400, "INVALID_VALUE", "file is required")
        name = upload.filename or "file"
        content_type = upload.mimetype or mimetypes.guess_type(name)[0] or "application/octet-stream"
        file_hash = secrets.token_hex(16)
        url = self._store_asset(f"files/{file_hash}/{name}", data, content_type)
        record = {
            "file_name": name,
            "file_size": len(data),
            "file_content_type": content_type,
            "file_extension_type": name.rsplit(".", 1)[-1].lower() if "." in name else "",
            "file_hash": file_hash,
            "file_security_status": "SAFE_FILE",
        }
        with self.lock:
            self.files[file_hash] = {**record, "url": url}
        return jsonify(record)

    def _asset(self, key: str):
        with self.lock:
            found = self.assets.get(key)
        if found is None:
            return Response("not found", status=404, mimetype="text/plain")
        return Response(found[0], mimetype=found[1])

    # small reads

    def _get_agent(self, agent_id: str):
        with self.lock:
            agent = self.agents.get(agent_id)
        return jsonify(agent) if agent else _error(404, "AGENT_NOT_FOUND", "agent not found")

    def _list_channels(self):
        with self.lock:
            channels = list(self.channels.values())
        return jsonify(
            {
                "channels": channels,
                "pagination": {"total_items": len(channels), "total_pages": 1, "current_page": 1, "items_per_page": 50},
            }
        )

    def _list_groups(self):
        with self.lock:
            groups = list(self.groups.values())
        pagination = {"total_items": len(groups), "total_pages": 1, "current_page": 1, "items_per_page": 50}
        return jsonify({"groups": groups, "pagination": pagination})

    def _account(self):
        return jsonify({"app_id": self.app_id, "organisation_id": 1, "account_id": 1})

    # -- webhooks to the bridge (docs/interface.md, F7, F10) ---------------------------------

    def send_agent_message(
        self,
        bridge_url: str,
        conversation_id: str,
        parts,
        *,
        actor_type: str = "agent",
        agent_id: str | None = None,
        message_type: str = "normal",
        reply_parts=None,
        in_reply_to: str | None = None,
        payload_version: str = "current",
        duplicates: int = 1,
    ) -> SentWebhook:
        """Store an agent (or bot) message in the conversation, then POST its message_create.

        `message_type` "system" is what FreshChat itself posts under an agent's name ("Conversation
        was reopened by ..."); `reply_parts` carries buttons; `in_reply_to` is the id of the
        message the agent answers."""
        message = self.add_agent_message(
            conversation_id,
            parts,
            actor_type=actor_type,
            agent_id=agent_id,
            message_type=message_type,
            reply_parts=reply_parts,
            in_reply_to=in_reply_to,
        )
        return self.deliver(bridge_url, message_event(message, payload_version), duplicates, payload_version)

    def add_agent_message(
        self,
        conversation_id: str,
        parts,
        *,
        actor_type: str = "agent",
        agent_id: str | None = None,
        message_type: str = "normal",
        reply_parts=None,
        in_reply_to: str | None = None,
    ) -> dict:
        """Store an agent (or bot) message without sending its webhook (see `send_agent_message`)."""
        body = {
            "message_parts": _as_parts(parts),
            "actor_type": actor_type,
            "actor_id": agent_id or self.default_agent_id,
            "message_type": message_type,
            **({"reply_parts": list(reply_parts)} if reply_parts else {}),
            **({"in_reply_to": {"message_id": in_reply_to}} if in_reply_to else {}),
        }
        with self.lock:
            conv = self.conversations[conversation_id]
            problem = self._message_problem(body, conv["members"])
            if problem:
                raise ValueError(problem)
            return self._append(conv, body)

    def agent_attach(
        self, bridge_url: str, conversation_id: str, name: str, content_type: str, data: str, text: str = ""
    ) -> SentWebhook:
        """An agent attaches a file in the inbox (sandbox page): FreshChat hosts it, then sends the
        message with an image part for images and a file part otherwise. `data` is base64."""
        raw = base64.b64decode(data)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-80:] or "file"  # a URL path segment
        url = self.add_asset(f"{secrets.token_hex(6)}/{safe}", raw, content_type)
        if content_type in ("image/png", "image/jpeg", "image/gif"):
            part = {"image": {"url": url}}
        else:
            extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
            part = {
                "file": {
                    "name": name,
                    "url": url,
                    "file_size_in_bytes": len(raw),
                    "content_type": content_type,
                    "file_extension": extension,
                }
            }
        parts = ([{"text": {"content": text}}] if text else []) + [part]
        return self.send_agent_message(bridge_url, conversation_id, parts)

    def private_note(
        self, bridge_url: str, conversation_id: str, text: str, *, agent_id: str | None = None, duplicates: int = 1
    ) -> SentWebhook:
        return self.send_agent_message(
            bridge_url, conversation_id, text, agent_id=agent_id, message_type="private", duplicates=duplicates
        )

    def resolve(
        self, bridge_url: str, conversation_id: str, agent_id: str | None = None, *, duplicates: int = 1
    ) -> SentWebhook:
        """An agent resolves the conversation: conversation_resolution (docs/interface.md, F7)."""
        agent_id = agent_id or self.default_agent_id
        with self.lock:
            conv = self.conversations[conversation_id]
            conv["status"] = "resolved"
            resolve = {
                "resolver": "agent",
                "resolver_id": agent_id,
                "conversation": self._brief(conv),
                "interaction_id": conv["interaction_id"],
                "user": {"id": conv["user_id"]},
            }
        return self.deliver(
            bridge_url, self._envelope("conversation_resolution", "agent", agent_id, {"resolve": resolve}), duplicates
        )

    def reopen(
        self,
        bridge_url: str,
        conversation_id: str,
        *,
        reopener: str = "agent",
        reopener_id: str | None = None,
        duplicates: int = 1,
    ) -> SentWebhook:
        """conversation_reopen (docs/interface.md, F6, F7); a new interaction begins."""
        with self.lock:
            conv = self.conversations[conversation_id]
            conv["status"] = "reopened"
            self._new_interaction(conv)
            reopener_id = reopener_id or (conv["user_id"] if reopener == "user" else self.default_agent_id)
            event = self._reopen_event(conv, reopener, reopener_id)
        return self.deliver(bridge_url, event, duplicates)

    def assign(
        self,
        bridge_url: str,
        conversation_id: str,
        agent_id: str,
        *,
        group_id: str = "",
        assignor_id: str | None = None,
        duplicates: int = 1,
    ) -> SentWebhook:
        """conversation_assignment (docs/interface.md, F7); `from_*` are the previous assignees."""
        assignor_id = assignor_id or self.default_agent_id
        with self.lock:
            conv = self.conversations[conversation_id]
            previous = (conv.get("assigned_agent_id") or "", conv.get("assigned_group_id") or "")
            conv.update(status="assigned", assigned_agent_id=agent_id, assigned_group_id=group_id or None)
            assignment = {
                "assignor": "agent",
                "assignor_id": assignor_id,
                "to_agent_id": agent_id,
                "to_group_id": group_id,
                "from_agent_id": previous[0],
                "from_group_id": previous[1],
                "conversation": self._brief(conv),
                "interaction_id": conv["interaction_id"],
            }
        return self.deliver(
            bridge_url,
            self._envelope("conversation_assignment", "agent", assignor_id, {"assignment": assignment}),
            duplicates,
        )

    def _reopen_event(self, conv: dict, reopener: str, reopener_id: str) -> dict:
        reopen = {
            "reopener": reopener,
            "reopener_id": reopener_id,
            "conversation": self._brief(conv),
            "interaction_id": conv["interaction_id"],
        }
        return self._envelope("conversation_reopen", reopener, reopener_id, {"reopen": reopen})

    def _brief(self, conv: dict) -> dict:
        return {
            "conversation_id": conv["conversation_id"],
            "app_id": self.app_id,
            "status": conv["status"],
            "channel_id": conv["channel_id"],
            "assigned_agent_id": conv.get("assigned_agent_id") or "",
            "assigned_group_id": conv.get("assigned_group_id") or "",
            "skill_id": 0,
        }

    def _envelope(self, action: str, actor_type: str, actor_id: str, data: dict) -> dict:
        return {
            "actor": {"actor_type": actor_type, "actor_id": actor_id},
            "action": action,
            "action_time": _iso(self.clock()),
            "data": data,
        }

    def sign(self, event: dict, payload_version: str = "current") -> tuple[bytes, dict]:
        """What FreshChat sends for `event` on the first attempt: the bytes and their headers,
        RSA-signed over those exact bytes."""
        raw = serialise(event)
        return raw, {
            "Content-Type": "application/json",
            "X-Freshchat-Signature": rsa_sign(raw, self.private_key),
            "X-Retry-Count": "0",
            "X-Freshchat-Payload-Version": PAYLOAD_VERSIONS[payload_version],
        }

    def deliver(
        self, bridge_url: str, event: dict, duplicates: int = 1, payload_version: str = "current"
    ) -> SentWebhook:
        """Serialise and sign once; each resend carries the next X-Retry-Count."""
        raw, first = self.sign(event, payload_version)

        def headers_for(attempt: int) -> dict:
            return {**first, "X-Retry-Count": str(attempt)}

        headers, statuses = post_webhook(bridge_url, raw, headers_for, duplicates)
        with self.lock:
            self.webhooks.append({"action": event.get("action"), "statuses": statuses})
        return SentWebhook(event, raw, headers, statuses)

    def _echo(self, items: list[dict]) -> None:
        """Queue webhooks for API-made changes; one thread sends them in order (not inside the request)."""
        if not self.webhook_url:
            return
        for item in items:
            self._outbox.put(item if "action" in item else message_event(item, "current"))
        with self.lock:  # exactly one sender thread, or two could reorder the echoes
            if self._outbox_thread is None or not self._outbox_thread.is_alive():
                self._outbox_thread = threading.Thread(target=self._drain, name="freshchat-sim-echo", daemon=True)
                self._outbox_thread.start()

    def _drain(self) -> None:
        while True:
            event = self._outbox.get()
            try:
                if self.webhook_url:
                    self.deliver(self.webhook_url, event)
            finally:
                self._outbox.task_done()

    def flush_webhooks(self) -> None:
        """Wait until every queued echo has been POSTed."""
        self._outbox.join()

    # -- inspection and HTTP controls ---------------------------------------------------------

    def state(self) -> dict:
        with self.lock:
            conversations = [
                {**self._view(c), "interaction_id": c["interaction_id"], "messages": [dict(m) for m in c["messages"]]}
                for c in self.conversations.values()
            ]
            return {
                "channel_id": self.channel_id,
                "app_id": self.app_id,
                "reopen_mode": self.reopen_mode,
                "users": [dict(u) for u in self.users.values()],
                "conversations": conversations,
                "files": list(self.files.values()),
                "assets": sorted(self.assets),
                "agents": list(self.agents.values()),
                "webhooks": list(self.webhooks),
                "webhook_url": self.webhook_url,
                "image_refusals": sorted(self.image_refusals),
                "faults": self.faults.snapshot(),
            }

    def _http_reset(self):
        self.reset()
        return jsonify({"ok": True})

    def _http_public_key(self):
        label = request.args.get("label", "spki")
        pem = self.public_key_pem_rsa_label if label == "rsa" else self.public_key_pem
        return Response(pem, mimetype="application/x-pem-file")

    def _http_action(self, name: str):
        """Demo/UI controls: POST /_sim/actions/<name> with the method's keyword arguments."""
        actions = {
            "agent_message": self.send_agent_message,
            "private_note": self.private_note,
            "resolve": self.resolve,
            "reopen": self.reopen,
            "assign": self.assign,
            "settings": self._set_settings,
            "agent_attach": self.agent_attach,
            "refuse_images": self.refuse_images,
        }
        return run_action(actions, name)

    def _set_settings(self, reopen_mode: str | None = None, webhook_url: str | None = None) -> None:
        if reopen_mode is not None and reopen_mode not in REOPEN_MODES:
            raise ValueError(f"reopen_mode must be one of {REOPEN_MODES}")
        self.reopen_mode = reopen_mode or self.reopen_mode
        self.webhook_url = webhook_url if webhook_url is not None else self.webhook_url


def message_event(message: dict, payload_version: str = "current") -> dict:
    """The message_create envelope: docs/interface.md, F7 (current) or the 2018 msg_parts shape (legacy)."""
    actor = {"actor_type": message["actor_type"], "actor_id": message["actor_id"]}
    if payload_version == "legacy":
        inner = {
            "msg_parts": legacy_parts(message["message_parts"]),
            **{
                k: message[k]
                for k in (
                    "id",
                    "conversation_id",
                    "actor_type",
                    "actor_id",
                    "user_id",
                    "message_type",
                    "app_id",
                    "channel_id",
                    "created_time",
                )
            },
        }
    else:
        keys = (
            "message_parts",
            "app_id",
            "actor_id",
            "id",
            "channel_id",
            "conversation_id",
            "interaction_id",
            "actor_type",
            "created_time",
            "user_id",
            "restrictResponse",
            "botsPrivateNote",
        )
        inner = {k: message[k] for k in keys}
        if message["message_type"] != "normal":  # the 2022 sample omits message_type when normal
            inner["message_type"] = message["message_type"]
        if message["reply_parts"]:
            inner["reply_parts"] = message["reply_parts"]
        if message.get("in_reply_to"):
            inner["in_reply_to"] = message["in_reply_to"]
    return {
        "actor": actor,
        "action": "message_create",
        "action_time": message["created_time"],
        "data": {"message": inner},
    }


def _user_problem(body: dict) -> str | None:
    properties = body.get("properties", [])
    if not isinstance(properties, list) or not all(isinstance(p, dict) and p.get("name") for p in properties):
        return "properties must be a list of {name, value}"
    if "avatar" in body and not isinstance(body["avatar"], dict):
        return "avatar must be an object with url"
    bad = [
        k
        for k in ("reference_id", "first_name", "last_name", "email", "phone")
        if k in body and not isinstance(body[k], (str, type(None)))
    ]
    return f"{bad[0]} must be a string" if bad else None


def _update_problem(body: dict) -> str | None:
    if "status" in body and body["status"] not in STATUSES:
        return "status is invalid"
    if body.get("status") == "assigned" and not body.get("assigned_agent_id"):
        return "assigned_agent_id is required when status is assigned"
    if "properties" in body and not isinstance(body["properties"], dict):
        return "Conversation payload not valid"
    return None


def _paging(args) -> tuple[int, int] | None:
    """(page, items_per_page); FreshChat caps pages at 50 items (docs/interface.md, F5)."""
    try:
        return max(1, int(args.get("page", 1))), min(50, max(1, int(args.get("items_per_page", 20))))
    except ValueError:
        return None


def _not_found():
    return _error(404, "CONVERSATION_NOT_FOUND", "conversation not found")


def _load_private_key(value) -> rsa.RSAPrivateKey:
    """A key object, PEM bytes/str, or None for a fresh 2048-bit pair."""
    if value is None:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if isinstance(value, rsa.RSAPrivateKey):
        return value
    pem = value.encode() if isinstance(value, str) else value
    return serialization.load_pem_private_key(pem, password=None)
