"""In-memory Zalo OA partner: Open API, OAuth v4, media CDN and a webhook sender.

It behaves as the Zalo facts of docs/interface.md §8.1 (Z1..Z15) describe, because the
bridge's end-to-end, chaos and demo runs treat it as the real Zalo:

* API errors are HTTP 200 with a negative `error` (Z2, Z3); the token travels in the literal
  `access_token` header (Z1); a wrong or rotated-away token gets -216.
* `POST /v3.0/oa/message/cs` checks the body of Z8 (text ≤ 2000 characters, media template
  with uploaded ids or URLs, file tokens, a `quote_message_id`) and answers `data.message_id` (Z8). The recipient is a
  `user_id` or the `message_id` of a user's message (a reply); the answer's `quota` says what
  paid: `reply` within 48 h of the user's last interaction, none (billed) up to 7 days, then -230.
* The clock can be moved (`POST /_sim/clock {"advance_seconds": n}`, negative too): what Zalo
  stamps on events and counts windows with, so tests can make a user silent for 47 h.
* `POST /v2.0/oa/message` answers anonymous visitors (the OA's web chat widget) within the
  conversation of their `anonymous_send_*` events; any other recipient gets -240, as MessageV2 is
  shut down for everything else.
* `POST /v2.0/oa/upload/{image,gif,file}` (Z10) sniff magic bytes and enforce the size limits.
* `GET /v3.0/oa/user/detail?data={"user_id": ...}` answers the profile of Z11.
* `GET /v2.0/oa/getoa` answers the OA's own profile: a cheap call that proves a token works (Z12).
* `GET /v2.0/oa/listrecentchat` and `GET /v2.0/oa/conversation` read the OA's history: every
  message either side sent (also those whose webhook was dropped), at most 10 per page from an
  `offset`, newest first, in the item shape of tests/fixtures/zalo/answers/conversation.json.
* `POST /v4/oa/access_token` (Z13, Z14): refresh tokens and codes are single use; a refresh
  kills the previous access token; `expires_in` is a string.
* `send_user_event()` and friends POST signed webhooks (Z4-Z6) to the bridge; with
  `webhooks_off` they are only recorded (Zalo gave up retrying, or switched the webhook off),
  and `redeliver()` POSTs a recorded one late.
* `GET /cdn/<name>` serves media registered with `add_media()`, for image and file events.
* `GET /_sim/state` shows what the OA sent, uploads, tokens and users.

All state lives in memory behind one lock. Faults (faults.py) are checked before each route.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from flask import Flask, Response, abort, jsonify, redirect, render_template_string, request

from app.integrations.zalo.signature import compute_mac
from sandbox.faults import FaultInjector, SentWebhook, add_routes, install, post_webhook, run_action, serialise
from sandbox.zalo_templates import QUOTA_START, TemplateRoutes

TEXT_MAX = 2000
MB = 1024 * 1024
FREE_WINDOW = 48 * 3600  # a reply within 48 h of the user's last interaction is free
CS_WINDOW = 7 * 86400  # up to 7 days it is billed, then refused (-230)
UPLOAD_RULES = {  # kind -> (size limit, accepted types), docs/interface.md, Z10
    "image": (1 * MB, ("jpg", "png")),
    "gif": (5 * MB, ("gif",)),
    "file": (5 * MB, ("pdf", "doc", "docx")),
}
AUTH_CODE_TTL = 600  # codes live 10 minutes (docs/interface.md, Z13)
VN = timezone(timedelta(hours=7))
ERROR_MESSAGES = {
    -32: "The number of requests exceeds the limit per minute",
    -100: "attachment_id was expired",
    -124: "Access token is invalid",
    -200: "Send message failed",
    -201: "Parameters are invalid",
    -210: "Parameter exceeds the allowed limit",
    -213: "User has not followed OA",
    -216: "Access token is invalid",
    -220: "Access token has expired or has been removed",
    -230: "User has not interacted with the OA in the past 7 days",
    -232: "User has not interacted with the OA or the last interaction has expired",
    -240: "MessageV2 API has been shut down, please switch to MessageV3",
    -320: "Your app needs to connect with Zalo Cloud Account to use the paid features",
    -321: "Zalo Cloud Account has run out of money or cannot be charged",
}
CONSOLE_ADMIN_ID = "7788990011"
HISTORY_PAGE = 10  # history reads answer at most 10 items per call
# history item `type` of each webhook attachment type (image is "photo" there)
HISTORY_TYPES = {
    "image": "photo",
    "gif": "gif",
    "sticker": "sticker",
    "file": "file",
    "audio": "audio",
    "video": "video",
}
# getoa's fields besides oa_id and num_follower, which come from the simulator's state
OA_PROFILE = {
    "name": "Sandbox OA",
    "description": "Simulated Zalo Official Account",
    "oa_alias": "sandbox-oa",
    "is_verified": True,
    "oa_type": 2,
    "cate_name": "Sandbox",
    "avatar": "https://s160-ava-talk.zadn.vn/sim/oa.jpg",
    "cover": "https://cover-talk.zadn.vn/sim/oa.jpg",
}


def _hex_id() -> str:
    """Zalo message ids are 20-character hex strings."""
    return secrets.token_hex(10)


def _error(code: int, message: str | None = None):
    return jsonify({"error": code, "message": message or ERROR_MESSAGES.get(code, "Error")})


def _ok(data: dict):
    return jsonify({"error": 0, "message": "Success", "data": data})


def _oauth_error(code: int, name: str, description: str = ""):
    return jsonify(
        {
            "error": code,
            "error_name": name,
            "error_description": description or name,
            "error_reason": "",
            "ref_doc": "https://developers.zalo.me/docs/official-account",
        }
    )


def _fault_body(fault):
    """Codes come back Zalo-style; HTTP failures look like the gateway's HTML page."""
    if fault.code is not None:
        return {"error": fault.code, "message": ERROR_MESSAGES.get(fault.code, "Simulated error")}
    return f"<html><body><h1>{fault.status}</h1>simulated gateway error</body></html>"


def sniff(data: bytes, filename: str = "") -> str:
    """The file type from magic bytes; Office files also need the matching extension."""
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") and ext == "doc":
        return "doc"
    if data.startswith(b"PK\x03\x04") and ext == "docx":
        return "docx"
    return "unknown"


def upload_problem(kind: str, filename: str, data: bytes) -> tuple[int, str] | None:
    limit, accepted = UPLOAD_RULES[kind]
    if not data:
        return -201, "file is invalid: empty"
    found = sniff(data, filename)
    if found not in accepted:
        return -201, f"file type is invalid: {kind} accepts {', '.join(accepted)}, got {found}"
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if kind == "file" and ext != found:
        return -201, f"file extension is invalid: .{ext} for a {found} file"
    if len(data) > limit:
        return -210, f"file size exceeds the limit of {limit // MB}MB"
    return None


# -- message bodies of user_send_* events (docs/interface.md, Z6, Z7); the sender adds msg_id ---


def text_message(text: str, quote_msg_id: str | None = None) -> dict:
    return {"text": text, **({"quote_msg_id": quote_msg_id} if quote_msg_id else {})}


def attachment_message(kind: str, payload: dict, text: str | None = None) -> dict:
    message = {"text": text} if text is not None else {}
    message["attachments"] = [{"type": kind, "payload": payload}]
    return message


def image_message(url: str, caption: str | None = None, kind: str = "image") -> dict:
    return attachment_message(kind, {"thumbnail": url, "url": url}, caption)


def file_message(url: str, name: str, data: bytes = b"") -> dict:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    payload = {"size": str(len(data)), "name": name, "checksum": hashlib.md5(data).hexdigest(), "type": ext, "url": url}
    return attachment_message("file", payload)


def sticker_message(url: str, sticker_id: str = "bfe458bf64fa8da4d4eb") -> dict:
    return attachment_message("sticker", {"url": url, "id": sticker_id})


