"""Validation of Zalo OA webhook events (marshmallow); unknown fields are kept, not rejected."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.integrations import events

# agents, as "[<type>] <link>" at worst. Visitors of the OA's web chat widget write
# anonymous_send_*; the OA's answers to them echo as oa_send_anonymous_* (an oa_send_* too).
KINDS_BY_PREFIX = {
    "user_send_": events.USER_MESSAGE,
    "anonymous_send_": events.USER_MESSAGE,
    "oa_send_": events.OA_MESSAGE,
}
ANONYMOUS_PREFIXES = ("anonymous_send_", "oa_send_anonymous_")
# An anonymous visitor's id is not an OA user id: the bridge keeps it in a namespace of its own
# (mappings, lanes, FreshChat reference), so the two can never collide.
ANONYMOUS = "anon:"
# Events Zalo documents that we acknowledge and log but never show to agents (answered
# "recorded"). Any other name is unknown: acknowledged too, but logged as a warning.
# follow, unfollow and user_submit_info are queued for their user (to_event); one that names
# no user is recorded only.
RECORDED_EVENTS = {
    "oa_reacted_message",
    "follow",
    "unfollow",
    "user_click_chatnow",
    "user_submit_info",
    "add_user_to_tag",
    "remove_user_from_tag",
    "remove_tag",
    "update_user_info",
    "user_withdraw",
}
ECHO = "echo of a message this bridge sent"
# Zalo telling the OA that one of its templates (ZBS Template Message) changed status: recorded
# per connection (app/operations/template_status.py), never a message for anyone.
TEMPLATE_STATUS = "change_template_status"
# The template API numbers the statuses (reference §3.7); the webhook names them.
TEMPLATE_STATUS_NAMES = {"1": "ENABLE", "2": "PENDING_REVIEW", "3": "REJECT", "4": "DISABLE"}
STATUS_NAME = re.compile(r"^[A-Z_]{1,32}$")
REASON_CHARS = 500
FOLLOW, UNFOLLOW, SUBMIT_INFO = "follow", "unfollow", "user_submit_info"
RECEIVED, SEEN, REACTED = "user_received_message", "user_seen_message", "user_reacted_message"
# Deskie's setup names two of Zalo's events differently; they are the same events.
ALIASES = {"user_recieved_message": RECEIVED, "user_read_message": SEEN}
# Top-level mark of an event built from Zalo's history: its webhook never reached the bridge.
CAUGHT_UP = "caught_up"
# A history item's `type` -> the attachment type of the webhook event it stands for.
HISTORY_ATTACHMENTS = {
    "photo": "image",
    "gif": "gif",
    "sticker": "sticker",
    "file": "file",
    "audio": "audio",
    "video": "video",
}


class IdString(fields.Field):
    """Zalo ids arrive as strings or as (possibly > 2**53) numbers: always keep a string."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise ValidationError("must be a non-empty string or integer")
        return str(value)


class Millis(IdString):
    """`timestamp`: epoch milliseconds, as a string of digits or a number. It is signed and the
    worker computes with it, so anything else is refused here rather than failing there."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text.isascii() or not text.isdigit() or len(text) > 15:
            raise ValidationError("must be epoch milliseconds")
        return text


class StatusName(IdString):
    """A template status as Zalo names it (`ENABLE`, `REJECT`, ...), or its number in the
    template API (1-4), kept as the name; "" for none (a new template has no previous status);
    anything else is refused (it is shown to operators)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "":
            return ""
        text = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        text = TEMPLATE_STATUS_NAMES.get(text, text)
        if not STATUS_NAME.match(text):
            raise ValidationError("must be a template status such as ENABLE or REJECT")
        return text


def signed_at(event: dict) -> datetime:
    return datetime.fromtimestamp(int(event["timestamp"]) / 1000, UTC)


class Base(Schema):
    class Meta:
        unknown = INCLUDE


class Party(Base):
    id = IdString(required=True)
    admin_id = IdString(allow_none=True)


# What app/relay/parts.py reads of a message; anything else inside is kept as sent.
class AttachmentPayload(Base):
    url = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    coordinates = fields.Dict(allow_none=True)


class Attachment(Base):
    type = fields.String(allow_none=True)
    payload = fields.Nested(AttachmentPayload, allow_none=True)


class Message(Base):
    msg_id = IdString()
    text = fields.String(allow_none=True)
    quote_msg_id = IdString(allow_none=True)
    location = fields.Dict(allow_none=True)
    attachments = fields.List(fields.Nested(Attachment), load_default=list, allow_none=True)


