"""Validation of Zalo OA webhook events (marshmallow); unknown fields are kept, not rejected."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, ValidationError, fields, validates_schema

RELAYED_PREFIXES = ("user_send_", "oa_send_")
# Events we acknowledge and record but never show to agents as customer messages.
RECORDED_EVENTS = {"user_seen_message", "user_received_message", "user_reacted_message",
                   "oa_reacted_message", "follow", "unfollow", "user_click_chatnow",
                   "user_submit_info"}


class IdString(fields.Field):
    """Zalo ids arrive as strings or as (possibly > 2**53) numbers: always keep a string."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            raise ValidationError("must be a non-empty string or integer")
        return str(value)


class Base(Schema):
    class Meta:
        unknown = INCLUDE


class Party(Base):
    id = IdString(required=True)
    admin_id = IdString()


class Message(Base):
    msg_id = IdString()
    text = fields.String(allow_none=True)
    attachments = fields.List(fields.Dict(), load_default=list)


class ZaloEvent(Base):
    event_name = fields.String(required=True)
    app_id = IdString(required=True)
    timestamp = IdString(required=True)
    sender = fields.Nested(Party)
    recipient = fields.Nested(Party)
    message = fields.Nested(Message)

    @validates_schema
    def _message_events_need_ids(self, data, **kwargs):
        name = data.get("event_name", "")
        if name.startswith(RELAYED_PREFIXES):
            missing = [f for f in ("sender", "recipient", "message") if f not in data]
            if missing or not data["message"].get("msg_id"):
                raise ValidationError(f"{name} needs sender, recipient and message.msg_id")


_SCHEMA = ZaloEvent()  # built once: schema construction costs more than validating one event


def load_event(payload: dict) -> dict:
    """The validated event; raises marshmallow.ValidationError."""
    return _SCHEMA.load(payload)


def dedupe_id(event: dict) -> str:
    """message.msg_id, or a synthesised key for events that carry none (zalo.md §2.2)."""
    msg_id = (event.get("message") or {}).get("msg_id")
    if msg_id:
        return str(msg_id)
    who = (event.get("sender") or {}).get("id") or (event.get("follower") or {}).get("id") or ""
    return f"{event['event_name']}:{event['timestamp']}:{who}"
