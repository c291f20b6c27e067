"""Validation of FreshChat webhooks; both payload versions (message_parts and msg_parts)."""

from __future__ import annotations

from datetime import datetime

from marshmallow import INCLUDE, Schema, ValidationError, fields, validates_schema

from app.integrations import events

# dropped by `ignored_because`; any other action is unknown (acknowledged, logged as a warning).
STATE_KEYS = {
    "conversation_resolution": "resolve",
    "conversation_reopen": "reopen",
    "conversation_assignment": "assignment",
}


class Base(Schema):
    class Meta:
        unknown = INCLUDE


class IdString(fields.Field):
    """FreshChat ids are UUID strings; a number is taken as its string, anything else refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise ValidationError("must be a non-empty string")
        return str(value)


class Timestamp(fields.String):
    """`action_time`, ISO 8601 (`2022-11-22T10:55:23.126Z`): the signed time the replay window
    is checked against, so one that does not parse is refused."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError("must be an ISO 8601 time") from None
        if moment.tzinfo is None:
            raise ValidationError("must name its time zone")
        return text


def signed_at(event: dict) -> datetime:
    return datetime.fromisoformat(event["action_time"])


# The shapes below are what app/relay/outbound.py reads; anything else inside is kept as sent.
class Actor(Base):
    actor_type = fields.String(load_default="", allow_none=True)
    actor_id = fields.String(allow_none=True)


class Text(Base):
    content = fields.String(allow_none=True)


class Attachment(Base):
    url = fields.String(allow_none=True)
    name = fields.String(allow_none=True)


class Part(Base):
    text = fields.Nested(Text, allow_none=True)
    image = fields.Nested(Attachment, allow_none=True)
    file = fields.Nested(Attachment, allow_none=True)
    video = fields.Nested(Attachment, allow_none=True)

    @validates_schema
    def _names_its_kind(self, data, **kwargs):
        if not data:
            raise ValidationError("a message part names its kind (text, image, file, ...)")


class LegacyProperties(Base):
    text = fields.String(allow_none=True)


class LegacyPart(Base):
    part_type = fields.String()
    properties = fields.Nested(LegacyProperties, allow_none=True)


class QuickReplyButton(Base):
    label = fields.Raw(allow_none=True)


class SubPart(Base):
    quick_reply_button = fields.Nested(QuickReplyButton, allow_none=True)


class Collection(Base):
    sub_parts = fields.List(fields.Nested(SubPart, allow_none=True), allow_none=True)


class ReplyPart(Base):
    collection = fields.Nested(Collection, allow_none=True)


class Message(Base):
    id = IdString(required=True)
    conversation_id = IdString(required=True)
    user_id = IdString(allow_none=True)
    actor_type = fields.String(allow_none=True)
    actor_id = fields.String(allow_none=True)
    message_type = fields.String(allow_none=True)
    message_parts = fields.List(fields.Nested(Part), allow_none=True)
    msg_parts = fields.List(fields.Nested(LegacyPart), allow_none=True)
    reply_parts = fields.List(fields.Nested(ReplyPart, allow_none=True), allow_none=True)


class Conversation(Base):
    conversation_id = IdString(allow_none=True)
    id = IdString(allow_none=True)


class User(Base):
    id = IdString(allow_none=True)


class StateChange(Base):
    conversation = fields.Nested(Conversation, allow_none=True)
    user = fields.Nested(User, allow_none=True)


class Data(Base):
    message = fields.Nested(Message)
    resolve = fields.Nested(StateChange, allow_none=True)
    reopen = fields.Nested(StateChange, allow_none=True)
    assignment = fields.Nested(StateChange, allow_none=True)


class FreshchatEvent(Base):
    action = fields.String(required=True)
    action_time = Timestamp(required=True)
    actor = fields.Nested(Actor, load_default=dict)
    data = fields.Nested(Data, required=True)

    @validates_schema
    def _shape(self, data, **kwargs):
        action = data.get("action")
        if action == "message_create" and "message" not in data["data"]:
            raise ValidationError("message_create needs data.message.id and conversation_id")
        if action in STATE_KEYS and not conversation_id(data):
            raise ValidationError(f"{action} needs data.{STATE_KEYS[action]}.conversation")


_SCHEMA = FreshchatEvent()  # built once per process, not per request


def load_event(payload: dict) -> dict:
    return _SCHEMA.load(payload)


def conversation_id(event: dict) -> str:
    if event["action"] == "message_create":
        return str(event["data"]["message"]["conversation_id"])
    inner = event["data"].get(STATE_KEYS.get(event["action"], ""), {}) or {}
    conv = inner.get("conversation") if isinstance(inner, dict) else None
    if not isinstance(conv, dict):
        return ""  # a signed but odd shape: the schema answers 400 for a missing conversation
    return str(conv.get("conversation_id") or conv.get("id") or "")


def dedupe_id(event: dict) -> str:
    if event["action"] == "message_create":
        return str(event["data"]["message"]["id"])
    return f"{event['action']}:{conversation_id(event)}:{event.get('action_time', '')}"


def to_event(event: dict) -> events.Event:
    """Classify a validated event, once: an agent's reply, a state change, or why not relayed."""
    action = event["action"]
    if action in STATE_KEYS:
        kind = events.CONVERSATION_STATE
    elif action == "message_create":
        why = ignored_because(event)
        if why:
            return events.ignored("freshchat", action, why, own=why == OWN_POST)
        kind = events.AGENT_COMMAND if command_text(event["data"]["message"]) else events.AGENT_MESSAGE
    else:
        return events.unknown("freshchat", action)
    return events.queued("freshchat", action, kind, f"out:{conversation_id(event)}", dedupe_id(event), event)


COMMAND_MARK = "/"


def command_text(message: dict) -> str:
    """The text of an agent's message that is a command for the bridge (its first part is a text
    beginning with "/"; "//" too, which sends the rest with one "/" removed), else ""."""
    parts = message.get("message_parts") or []
    first = parts[0] if parts and isinstance(parts[0], dict) else {}
    text = str((first.get("text") or {}).get("content") or "").strip() if isinstance(first.get("text"), dict) else ""
    return text if text.startswith(COMMAND_MARK) else ""


# The bridge posts each Zalo user's messages as that user: their webhooks come back to us.
OWN_POST = "actor user is not relayed"


def ignored_because(event: dict) -> str:
    """Why a message_create does not reach the customer, or "" when it does."""
    message = event["data"]["message"]
    actor = message.get("actor_type") or event["actor"].get("actor_type")
    if actor == "user":
        return OWN_POST
    if actor not in ("agent", "bot"):
        return f"actor {actor or 'unknown'} is not relayed"
    kind = message.get("message_type") or "normal"
    if kind == "private" or message.get("botsPrivateNote"):
        return "private note"
    if kind == "system":
        # Written by FreshChat in the agent's name ("Conversation was reopened by ..."), not by them.
        return "system message"
    if kind != "normal":
        return f"message_type {kind} is not relayed"
    return ""