class ZaloEvent(Base):
    event_name = fields.String(required=True)
    app_id = IdString(required=True)
    timestamp = Millis(required=True)
    sender = fields.Nested(Party)
    recipient = fields.Nested(Party)
    message = fields.Nested(Message)

    @validates_schema
    def _message_events_need_ids(self, data, **kwargs):
        name = canonical_name(data.get("event_name", ""))
        if kind_of(name) or name in (RECEIVED, SEEN, REACTED):
            missing = [f for f in ("sender", "recipient", "message") if f not in data]
            if missing or not message_ids(data):
                raise ValidationError(f"{name} needs sender, recipient and message.msg_id")
        if name == REACTED and not data["message"].get("react_icon"):
            raise ValidationError(f"{name} needs message.react_icon")
        if name == TEMPLATE_STATUS:
            template_change(data)  # its ValidationError names the bad field


class StatusChange(Base):
    prev_status = StatusName(allow_none=True)
    new_status = StatusName(required=True, validate=validate.Length(min=1, error="must name the new status"))


class TemplateStatusEvent(Base):
    """`change_template_status`: `{template_id, status: {prev_status, new_status}, reason}`
    (reference §3.7), besides the envelope every event has."""

    template_id = fields.String(required=True, validate=validate.Regexp(r"^[0-9A-Za-z_-]{1,40}$"))
    status = fields.Nested(StatusChange, required=True)
    reason = fields.String(allow_none=True)


@dataclass(frozen=True)
class TemplateChange:
    """One change_template_status, typed."""

    template_id: str
    status: str
    previous: str
    reason: str
    at_ms: int  # Zalo's timestamp


_SCHEMA = ZaloEvent()  # built once: schema construction costs more than validating one event
_TEMPLATE_STATUS = TemplateStatusEvent()


def template_change(event: dict) -> TemplateChange:
    """The typed change of a validated change_template_status event (raises ValidationError)."""
    loaded = _TEMPLATE_STATUS.load(event)
    return TemplateChange(
        template_id=loaded["template_id"],
        status=loaded["status"]["new_status"],
        previous=loaded["status"].get("prev_status") or "",
        reason=(loaded.get("reason") or "").strip()[:REASON_CHARS],
        at_ms=int(event["timestamp"]),
    )


def load_event(payload: dict) -> dict:
    """The validated event; raises marshmallow.ValidationError."""
    return _SCHEMA.load(payload)


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def message_ids(event: dict) -> list[str]:
    """The message ids an event is about: `msg_id`, or the `msg_ids` list of user_seen_message."""
    message = event.get("message") or {}
    if message.get("msg_id"):
        return [str(message["msg_id"])]
    found = message.get("msg_ids")
    return [str(i) for i in found if i not in (None, "")] if isinstance(found, list) else []


def status_dedupe_id(event: dict) -> str:
    """A receipt or reaction names another message's id, which that message's own events use
    as their key: name the event, and for a reaction its icon and time (a user may react,
    remove it and react again)."""
    name = canonical_name(event["event_name"])
    ids = ",".join(sorted(message_ids(event)))
    if name == REACTED:
        return f"{name}:{ids}:{event['message']['react_icon']}:{event['timestamp']}"
    return f"{name}:{hashlib.sha256(ids.encode()).hexdigest()[:24]}"


def dedupe_id(event: dict) -> str:
    """message.msg_id, or a synthesised key for events that carry none (docs/interface.md, Z5)."""
    msg_id = (event.get("message") or {}).get("msg_id")
    if msg_id:
        return str(msg_id)
    who = (event.get("sender") or {}).get("id") or (event.get("follower") or {}).get("id") or ""
    return f"{event['event_name']}:{event['timestamp']}:{who}"


def oa_ids(payload: dict) -> list[str]:
    """Where the (not yet verified) event may name its OA, most telling first: the top-level
    `oa_id` (follow, unfollow), then the OA's side of a message (`recipient` of what a user
    sends, `sender` of what the OA sends). Events with neither rule (user_seen_message, where
    the OA is the sender) offer both sides; [] when the event names no party at all."""
    name = str(payload.get("event_name") or "")
    if name.startswith(("user_send_", "anonymous_send_")):
        sides = ["recipient"]
    elif name.startswith("oa_send_"):
        sides = ["sender"]
    else:
        sides = ["recipient", "sender"]
    found = [payload.get("oa_id")] + [_party_id(payload, side) for side in sides]
    return [str(i) for i in found if isinstance(i, (str, int)) and not isinstance(i, bool) and i != ""]


def _party_id(payload: dict, side: str):
    party = payload.get(side)
    return party.get("id") if isinstance(party, dict) else None


def kind_of(name: str) -> str:
    """The worker's kind for a relayed event name, "" for every other name."""
    return next((kind for prefix, kind in KINDS_BY_PREFIX.items() if name.startswith(prefix)), "")


