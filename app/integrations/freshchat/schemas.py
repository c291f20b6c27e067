"""Validation of FreshChat webhooks; both payload versions (message_parts and msg_parts)."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields, validates_schema

from app import events

# FreshChat sends these four actions only; each is handled. Messages not for the customer are
# dropped by `ignored_because`; any other action is unknown (acknowledged, logged as a warning).
STATE_KEYS = {
    "conversation_resolution": "resolve",
    "conversation_reopen": "reopen",
    "conversation_assignment": "assignment",
}


class Base(Schema):
    class Meta:
        unknown = INCLUDE


class Actor(Base):
    actor_type = fields.String(load_default="")
    actor_id = fields.String(allow_none=True)


class FreshchatEvent(Base):
    action = fields.String(required=True)
    action_time = fields.String(load_default="")
    actor = fields.Nested(Actor, load_default=dict)
    data = fields.Dict(required=True)

    @validates_schema
    def _shape(self, data, **kwargs):
        action = data.get("action")
        if action == "message_create":
            message = data["data"].get("message")
            if not isinstance(message, dict) or not message.get("id") or not message.get("conversation_id"):
                raise ValidationError("message_create needs data.message.id and conversation_id")
        elif action in STATE_KEYS and not conversation_id(data):
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
            return events.ignored("freshchat", action, why)
        kind = events.AGENT_MESSAGE
    else:
        return events.unknown("freshchat", action)
    return events.queued("freshchat", action, kind, f"out:{conversation_id(event)}", dedupe_id(event), event)


def ignored_because(event: dict) -> str:
    """Why a message_create does not reach the customer, or "" when it does."""
    message = event["data"]["message"]
    actor = message.get("actor_type") or event["actor"].get("actor_type")
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