def location_message(latitude: str, longitude: str, label: str | None = None) -> dict:
    coordinates = {"latitude": str(latitude), "longitude": str(longitude)}
    return attachment_message("location", {"coordinates": coordinates}, label)


def link_message(url: str, title: str = "", description: str = "", thumbnail: str = "") -> dict:
    payload = {"url": url, "title": title, "description": description, "thumbnail": thumbnail}
    return attachment_message("link", payload)


def media_link_message(kind: str, url: str, thumbnail: str = "", description: str = "") -> dict:
    """Audio or video: Zalo sends only links for these."""
    payload = {"url": url} if kind == "audio" else {"url": url, "thumbnail": thumbnail, "description": description}
    return attachment_message(kind, payload)


def business_card_message(name: str, phone: str, qr_url: str = "https://zalo.me/qr/card") -> dict:
    """A business card is a link whose description is a JSON string (CWF business_card_service)."""
    payload = {"description": json.dumps({"phone": phone, "qrCodeUrl": qr_url}), "thumbnail": qr_url, "url": qr_url}
    return attachment_message("link", payload, name)


class ZaloOA:
    """One Official Account: its OA Secret Key (webhook MAC), token pair and OAuth, users, what
    it sent and the webhooks it fired. The simulator is itself its first OA; `add_oa()` makes
    more, which share its HTTP routes, CDN, uploads and lock, and the fault rules of their app."""

    def __init__(self, sim, app_id, oa_id, oa_secret_key, app_secret, access_token, refresh_token, access_ttl):
        self.sim, self.lock, self.clock = sim, sim.lock, sim.clock
        self.app_id, self.oa_id, self.oa_secret_key = str(app_id), str(oa_id), oa_secret_key
        self.app_secret, self.access_ttl = app_secret, int(access_ttl)
        self.name = OA_PROFILE["name"]  # what getoa and the consent page call it
        self._initial_tokens = (access_token, refresh_token)
        self.echo_url: str | None = None  # set to have every accepted send echoed as oa_send_*
        self.echo_delay = 0.0
        self.reset_oa()

    @property
    def faults(self) -> FaultInjector:
        """The fault rules of this OA's app: a -32 storm hits every OA of the app."""
        return self.sim.app_faults(self.app_id)

    def reset_oa(self) -> None:
        """This OA back to its initial tokens, with no users, messages or webhooks."""
        with self.lock:
            self.access_token, self.refresh_token = self._initial_tokens
            self.access_expires_at = self.clock() + self.access_ttl
            self.refresh_revoked = False
            self.refresh_count = 0
            self.code_exchanges = 0
            self.users: dict[str, dict] = {}
            self.sent: list[dict] = []
            self.console_messages: list[dict] = []
            self.auth_codes: dict[str, tuple[str, float]] = {}
            self.webhooks: list[dict] = []
            self.phone_log: list[dict] = []  # what users sent from the sandbox page's phone
            self.reactions: list[dict] = []  # reactions users sent, for the phone page
            self.person_events: list[dict] = []  # follows, unfollows, shared forms, for the phone page
            self.visitors: dict[str, dict] = {}  # anonymous id -> {"conversation_id", "user_id"}
            # every message of every chat, both directions, in the order sent: what the history
            # reads answer; a user's message keeps its signed event for a late redelivery
            self.history: list[dict] = []
            self.history_by_id: dict[str, dict] = {}  # message id -> its history entry (a reply names one)
            self.webhooks_off = False

    def reset(self) -> None:
        self.reset_oa()

    # -- set-up helpers -------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        display_name: str,
        avatar_url: str | None = None,
        *,
        follower: bool = True,
        send_error: int | None = None,
        person: str | None = None,
    ) -> dict:
        """Register a user; `send_error` makes every CS message to them fail with that code.
        `person` names who they are across the app's OAs: two OAs' users of one app with the same
        `person` have their own user ids and one `user_id_by_app`, as Zalo gives one person."""
        avatar = avatar_url or f"https://s120-ava-talk.zadn.vn/sim/{user_id}.jpg"
        user = {
            "user_id": str(user_id),
            "display_name": display_name,
            "avatar": avatar,
            "follower": follower,
            "send_error": send_error,
            "last_interaction": self.clock(),
            **({"person": str(person)} if person else {}),
        }
        with self.lock:
            self.users[str(user_id)] = user
        return dict(user)

    def user_id_by_app(self, user_id: str) -> str:
        """A stable app-scoped id, different from the OA-scoped one (docs/interface.md, Z6): one
        per person (`add_user(person=...)`) across the app's OAs."""
        with self.lock:
            who = (self.users.get(str(user_id)) or {}).get("person") or str(user_id)
        return str(int(hashlib.sha256(f"{self.app_id}:{who}".encode()).hexdigest()[:15], 16))

    def add_media(self, name: str, data: bytes, content_type: str) -> str:
        """Serve `data` at `<base_url>/cdn/<name>`, as Zalo's CDN would; returns that URL."""
        with self.lock:
            self.sim.media[name] = (bytes(data), content_type)
        return self.media_url(name)

    def media_url(self, name: str) -> str:
        return f"{self.sim.base_url}/cdn/{name}"

    def issue_auth_code(self, code_challenge: str | None = None) -> str:
        """A single-use authorization code, as the OAuth callback would receive it."""
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.auth_codes[code] = (code_challenge or "", self.clock())
        return code

    def expire_access_token(self) -> None:
        """Make the current access token stale, as if its 25 hours were over."""
        with self.lock:
            self.access_expires_at = self.clock() - 1

    def revoke_refresh_token(self) -> None:
        """The refresh token dies (expired or revoked): the OA must be re-connected."""
        with self.lock:
            self.refresh_revoked = True

    def expire_upload(self, ident: str) -> None:
        """Sending this attachment_id/token now answers -100, as after Zalo's 7 days."""
        with self.lock:
            self.sim.uploads[ident]["expired"] = True

    def upload(self, ident: str) -> dict:
        """An upload by attachment_id or token: kind, filename, content_type and `data` bytes."""
        with self.lock:
            return dict(self.sim.uploads[ident])

    def messages_to(self, user_id: str) -> list[dict]:
        """What the OA sent the user through the CS API (not to them as an anonymous visitor)."""
        with self.lock:
            return [dict(m) for m in self.sent if m["user_id"] == str(user_id) and not m.get("anonymous_id")]

    def messages_to_visitor(self, anonymous_id: str) -> list[dict]:
        with self.lock:
            return [dict(m) for m in self.sent if m.get("anonymous_id") == str(anonymous_id)]

    def visitor_of(self, user_id: str) -> tuple[str, str]:
        """The anonymous id and conversation of a user who "goes anonymous" in the web chat
        widget: stable per user, and unlike an OA user id (hex, not digits)."""
        digest = hashlib.sha256(f"{self.oa_id}:anonymous:{user_id}".encode()).hexdigest()
        anonymous_id, conversation_id = digest[:20], digest[20:40]
        with self.lock:
            self.visitors.setdefault(anonymous_id, {"conversation_id": conversation_id, "user_id": str(user_id)})
        return anonymous_id, conversation_id

    # -- HTTP ----------------------------------------------------------------------------

    def _token_error(self):
        """-216 unless the header carries the current, unexpired access token."""
        given = request.headers.get("access_token", "")
        with self.lock:
            valid = given == self.access_token and self.clock() < self.access_expires_at
        return None if valid else _error(-216)

    def _message_cs(self):
        denied = self._token_error()
        if denied:
            return denied
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("recipient"), dict):
            return _error(-201, "recipient is invalid")
        with self.lock:
            user_id = self._recipient_user(body["recipient"])
            problem = self._recipient_problem(user_id) or self._message_problem(body.get("message"))
            problem = problem or self._window_problem(user_id)
            if problem:
                return _error(*problem)
            record = self._record(user_id, body["message"], request.headers.get("access_token", ""))
            record["recipient"] = dict(body["recipient"])  # as sent: a user id, or the message replied to
            quota = self._quota(user_id)
        self._schedule_echo(record)
        data = {"message_id": record["message_id"], "user_id": user_id, "sent_time": str(record["time_ms"])}
        return _ok({**data, **({"quota": quota} if quota else {})})

    def _recipient_user(self, recipient: dict) -> str:
        """`user_id`, or the user who sent the message a reply names (`message_id`)."""
        if recipient.get("message_id"):
            wanted = str(recipient["message_id"])
            found = self.history_by_id.get(wanted)
            return found["user_id"] if found and found["src"] == 1 else ""
        return str(recipient.get("user_id") or "")

    def _silence(self, user_id: str) -> float:
        return self.clock() - self.users[user_id]["last_interaction"]

    def _window_problem(self, user_id: str):
        return (-230, None) if self._silence(user_id) > CS_WINDOW else None

    def _quota(self, user_id: str) -> dict | None:
        """What paid: the free reply quota inside 48 h; no quota object (billed) after."""
        return {"quota_type": "reply"} if self._silence(user_id) <= FREE_WINDOW else None

    def _message_v2(self):
        """The v2 message API: still open for anonymous conversations only (docs/interface.md, Z16)."""
        denied = self._token_error()
        if denied:
            return denied
        body = request.get_json(silent=True)
        recipient = body.get("recipient") if isinstance(body, dict) else None
        if not isinstance(recipient, dict) or not recipient.get("anonymous_id"):
            return _error(-240)
        anonymous_id, conversation_id = str(recipient["anonymous_id"]), str(recipient.get("conversation_id") or "")
        with self.lock:
            visitor = self.visitors.get(anonymous_id)
            if visitor is None or visitor["conversation_id"] != conversation_id:
                return _error(-201, "conversation_id is invalid")
            problem = self._message_problem(body.get("message"))
            if problem:
                return _error(*problem)
            token = request.headers.get("access_token", "")
            record = self._record(visitor["user_id"], body["message"], token, anonymous_id)
            record["recipient"] = dict(recipient)
        self._schedule_echo(record)
        return _ok({"message_id": record["message_id"]})

    def _recipient_problem(self, user_id: str):
        if not user_id:
            return -201, "user_id is invalid"
        user = self.users.get(user_id)
        if user is None:
            return -213, None
        return (user["send_error"], None) if user["send_error"] else None

    def _message_problem(self, message):
        if not isinstance(message, dict):
            return -201, "message is invalid"
        text = message.get("text")
        if text is not None and (not isinstance(text, str) or len(text) > TEXT_MAX):
            return -201, f"text is invalid: at most {TEXT_MAX} characters"
        quoted = message.get("quote_message_id")
        if quoted is not None and quoted not in self._known_message_ids():
            return -201, "quote_message_id is invalid"
        if "attachment" not in message:
            return None if text else (-201, "message is invalid: no text and no attachment")
        return self._attachment_problem(message["attachment"])

    def _known_message_ids(self) -> set:
        """Ids a quote may name: what users sent this OA and what the OA sent."""
        return {w["msg_id"] for w in self.webhooks if w["msg_id"]} | {m["message_id"] for m in self.sent}

    def _attachment_problem(self, attachment):
        if not isinstance(attachment, dict) or not isinstance(attachment.get("payload"), dict):
            return -201, "attachment is invalid"
        kind, payload = attachment.get("type"), attachment["payload"]
        if kind == "file":
            return self._upload_ref_problem(payload.get("token"), "file")
        if kind != "template":
            return -201, "attachment.type is invalid"
        if payload.get("template_type") != "media":
            return None  # other templates (request_user_info, buttons) are not modelled
        return self._media_problem(payload.get("elements"))

    def _media_problem(self, elements):
        if not isinstance(elements, list) or len(elements) != 1 or not isinstance(elements[0], dict):
            return -201, "elements is invalid: exactly one element"
        element = elements[0]
        kind = element.get("media_type")
        if kind == "image":
            return self._image_element_problem(element)
        if kind == "gif":
            if not all(isinstance(element.get(k), int) and element[k] > 0 for k in ("width", "height")):
                return -201, "width and height are required for a gif"
            return self._upload_ref_problem(element.get("attachment_id"), "gif")
        if kind == "sticker":
            return None if element.get("attachment_id") else (-201, "attachment_id is invalid")
        return -201, "media_type is invalid"

    def _image_element_problem(self, element: dict):
        has_id, url = bool(element.get("attachment_id")), element.get("url")
        if has_id == bool(url):
            return -201, "image needs exactly one of attachment_id and url"
        if url:
            return None if str(url).startswith(("http://", "https://")) else (-201, "url is invalid")
        return self._upload_ref_problem(element["attachment_id"], "image")

    def _upload_ref_problem(self, ident, kind: str):
        found = self.sim.uploads.get(str(ident or ""))
        field = "token" if kind == "file" else "attachment_id"
        if not found or found["kind"] != kind:
            return -201, f"{field} is invalid"
        return (-100, None) if found.get("expired") else None

    def _record(self, user_id: str, message: dict, access_token: str, anonymous_id: str = "") -> dict:
        """What the OA sent, with the OA and token that sent it (several OAs share the routes);
        what it sent a user as an anonymous visitor stays out of their chat's history."""
        now = self.clock()
        record = {
            "message_id": _hex_id(),
            "user_id": user_id,
            "recipient": {"user_id": user_id},
            "message": message,
            "time": now,
            "time_ms": int(now * 1000),
            "oa_id": self.oa_id,
            "access_token": access_token,
        }
        if anonymous_id:
            record["anonymous_id"] = anonymous_id
        self.sent.append(record)
        if not anonymous_id:
            self._remember(user_id, 0, record["message_id"], record["time_ms"], message)
        return record

    def _remember(self, user_id: str, src: int, message_id: str, time_ms: int, message: dict, event=None) -> None:
        """One message into the chat's history (`src` 1: the user wrote it, 0: the OA)."""
        entry = {
            "user_id": str(user_id),
            "src": src,
            "message_id": message_id,
            "time_ms": int(time_ms),
            "message": message,
            "event": event,
        }
        with self.lock:
            self.history.append(entry)
            self.history_by_id.setdefault(message_id, entry)

    def _upload(self, kind: str):
        denied = self._token_error()
        if denied:
            return denied
        upload = request.files.get("file")
        if upload is None:
            return _error(-201, "file is invalid: send the multipart field 'file'")
        data, filename = upload.read(), upload.filename or ""
        problem = upload_problem(kind, filename, data)
        if problem:
            return _error(*problem)
        ident = secrets.token_hex(16) if kind != "file" else secrets.token_urlsafe(48)
        with self.lock:
            self.sim.uploads[ident] = {
                "id": ident,
                "kind": kind,
                "filename": filename,
                "data": data,
                "content_type": upload.mimetype,
                "size": len(data),
                "expired": False,
            }
        return _ok({"token" if kind == "file" else "attachment_id": ident})

    def _user_detail(self):
        denied = self._token_error()
        if denied:
            return denied
        try:
            query = json.loads(request.args.get("data", ""))
        except ValueError:
            query = None
        user_id = str(query.get("user_id", "")) if isinstance(query, dict) else ""
        with self.lock:
            user = dict(self.users[user_id]) if user_id in self.users else None
        return _ok(self._profile(user)) if user else _error(-201, "user_id is invalid")

    def _profile(self, user: dict) -> dict:
        avatar, uid = user["avatar"], user["user_id"]
        last = datetime.fromtimestamp(user["last_interaction"], VN).strftime("%d/%m/%Y")
        return {
            "user_id": uid,
            "user_id_by_app": self.user_id_by_app(uid),
            "user_external_id": "",
            "display_name": user["display_name"],
            "user_alias": user["display_name"],
            "is_sensitive": False,
            "user_last_interaction_date": last,
            "user_is_follower": user["follower"],
            "avatar": avatar,
            "avatars": {"120": avatar, "240": avatar.replace("s120-", "s240-")},
            "dynamic_param": "",
            "tags_and_notes_info": {"notes": [], "tag_names": []},
            "shared_info": {"address": "", "city": "", "district": "", "phone": 0, "name": "", "user_dob": ""},
        }

    def _getoa(self):
        denied = self._token_error()
        if denied:
            return denied
        with self.lock:
            followers = sum(1 for u in self.users.values() if u["follower"])
        return _ok({**OA_PROFILE, "oa_id": self.oa_id, "name": self.name, "num_follower": followers})

    def _recent_chats(self):
        """Each chat once, as its latest message, the most recently active chat first."""
        denied, page = self._token_error(), self._history_page()
        if denied or isinstance(page, Response):
            return denied or page
        offset, count, _ = page
        with self.lock:
            latest: dict[str, dict] = {}
            for record in self._newest_first(self.history):
                latest.setdefault(record["user_id"], record)
            rows = list(latest.values())[offset : offset + count]
            return _ok([self._history_item(r) for r in rows])

    def _conversation(self):
        """One user's messages, both directions, newest first."""
        denied, page = self._token_error(), self._history_page()
        if denied or isinstance(page, Response):
            return denied or page
        offset, count, user_id = page
        with self.lock:
            mine = self._newest_first([h for h in self.history if h["user_id"] == user_id])
            return _ok([self._history_item(r) for r in mine[offset : offset + count]])

    def _history_page(self):
        """(offset, count, user_id) of `data={...}`, or the -201 answer to a bad page."""
        try:
            query = json.loads(request.args.get("data", ""))
            offset, count = int(query.get("offset", 0)), int(query.get("count", HISTORY_PAGE))
        except (ValueError, TypeError, AttributeError):
            return _error(-201, "data is invalid")
        if offset < 0 or not 0 < count <= HISTORY_PAGE:
            return _error(-201, f"offset or count is invalid: count is 1..{HISTORY_PAGE}")
        return offset, count, str(query.get("user_id") or "")

    @staticmethod
    def _newest_first(records: list[dict]) -> list[dict]:
        return [r for _, r in sorted(enumerate(records), key=lambda p: (p[1]["time_ms"], p[0]), reverse=True)]

    def _history_item(self, record: dict) -> dict:
        """A message as the history reads show it: who wrote to whom, when, and its content."""
        user = self.users.get(record["user_id"]) or {}
        user_side = (record["user_id"], user.get("display_name", ""), user.get("avatar", ""))
        oa_side = (self.oa_id, OA_PROFILE["name"], OA_PROFILE["avatar"])
        (from_id, from_name, from_avatar), (to_id, to_name, to_avatar) = (
            (user_side, oa_side) if record["src"] == 1 else (oa_side, user_side)
        )
        sent = datetime.fromtimestamp(record["time_ms"] / 1000, VN).strftime("%H:%M:%S %d/%m/%Y")
        return {
            "src": record["src"],
            "time": record["time_ms"],
            "sent_time": sent,
            "from_id": from_id,
            "from_display_name": from_name,
            "from_avatar": from_avatar,
            "to_id": to_id,
            "to_display_name": to_name,
            "to_avatar": to_avatar,
            "message_id": record["message_id"],
            **history_content(record["message"], self._upload_url),
        }

    def _upload_url(self, ident) -> str:
        """An uploaded image as the history links it (the simulator serves its bytes there)."""
        return f"{self.sim.base_url}/_sim/uploads/{ident}" if ident in self.sim.uploads else ""

    def _cdn(self, name: str):
        with self.lock:
            found = self.sim.media.get(name)
        if found is None:
            return Response("not found", status=404, mimetype="text/plain")
        return Response(found[0], mimetype=found[1])

    # -- OAuth v4 (docs/interface.md, Z13, Z14) --------------------------------------------

    def _access_token(self):
        if request.headers.get("secret_key", "") != self.app_secret:
            return _oauth_error(-14004, "Invalid secret key")
        form = request.form
        if form.get("app_id", "") != self.app_id:
            return _oauth_error(-14002, "Invalid appId")
        grant = form.get("grant_type", "")
        with self.lock:
            if grant == "refresh_token":
                return self._grant_refresh(form.get("refresh_token", ""))
            if grant == "authorization_code":
                return self._grant_code(form.get("code", ""), form.get("code_verifier", ""))
        return _oauth_error(-14018, "Invalid grant type")

    def _grant_refresh(self, refresh_token: str):
        """Refresh tokens are single use: only the current one works, and only once. An OA
        that never granted the app has none."""
        if (
            self.refresh_revoked
            or not self.refresh_token
            or not secrets.compare_digest(refresh_token, self.refresh_token)
        ):
            return _oauth_error(-14014, "Invalid refresh token", "refresh token is invalid, expired or already used")
        self.refresh_count += 1
        return self._rotate()

    def _grant_code(self, code: str, verifier: str):
        challenge, issued = self.auth_codes.pop(code, (None, 0.0))
        if challenge is None or self.clock() - issued > AUTH_CODE_TTL:
            return _oauth_error(-14005, "Invalid authorization code", "code is invalid, expired or used")
        if challenge and _s256(verifier) != challenge:
            return _oauth_error(-14005, "Invalid authorization code", "code_verifier does not match")
        self.code_exchanges += 1
        return self._rotate()

    def _rotate(self):
        """A new pair; the previous access token stops working at once (docs/interface.md, Z14)."""
        self.access_token = "sim-access-" + secrets.token_urlsafe(24)
        self.refresh_token = "sim-refresh-" + secrets.token_urlsafe(24)
        self.access_expires_at = self.clock() + self.access_ttl
        self.refresh_revoked = False
        return jsonify(
            {"access_token": self.access_token, "refresh_token": self.refresh_token, "expires_in": str(self.access_ttl)}
        )

    def _permission(self):
        """This OA granted on the consent page: redirect with a fresh code."""
        if request.args.get("app_id", "") != self.app_id:
            return _oauth_error(-14002, "Invalid appId")
        redirect_uri = request.args.get("redirect_uri", "")
        if not redirect_uri.startswith(("http://", "https://")):
            return _oauth_error(-14003, "Invalid redirect uri")
        challenge = request.args.get("code_challenge", "")
        query = {
            "code": self.issue_auth_code(challenge),
            "oa_id": self.oa_id,
            "state": request.args.get("state", ""),
            "code_challenge": challenge,
        }
        return redirect(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{urlencode(query)}")

    # -- webhooks to the bridge (docs/interface.md, Z4-Z6) -----------------------------------

    def send_user_event(
        self,
        bridge_url: str,
        event_name: str,
        user_id: str,
        message: dict,
        *,
        timestamp_ms: int | None = None,
        duplicates: int = 1,
        msg_id: str | None = None,
    ) -> SentWebhook:
        """A `user_send_*` (or other user → OA) event, signed, POSTed `duplicates` times."""
        user_id = str(user_id)
        self._touch_user(user_id)
        body = {**message, "msg_id": msg_id or message.get("msg_id") or _hex_id()}
        event = {
            "app_id": self.app_id,
            "sender": {"id": user_id},
            "user_id_by_app": self.user_id_by_app(user_id),
            "recipient": {"id": self.oa_id},
            "event_name": event_name,
            "message": body,
            "timestamp": self._ts(timestamp_ms),
        }
        self._remember(user_id, 1, body["msg_id"], int(event["timestamp"]), body, event)
        if self.webhooks_off:
            return self._dropped(event)
        return self.deliver(bridge_url, event, duplicates)

    def send_anonymous_event(
        self,
        bridge_url: str,
        event_name: str,
        anonymous_id: str,
        conversation_id: str,
        message: dict,
        *,
        duplicates: int = 1,
    ) -> SentWebhook:
        """An `anonymous_send_*` event of a web chat visitor: no OA user, the conversation id
        inside `message`."""
        with self.lock:
            known = self.visitors.setdefault(str(anonymous_id), {"user_id": ""})
            known["conversation_id"] = str(conversation_id)
        body = {**message, "msg_id": message.get("msg_id") or _hex_id(), "conversation_id": str(conversation_id)}
        event = {
            "app_id": self.app_id,
            "sender": {"id": str(anonymous_id)},
            "recipient": {"id": self.oa_id},
            "event_name": event_name,
            "message": body,
            "timestamp": self._ts(None),
        }
        return self.deliver(bridge_url, event, duplicates)

    def _dropped(self, event: dict) -> SentWebhook:
        """A webhook Zalo never got through (its retries ran out, or the webhook is off)."""
        raw, headers = self.sign(event)
        with self.lock:
            self.webhooks.append(
                {"event_name": event["event_name"], "statuses": [], "msg_id": event["message"]["msg_id"]}
            )
        return SentWebhook(event, raw, [headers], [])

    def redeliver(self, bridge_url: str, msg_id: str) -> SentWebhook:
        """Zalo POSTs a recorded user message's webhook again, late (whatever `webhooks_off` says)."""
        with self.lock:
            event = (self.history_by_id.get(msg_id) or {}).get("event")
        if event is None:
            raise KeyError(f"no user message {msg_id!r}")
        return self.deliver(bridge_url, event)

    def set_webhooks(self, on: bool) -> None:
        """Switch webhooks on or off, as the OA's app page on Zalo Developers does."""
        with self.lock:
            self.webhooks_off = not on

    def send_text(self, bridge_url: str, user_id: str, text: str, **kw) -> SentWebhook:
        return self.send_user_event(bridge_url, "user_send_text", user_id, text_message(text), **kw)

    def send_image(
        self,
        bridge_url: str,
        user_id: str,
        name: str,
        data: bytes,
        content_type: str = "image/jpeg",
        caption: str | None = None,
        **kw,
    ) -> SentWebhook:
        """Put the image on the CDN, then send the event pointing at it."""
        kind = "gif" if content_type == "image/gif" else "image"
        message = image_message(self.add_media(name, data, content_type), caption, kind)
        return self.send_user_event(bridge_url, f"user_send_{kind}", user_id, message, **kw)

    def send_file(
        self, bridge_url: str, user_id: str, name: str, data: bytes, content_type: str = "application/pdf", **kw
    ) -> SentWebhook:
        message = file_message(self.add_media(name, data, content_type), name, data)
        return self.send_user_event(bridge_url, "user_send_file", user_id, message, **kw)

    def _touch_user(self, user_id: str) -> None:
        """A user who writes exists and has just interacted with the OA."""
        with self.lock:
            user = self.users.get(user_id)
            if user is None:
                self.add_user(user_id, f"Zalo User {user_id[-4:]}")
            else:
                user["last_interaction"] = self.clock()

    def send_oa_echo(
        self, bridge_url: str, message_id: str | None = None, *, admin_id: str | None = None, duplicates: int = 1
    ) -> SentWebhook:
        """The `oa_send_*` echo Zalo fires for a message the OA sent (default: the last one)."""
        with self.lock:
            record = next((m for m in reversed(self.sent) if message_id in (None, m["message_id"])), None)
            if record is None:
                raise KeyError(f"no message {message_id!r} was sent by the OA")
            event_name, body = self._echo_body(record["message"])
        body["msg_id"] = record["message_id"]
        if record.get("anonymous_id"):  # an answer to a web chat visitor echoes as oa_send_anonymous_*
            body["conversation_id"] = record["recipient"]["conversation_id"]
            name = event_name.replace("oa_send_", "oa_send_anonymous_")
            event = self._oa_event(record["anonymous_id"], name, body, None)
            event.pop("user_id_by_app")
            return self.deliver(bridge_url, event, duplicates)
        return self.deliver(bridge_url, self._oa_event(record["user_id"], event_name, body, admin_id), duplicates)

    def send_admin_message(
        self, bridge_url: str, user_id: str, text: str, *, admin_id: str = CONSOLE_ADMIN_ID, duplicates: int = 1
    ) -> SentWebhook:
        """A message an OA admin typed in Zalo's own console: only its echo reaches the bridge."""
        msg_id = _hex_id()
        with self.lock:
            self.console_messages.append(
                {
                    "message_id": msg_id,
                    "user_id": str(user_id),
                    "text": text,
                    "admin_id": admin_id,
                    "time": self.clock(),
                }
            )
        body = {"text": text, "msg_id": msg_id}
        event = self._oa_event(str(user_id), "oa_send_text", body, admin_id)
        self._remember(str(user_id), 0, msg_id, int(event["timestamp"]), {"text": text})
        if self.webhooks_off:
            return self._dropped(event)
        return self.deliver(bridge_url, event, duplicates)

    def _echo_body(self, message: dict) -> tuple[str, dict]:
        """Event name and message of an echo, from the body the OA sent."""
        attachment = message.get("attachment") or {}
        body = {"text": message["text"]} if message.get("text") else {}
        if attachment.get("type") == "file":
            upload = self.sim.uploads.get(attachment["payload"].get("token"), {})
            payload = {"name": upload.get("filename", ""), "size": str(upload.get("size", 0)), "url": ""}
            return "oa_send_file", {**body, "attachments": [{"type": "file", "payload": payload}]}
        elements = (attachment.get("payload") or {}).get("elements") or [{}]
        kind = elements[0].get("media_type")
        if kind in ("image", "gif", "sticker"):
            payload = {"url": elements[0].get("url", ""), "thumbnail": elements[0].get("url", "")}
            return f"oa_send_{kind}", {**body, "attachments": [{"type": kind, "payload": payload}]}
        return "oa_send_text", body

    def _oa_event(self, user_id: str, event_name: str, message: dict, admin_id: str | None) -> dict:
        sender = {"id": self.oa_id, **({"admin_id": admin_id} if admin_id else {})}
        return {
            "app_id": self.app_id,
            "sender": sender,
            "recipient": {"id": user_id},
            "event_name": event_name,
            "message": message,
            "user_id_by_app": self.user_id_by_app(user_id),
            "timestamp": self._ts(None),
        }

    def _schedule_echo(self, record: dict) -> None:
        """Real Zalo echoes API sends too, sometimes before the send call returns."""
        if self.echo_url:
            timer = threading.Timer(self.echo_delay, self.send_oa_echo, args=(self.echo_url, record["message_id"]))
            timer.daemon = True
            timer.start()

    def send_follow(
        self,
        bridge_url: str,
        user_id: str,
        *,
        event_name: str = "follow",
        source: str = "oa_profile",
        duplicates: int = 1,
    ) -> SentWebhook:
        """`follow`/`unfollow` use `oa_id` and `follower.id` instead of sender/recipient."""
        event = {
            "app_id": self.app_id,
            "oa_id": self.oa_id,
            "follower": {"id": str(user_id)},
            "user_id_by_app": self.user_id_by_app(str(user_id)),
            "source": source,
            "event_name": event_name,
            "timestamp": self._ts(None),
        }
        sent = self.deliver(bridge_url, event, duplicates)
        self._log_person_event(sent)
        return sent

    def send_submit_info(self, bridge_url: str, user_id: str, info: dict | None = None, *, duplicates: int = 1):
        """`user_submit_info`: the user filled in the OA's request-user-info form (zalo.md §3.8:
        sender the user, recipient the OA, the answers in `info`, phone as "84…")."""
        user_id = str(user_id)
        answers = info if info is not None else {"name": "Nguyễn Thị Lan", "phone": "84912345678"}
        event = {
            "app_id": self.app_id,
            "sender": {"id": user_id},
            "recipient": {"id": self.oa_id},
            "user_id_by_app": self.user_id_by_app(user_id),
            "event_name": "user_submit_info",
            "timestamp": self._ts(None),
            "info": {str(k): v for k, v in dict(answers).items()},
        }
        sent = self.deliver(bridge_url, event, duplicates)
        self._log_person_event(sent)
        return sent

    def _log_person_event(self, sent: SentWebhook) -> None:
        user = (sent.get("follower") or sent.get("sender") or {}).get("id", "")
        entry = {"user_id": user, "event_name": sent["event_name"], "time_ms": int(sent["timestamp"])}
        with self.lock:
            self.person_events.append({**entry, "info": sent.get("info"), "statuses": sent.statuses})

    def send_seen(
        self, bridge_url: str, user_id: str, msg_ids: list[str] | None = None, *, duplicates: int = 1
    ) -> SentWebhook:
        """`user_seen_message`: sender is the OA, `msg_ids` is a list (default: all sent to the user)."""
        ids = msg_ids if msg_ids is not None else [m["message_id"] for m in self.messages_to(user_id)]
        return self.deliver(
            bridge_url, self._oa_event(str(user_id), "user_seen_message", {"msg_ids": list(ids)}, None), duplicates
        )

    def send_received(
        self, bridge_url: str, user_id: str, msg_id: str | None = None, *, duplicates: int = 1
    ) -> SentWebhook:
        """`user_received_message`: one `msg_id` (default: the last message sent to the user)."""
        msg_id = msg_id or self.messages_to(user_id)[-1]["message_id"]
        event = self._oa_event(str(user_id), "user_received_message", {"msg_id": msg_id}, None)
        return self.deliver(bridge_url, event, duplicates)

    def send_reaction(
        self, bridge_url: str, user_id: str, msg_id: str, react_icon: str = "/-heart", *, duplicates: int = 1
    ) -> SentWebhook:
        """`user_reacted_message`: sent by the user, about `msg_id`; `/-remove` takes it back."""
        user_id = str(user_id)
        event = {
            "app_id": self.app_id,
            "sender": {"id": user_id},
            "user_id_by_app": self.user_id_by_app(user_id),
            "recipient": {"id": self.oa_id},
            "event_name": "user_reacted_message",
            "message": {"msg_id": msg_id, "react_icon": react_icon},
            "timestamp": self._ts(None),
        }
        with self.lock:
            self.reactions.append({"user_id": user_id, "msg_id": msg_id, "react_icon": react_icon})
        return self.deliver(bridge_url, event, duplicates)

    def advance_clock(self, seconds: float) -> dict:
        """Move Zalo's clock (negative: back): event times and reply windows follow it."""
        with self.lock:
            self.sim.clock_offset += float(seconds)
            return {"offset_seconds": self.sim.clock_offset, "now": self.clock()}

    def send_probe(self, bridge_url: str) -> SentWebhook:
        """The console's URL check: no timestamp and no signature (docs/interface.md, Z5)."""
        return self.deliver(bridge_url, {"app_id": self.app_id, "oa_id": self.oa_id})

    def sign(self, event: dict) -> tuple[bytes, dict]:
        """What Zalo sends for `event` on the first attempt: the bytes and their headers, signed
        with the OA secret key (an event without a timestamp, the console's probe, is unsigned)."""
        raw = serialise(event)
        headers = {"Content-Type": "application/json"}
        if "timestamp" in event:
            headers["X-ZEvent-Signature"] = compute_mac(self.app_id, raw, str(event["timestamp"]), self.oa_secret_key)
        return raw, headers

    def deliver(self, bridge_url: str, event: dict, duplicates: int = 1) -> SentWebhook:
        """Serialise and sign once, POST; retries carry `num_retry`."""
        raw, first = self.sign(event)

        def headers_for(attempt: int) -> dict:
            return {**first, **({"num_retry": str(attempt)} if attempt else {})}

        headers, statuses = post_webhook(bridge_url, raw, headers_for, duplicates)
        sent = SentWebhook(event, raw, headers, statuses)
        with self.lock:
            self.webhooks.append(
                {
                    "event_name": event.get("event_name", ""),
                    "statuses": statuses,
                    "msg_id": (event.get("message") or {}).get("msg_id"),
                }
            )
        return sent

    def _ts(self, timestamp_ms: int | None) -> str:
        return str(int(timestamp_ms if timestamp_ms is not None else self.clock() * 1000))

    # -- the simulated user's phone (the sandbox page) -----------------------------------------

    def phone_send(
        self,
        bridge_url: str,
        user_id: str,
        kind: str,
        text: str = "",
        file: dict | None = None,
        latitude: str = "",
        longitude: str = "",
        anonymous: bool = False,
    ) -> SentWebhook:
        """What the user's Zalo app does: put media on the CDN, send the event, keep a copy to show.
        `anonymous`: the same person writes from the OA's web chat widget, as a visitor.

        `file` is `{"name", "content_type", "data"}` with base64 data (the page sends JSON).
        """
        event_name, message = self._phone_message(kind, text, file, latitude, longitude)
        if anonymous:
            sent = self._visitor_send(bridge_url, str(user_id), event_name, message)
        else:
            sent = self.send_user_event(bridge_url, event_name, str(user_id), message)
        with self.lock:
            self.phone_log.append(
                {
                    "user_id": str(user_id),
                    "event_name": sent["event_name"],
                    "message": sent["message"],
                    "time_ms": int(sent["timestamp"]),
                    "statuses": sent.statuses,
                    "anonymous": anonymous,
                }
            )
        return sent

    def _visitor_send(self, bridge_url: str, user_id: str, event_name: str, message: dict) -> SentWebhook:
        """Zalo's widget knows four anonymous events: text, image, file, sticker (docs/interface.md, Z16)."""
        kind = event_name.removeprefix("user_send_").replace("gif", "image")
        if kind not in ("text", "image", "file", "sticker"):
            raise ValueError("an anonymous visitor sends text, an image, a file or a sticker")
        anonymous_id, conversation_id = self.visitor_of(user_id)
        return self.send_anonymous_event(bridge_url, f"anonymous_send_{kind}", anonymous_id, conversation_id, message)

    def _phone_message(self, kind: str, text: str, file: dict | None, latitude: str, longitude: str):
        if kind == "text" and text:
            return "user_send_text", text_message(text)
        if kind == "location":
            return "user_send_location", location_message(latitude, longitude, text or None)
        if kind not in ("image", "sticker", "file") or not isinstance(file, dict):
            raise ValueError("kind is text (with text), location, or image/sticker/file (with file)")
        name, data = str(file.get("name") or kind), base64.b64decode(file.get("data") or "")
        url = self.add_media(
            f"{secrets.token_hex(6)}/{_safe_name(name)}",
            data,
            str(file.get("content_type") or "application/octet-stream"),
        )
        if kind == "file":
            return "user_send_file", file_message(url, name, data)
        if kind == "sticker":
            return "user_send_sticker", sticker_message(url)
        gif = sniff(data) == "gif"
        return f"user_send_{'gif' if gif else 'image'}", image_message(url, text or None, "gif" if gif else "image")

    def phone(self) -> dict:
        """Every chat as the users see it: their messages, the OA's (with upload metadata), no tokens."""
        with self.lock:
            uploads = {
                i: {k: u[k] for k in ("kind", "filename", "content_type", "size")} for i, u in self.sim.uploads.items()
            }
            return {
                "users": [dict(u, user_id_by_app=self.user_id_by_app(i)) for i, u in self.users.items()],
                "user_messages": [dict(m) for m in self.phone_log],
                "oa_messages": [{k: v for k, v in m.items() if k not in ("time", "access_token")} for m in self.sent],
                "console_messages": list(self.console_messages),
                "reactions": list(self.reactions),
                "person_events": [dict(e) for e in self.person_events],
                "uploads": uploads,
                "refresh_count": self.refresh_count,
                "visitors": {i: dict(v) for i, v in self.visitors.items()},
            }

    # -- inspection and HTTP controls ---------------------------------------------------------

    def state(self) -> dict:
        with self.lock:
            return {
                "app_id": self.app_id,
                "oa_id": self.oa_id,
                "messages": [{k: v for k, v in m.items() if k != "time"} for m in self.sent],
                "console_messages": list(self.console_messages),
                "uploads": [{k: v for k, v in u.items() if k != "data"} for u in self.sim.uploads.values()],
                "tokens": {
                    "access_token": self.access_token,
                    "refresh_token": self.refresh_token,
                    "access_expires_at": self.access_expires_at,
                    "access_valid": self.clock() < self.access_expires_at,
                    "refresh_revoked": self.refresh_revoked,
                    "refresh_count": self.refresh_count,
                    "code_exchanges": self.code_exchanges,
                },
                "refresh_count": self.refresh_count,
                "users": [dict(u, user_id_by_app=self.user_id_by_app(i)) for i, u in self.users.items()],
                "media": sorted(self.sim.media),
                "webhooks": list(self.webhooks),
                "webhooks_off": self.webhooks_off,
                "history": [{k: v for k, v in h.items() if k != "event"} for h in self.history],
                "faults": self.faults.snapshot(),
            }

    def actions(self) -> dict:
        """Demo/UI controls: POST /_sim/actions/<name> with the method's keyword arguments."""
        return {
            "user_event": self.send_user_event,
            "text": self.send_text,
            "follow": self.send_follow,
            "submit_info": self.send_submit_info,
            "seen": self.send_seen,
            "received": self.send_received,
            "react": self.send_reaction,
            "advance_clock": self.advance_clock,
            "admin_message": self.send_admin_message,
            "oa_echo": self.send_oa_echo,
            "add_user": self.add_user,
            "expire_access_token": self.expire_access_token,
            "revoke_refresh_token": self.revoke_refresh_token,
            "phone_send": self.phone_send,
            "anonymous_event": self.send_anonymous_event,
            "redeliver": self.redeliver,
            "webhooks": self.set_webhooks,
        }


class ZaloSimulator(ZaloOA):
    """The Zalo partner: its first OA (the one the bridge's default connection uses) plus any
    added with `add_oa()`. API calls find their OA by the `access_token` header, OAuth calls by
    `app_id` (and the refresh token or code); the fault rules apply per app."""

    def __init__(
        self,
        app_id: str,
        oa_id: str,
        oa_secret_key: str,
        app_secret: str,
        access_token: str,
        refresh_token: str,
        access_ttl: int = 90000,
        *,
        base_url: str = "",
        clock=time.time,
    ):
        self.base_url, self.lock = base_url, threading.RLock()
        self.clock_offset = 0.0  # seconds Zalo's clock is moved from `clock` (advance_clock)
        self.clock = lambda: clock() + self.clock_offset
        self._faults = {str(app_id): FaultInjector(clock=clock)}
        self.uploads: dict[str, dict] = {}
        self.media: dict[str, tuple[bytes, str]] = {}
        self.extra_oas: dict[str, ZaloOA] = {}
        self._rates: dict[str, tuple[int, deque]] = {}  # app id -> (limit per minute, send times)
        super().__init__(self, app_id, oa_id, oa_secret_key, app_secret, access_token, refresh_token, access_ttl)
        self.app = self._build_app()

    def reset(self) -> None:
        """Back to the constructor's state: the first OA only, its initial tokens, no users,
        messages, uploads or faults."""
        with self.lock:
            self.clock_offset = 0.0
            self.reset_oa()
            self.uploads.clear()
            self.media.clear()
            self.extra_oas.clear()
            self._faults = {self.app_id: self._faults[self.app_id]}
            self._rates.clear()
            self.templates.quota = QUOTA_START
        self.faults.reset()

    # -- several OAs -----------------------------------------------------------------------

    def add_oa(
        self,
        app_id: str,
        oa_id: str,
        oa_secret_key: str,
        app_secret: str,
        access_token: str | None = None,
        refresh_token: str | None = None,
        access_ttl: int | None = None,
        *,
        granted: bool = True,
        name: str = "",
    ) -> ZaloOA:
        """Another OA, of this app or another one: the handle has the same methods as the
        simulator (send_text, messages_to, expire_access_token, ...). Tokens default to ones
        named after the OA; an app has one App Secret. `granted=False`: the OA has not allowed
        the app yet, so it has no token pair until its admin grants it on the consent page."""
        app_id, oa_id = str(app_id), str(oa_id)
        with self.lock:
            if oa_id in self.oas():
                raise ValueError(f"OA {oa_id} exists")
            known = [o.app_secret for o in self.oas().values() if o.app_id == app_id]
            if known and known[0] != app_secret:
                raise ValueError(f"app {app_id} has another App Secret")
            oa = ZaloOA(
                self,
                app_id,
                oa_id,
                oa_secret_key,
                app_secret,
                (access_token or f"sim-access-{oa_id}-0") if granted else "",
                (refresh_token or f"sim-refresh-{oa_id}-0") if granted else "",
                self.access_ttl if access_ttl is None else access_ttl,
            )
            oa.name = name or oa.name
            self._faults.setdefault(app_id, FaultInjector(clock=self.clock))
            self.extra_oas[oa_id] = oa
        return oa

    def oas(self) -> dict[str, ZaloOA]:
        """Every OA by id, the first one first."""
        with self.lock:
            return {self.oa_id: self, **self.extra_oas}

    def oa(self, oa_id: str) -> ZaloOA:
        return self.oas()[str(oa_id)]

    def app_faults(self, app_id: str) -> FaultInjector:
        """One app's fault rules (an unknown app gets the first app's, as unattributed calls do)."""
        with self.lock:
            return self._faults.get(str(app_id)) or self._faults[self.app_id]

    def rate_limit(self, app_id: str, per_minute: int | None) -> None:
        """Answer -32 to an app's CS messages beyond `per_minute` in any 60 s, whichever of its
        OAs sends them, as Zalo counts per app; None lifts the limit."""
        with self.lock:
            if per_minute is None:
                self._rates.pop(str(app_id), None)
            else:
                self._rates[str(app_id)] = (int(per_minute), deque())

    def _over_rate(self, app_id: str) -> bool:
        with self.lock:
            limit, stamps = self._rates.get(app_id, (None, None))
            if limit is None:
                return False
            now = self.clock()
            while stamps and stamps[0] <= now - 60:
                stamps.popleft()
            if len(stamps) >= limit:
                return True
            stamps.append(now)
            return False

    def _route_message_cs(self):
        """Only calls with a valid token count against their app's rate."""
        oa = self._by_token()
        if oa._token_error() is None and self._over_rate(oa.app_id):
            return _error(-32)
        return oa._message_cs()

    def _by_token(self) -> ZaloOA:
        """The OA whose current access token the call carries; the first OA answers the rest
        (with -216)."""
        given = request.headers.get("access_token", "")
        return next((o for o in self.oas().values() if given and o.access_token == given), self)

    def _by_app(self, app_id: str, secret: str = "") -> ZaloOA:
        """An OAuth call's OA: of its app, holding the refresh token or code `secret` if one does."""
        of_app = [o for o in self.oas().values() if o.app_id == app_id] or [self]
        return next((o for o in of_app if secret and secret in (o.refresh_token, *o.auth_codes)), of_app[0])

    def _request_faults(self) -> FaultInjector:
        """The fault rules a request is checked against: its app's, named by `app_id` (OAuth,
        `/_sim/faults?app_id=`) or by the OA its access token belongs to."""
        app_id = request.args.get("app_id") or request.form.get("app_id") or self._by_token().app_id
        return self.app_faults(app_id)

    # -- HTTP ----------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("zalo_sim")
        app.config["MAX_CONTENT_LENGTH"] = 30 * MB
        install(app, self._request_faults, _fault_body)
        self.templates = TemplateRoutes(self)  # template messages by user id and the template API
        rules = self.templates.rules() + [
            ("/v3.0/oa/message/cs", "message_cs", self._route_message_cs, "POST"),
            ("/v2.0/oa/message", "message_v2", lambda: self._by_token()._message_v2(), "POST"),
            ("/v2.0/oa/upload/image", "upload_image", lambda: self._by_token()._upload("image"), "POST"),
            ("/v2.0/oa/upload/gif", "upload_gif", lambda: self._by_token()._upload("gif"), "POST"),
            ("/v2.0/oa/upload/file", "upload_file", lambda: self._by_token()._upload("file"), "POST"),
            ("/v3.0/oa/user/detail", "user_detail", lambda: self._by_token()._user_detail(), "GET"),
            ("/v2.0/oa/getoa", "getoa", lambda: self._by_token()._getoa(), "GET"),
            ("/v2.0/oa/listrecentchat", "listrecentchat", lambda: self._by_token()._recent_chats(), "GET"),
            ("/v2.0/oa/conversation", "conversation", lambda: self._by_token()._conversation(), "GET"),
            ("/v4/oa/access_token", "access_token", self._route_access_token, "POST"),
            ("/v4/oa/permission", "permission", self._route_permission, "GET"),
            ("/cdn/<path:name>", "cdn", self._cdn, "GET"),
            ("/_sim/uploads/<ident>", "sim_upload", self._http_upload_bytes, "GET"),
            ("/_sim/phone", "sim_phone", lambda: jsonify(self._request_oa().phone()), "GET"),
            ("/_sim/clock", "sim_clock", self._http_clock, "POST"),
        ]
        add_routes(app, self, rules)
        return app

    def _route_access_token(self):
        form = request.form
        return self._by_app(form.get("app_id", ""), form.get("refresh_token") or form.get("code") or "")._access_token()

    def _route_permission(self):
        """Zalo's consent page. The OA admin picks which of the app's OAs to grant, and the
        pick comes back here as `oa_id`; an app with one OA is granted at once."""
        args = request.args
        oa = self.oas().get(args.get("oa_id", ""))
        of_app = [o for o in self.oas().values() if o.app_id == args.get("app_id", "")]
        if oa or len(of_app) < 2:
            return (oa or self._by_app(args.get("app_id", "")))._permission()
        if not args.get("redirect_uri", "").startswith(("http://", "https://")):
            return _oauth_error(-14003, "Invalid redirect uri")
        return consent_page(of_app, args)

    def _request_oa(self) -> ZaloOA:
        """The OA a control request names with `oa_id` (query or JSON body), else the first."""
        body = request.get_json(silent=True) if request.is_json else None
        oa_id = request.args.get("oa_id") or (body.get("oa_id") if isinstance(body, dict) else None)
        if oa_id and str(oa_id) not in self.oas():
            abort(404, f"no OA {oa_id}")
        return self.oas()[str(oa_id)] if oa_id else self

    def state(self) -> dict:
        """The first OA's state as before, plus every added OA's under `oas`."""
        return {**super().state(), "oas": [o.state() for o in list(self.extra_oas.values())]}

    def _http_reset(self):
        self.reset()
        return jsonify({"ok": True})

    def _http_clock(self):
        """POST {"advance_seconds": n}: move the clock by n seconds (tests, the sandbox)."""
        body = request.get_json(silent=True) or {}
        try:
            return jsonify(self.advance_clock(float(body.get("advance_seconds", 0))))
        except (TypeError, ValueError):
            return jsonify({"error": "advance_seconds must be a number"}), 400

    def _http_upload_bytes(self, ident: str):
        with self.lock:
            found = self.uploads.get(ident)
        if found is None:
            return Response("not found", status=404, mimetype="text/plain")
        return Response(found["data"], mimetype=found["content_type"] or "application/octet-stream")

    def _http_action(self, name: str):
        """`oa_id` in the body picks the OA that acts (default: the first)."""
        oa, body = self._request_oa(), request.get_json(silent=True) or {}
        kwargs = {k: v for k, v in body.items() if k != "oa_id"} if isinstance(body, dict) else body
        return run_action(oa.actions(), name, kwargs)


CONSENT_TEXTS = {
    "vi": {
        "title": "Cấp quyền cho ứng dụng",
        "ask": "Ứng dụng {app_id} xin quyền gửi và đọc tin nhắn thay cho Official Account. Chọn OA bạn cho phép:",
        "granted": "đã cấp quyền cho ứng dụng này",
        "new": "chưa cấp quyền",
        "allow": "Cho phép",
        "note": "Trang mô phỏng của sandbox, giống trang cấp quyền của Zalo.",
    },
    "en": {
        "title": "Allow the app",
        "ask": "App {app_id} asks to send and read messages for an Official Account. Pick the OA you allow:",
        "granted": "has allowed this app",
        "new": "not allowed yet",
        "allow": "Allow",
        "note": "The sandbox's simulated page, like Zalo's consent page.",
    },
}
CONSENT_PAGE = """<!doctype html>
<html lang="{{ lang }}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Zalo · {{ t.title }}</title></head>
<body style="font-family: sans-serif; max-width: 32rem; margin: 2rem auto; padding: 0 1rem">
<h1>{{ t.title }}</h1>
<form method="get" id="consent">
<p>{{ t.ask.format(app_id=args.app_id) }}</p>
{% for name in ("app_id", "redirect_uri", "code_challenge", "state") %}
<input type="hidden" name="{{ name }}" value="{{ args.get(name, '') }}">{% endfor %}
{% for oa in oas %}
<p><label><input type="radio" name="oa_id" id="oa-{{ oa.oa_id }}" value="{{ oa.oa_id }}"
  {{ "checked" if oa.oa_id == picked }} required> {{ oa.name }} ({{ oa.oa_id }}):
  {{ t.granted if oa.access_token else t.new }}</label></p>{% endfor %}
<p><button type="submit" id="allow">{{ t.allow }}</button></p>
</form>
<p><small>{{ t.note }}</small></p>
</body></html>"""


def consent_page(oas: list, args) -> str:
    """The OAs of the app to pick from, the first that has not allowed it yet picked."""
    lang = request.accept_languages.best_match(CONSENT_TEXTS) or "vi"
    picked = next((o for o in oas if not o.access_token), oas[0]).oa_id
    return render_template_string(CONSENT_PAGE, lang=lang, t=CONSENT_TEXTS[lang], oas=oas, picked=picked, args=args)


def history_content(message: dict, upload_url) -> dict:
    """`type`, `message` and the media fields of a history item, from a message as a webhook
    carries it (`attachments`) or as the OA sent it (`attachment`). Zalo shows a type it cannot
    render through the API as "nosupport"."""
    text = message.get("text") or ""
    if message.get("attachments"):
        return _received_content(message["attachments"][0], text)
    attachment = message.get("attachment")
    if not attachment:
        return {"type": "text", "message": text}
    if attachment.get("type") == "file":
        return {"type": "file", "message": text, "url": "", "thumb": ""}
    element = ((attachment.get("payload") or {}).get("elements") or [{}])[0]
    kind = HISTORY_TYPES.get(element.get("media_type"), "nosupport")
    url = element.get("url") or upload_url(element.get("attachment_id"))
    return {"type": kind, "message": text, "url": url, "thumb": url}


def _received_content(attachment: dict, text: str) -> dict:
    kind, payload = attachment.get("type"), attachment.get("payload") or {}
    if kind == "location":
        coordinates = payload.get("coordinates") or {}
        where = {"latitude": str(coordinates.get("latitude", "")), "longitude": str(coordinates.get("longitude", ""))}
        return {"type": "location", "message": text, "location": json.dumps(where)}
    if kind == "link":
        link = {k: payload.get(k, "") for k in ("url", "description")}
        links = [{**link, "title": text or payload.get("title", ""), "thumb": payload.get("thumbnail", "")}]
        return {"type": "link", "message": text, "links": links}
    if kind in HISTORY_TYPES:
        url = payload.get("url", "")
        return {"type": HISTORY_TYPES[kind], "message": text, "url": url, "thumb": payload.get("thumbnail") or url}
    return {"type": "nosupport", "message": text}


def _safe_name(name: str) -> str:
    """A CDN path segment from a user's file name (the original name travels in the event)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[-80:] or "file"


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