def zalo_user(event: dict) -> str:
    """The Zalo user a message event is about: who wrote it, or whom the OA wrote to (a follow
    or a shared form: whose it is); an anonymous visitor's id carries the ANONYMOUS prefix."""
    name = event.get("event_name", "")
    if name in (FOLLOW, UNFOLLOW, SUBMIT_INFO):  # the person's own events (a dead letter's note finds them)
        return person(event)
    party = "sender" if kind_of(name) == events.USER_MESSAGE else "recipient"
    found = (event.get(party) or {}).get("id", "")
    return ANONYMOUS + found if found and name.startswith(ANONYMOUS_PREFIXES) else found


def anonymous_id(zalo_user_id: str) -> str:
    """Zalo's anonymous id behind a bridge id from `zalo_user`, "" for an OA user."""
    return zalo_user_id[len(ANONYMOUS) :] if zalo_user_id.startswith(ANONYMOUS) else ""


def status_user(event: dict, oa_id: str = "") -> str:
    """The user a receipt or reaction is about. Sources disagree on which side the OA is for
    receipts, so the side that is not our OA wins; without an OA id, the documented side."""
    sides = [(event.get(side) or {}).get("id", "") for side in ("sender", "recipient")]
    if canonical_name(event["event_name"]) != REACTED:
        sides.reverse()  # received/seen: sender is the OA, recipient the user
    return next((i for i in sides if i and i != oa_id), sides[0]) if oa_id else sides[0]


def to_event(event: dict, is_our_send: Callable[[str], bool] = lambda msg_id: False, oa_id: str = "") -> events.Event:
    """Classify a validated event, once. `is_our_send(msg_id)` recognises the echo of a message
    the bridge sent; the worker, which looks again itself, leaves it out. `oa_id` tells which
    side of a receipt is the user."""
    name = canonical_name(event["event_name"])
    status_kind = {RECEIVED: events.RECEIPT, SEEN: events.RECEIPT, REACTED: events.REACTION}.get(name)
    if status_kind:
        lane = f"in:{status_user(event, oa_id)}"
        return events.queued("zalo", name, status_kind, lane, status_dedupe_id(event), event)
    if name == TEMPLATE_STATUS:
        return template_status_event(event)
    person_kind = {FOLLOW: events.FOLLOW, UNFOLLOW: events.FOLLOW, SUBMIT_INFO: events.SHARED_INFO}.get(name)
    if person_kind and person(event):
        return events.queued("zalo", name, person_kind, f"in:{person(event)}", dedupe_id(event), event)
    kind = kind_of(name)
    if not kind:
        return events.recorded("zalo", name) if name in RECORDED_EVENTS else events.unknown("zalo", name)
    msg_id = event["message"]["msg_id"]
    if kind == events.OA_MESSAGE and is_our_send(msg_id):
        return events.ignored("zalo", name, ECHO, own=True)
    return events.queued("zalo", name, kind, f"in:{zalo_user(event)}", dedupe_id(event), event)


def template_status_event(event: dict) -> events.Event:
    """Queued in a lane of its template, so one template's changes are recorded in order."""
    change = template_change(event)
    dedupe = f"{TEMPLATE_STATUS}:{change.template_id}:{change.status}:{change.at_ms}"
    return events.queued("zalo", TEMPLATE_STATUS, events.TEMPLATE_STATUS, f"tpl:{change.template_id}", dedupe, event)


def history_event(item: dict, app_id: str) -> events.Event:
    """A message of Zalo's history (`GET /v2.0/oa/conversation`) as the event its webhook would
    have been, classified by `to_event`: the same lane, kind and dedupe key (its `message_id`
    is the webhook's `msg_id`), so a late webhook and a catch-up never both queue it. It is
    validated as a webhook is (raises marshmallow.ValidationError), as the worker trusts both."""
    from_user = int(item.get("src", 1)) == 1
    kind, message = _history_message(item)
    event = {
        "app_id": str(app_id),
        "sender": {"id": str(item["from_id"])},
        "recipient": {"id": str(item["to_id"])},
        "event_name": f"{'user' if from_user else 'oa'}_send_{kind}",
        "message": {**message, "msg_id": str(item["message_id"])},
        "timestamp": str(int(item["time"])),
        CAUGHT_UP: True,
    }
    return to_event(load_event(event))


def _history_message(item: dict) -> tuple[str, dict]:
    """(event name suffix, message body) of a history item, in the webhook's shape."""
    kind, text = str(item.get("type") or "text"), item.get("message") or ""
    body = {"text": text} if text else {}
    if kind == "text":
        return "text", {"text": text}
    if kind == "location":
        return "location", {**body, "attachments": [{"type": "location", "payload": _coordinates(item)}]}
    if kind == "link":
        link = (item.get("links") or [{}])[0]
        payload = {k: link.get(k, "") for k in ("url", "title", "description")} | {"thumbnail": link.get("thumb", "")}
        return "link", {**body, "attachments": [{"type": "link", "payload": payload}]}
    attachment = HISTORY_ATTACHMENTS.get(kind, kind)  # an unknown type still reaches agents
    payload = {"url": item.get("url") or "", "thumbnail": item.get("thumb") or item.get("url") or ""}
    return attachment, {**body, "attachments": [{"type": attachment, "payload": payload}]}


def _coordinates(item: dict) -> dict:
    """History gives the coordinates as a JSON string (sometimes as an object)."""
    where = item.get("location") or {}
    if isinstance(where, str):
        try:
            where = json.loads(where)
        except ValueError:
            where = {}
    where = where if isinstance(where, dict) else {}
    return {"coordinates": {"latitude": str(where.get("latitude", "")), "longitude": str(where.get("longitude", ""))}}


# -- a person's own events: follow, unfollow, the information they share (zalo.md §3.8) --------


def person(event: dict) -> str:
    """The user a follow, unfollow or user_submit_info is about (`follower.id`, or `sender.id`
    of a shared form), "" when the event names none."""
    party = event.get("follower") if event.get("event_name") in (FOLLOW, UNFOLLOW) else event.get("sender")
    found = party.get("id") if isinstance(party, dict) else None
    return str(found) if isinstance(found, (str, int)) and not isinstance(found, bool) else ""


SHARED_TEXT_MAX = 200  # a name or an address longer than this is not a form's answer
# Zalo's other shape nests the address (§3.8): full_address{user_address, user_ward, user_city}.
NESTED_ADDRESS = {"address": "user_address", "ward": "user_ward", "district": "user_district", "city": "user_city"}


@dataclass(frozen=True)
class SharedInfo:
    """What a user shared through Zalo's information form, each field validated; a field that
    was there but unusable is named in `dropped` (never its value: it is personal). Birthday
    and gender, which some forms add, are not read (CONTRACT §4: nothing else personal)."""

    name: str = ""
    phone: str = ""  # international form, "+84912345678"
    address: str = ""  # the street address, with the ward when the form gave one apart
    district: str = ""
    city: str = ""
    dropped: tuple[str, ...] = ()

    def shown(self) -> dict[str, str]:
        """The fields the person filled in, in the form's order."""
        return {k: v for k in ("name", "phone", "address", "district", "city") if (v := getattr(self, k))}


def shared_info(event: dict) -> SharedInfo:
    """The validated `info` of a user_submit_info; whatever is missing or junk is left out."""
    info = event.get("info")
    info = info if isinstance(info, dict) else {}
    nested = info.get("full_address")
    nested = nested if isinstance(nested, dict) else {}
    found, dropped = {}, []
    for name in ("name", "phone", "address", "ward", "district", "city"):
        raw = info.get(name)
        if raw in (None, "") and name in NESTED_ADDRESS:
            raw = nested.get(NESTED_ADDRESS[name])
        if raw in (None, ""):
            continue
        try:
            found[name] = phone_number(raw) if name == "phone" else shared_text(raw)
        except ValueError:
            dropped.append(name)
    if event.get("info") is not None and not isinstance(event["info"], dict):
        dropped.append("info")
    ward = found.pop("ward", "")
    if ward:
        found["address"] = f"{found['address']}, {ward}" if found.get("address") else ward
    return SharedInfo(**found, dropped=tuple(dropped))


def shared_text(raw) -> str:
    """A name or an address as one plain line: no control or format characters."""
    if not isinstance(raw, str):
        raise ValueError("not text")
    text = " ".join("".join(c for c in raw if not unicodedata.category(c).startswith("C")).split())
    if not text or len(text) > SHARED_TEXT_MAX:
        raise ValueError("empty or too long")
    return text


def phone_number(raw) -> str:
    """A phone number in international form: Zalo gives "84912345678"; a national "0912…" is
    Vietnamese (+84); 8 to 15 digits, separators ignored."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    if not isinstance(raw, str):
        raise ValueError("not a phone number")
    text = re.sub(r"[\s.()-]", "", raw)
    digits = text.removeprefix("+")
    if not (digits.isascii() and digits.isdigit() and 8 <= len(digits) <= 15):
        raise ValueError("not a phone number")
    if text.startswith("+"):
        return text
    return "+84" + digits[1:] if digits.startswith("0") else "+" + digits
