"""Follow and unfollow (CONTRACT §4): never a customer message. Each is recorded per user (when
they unfollowed, until they follow again), and when the user has a FreshChat conversation the
agents there get a private note saying what it means for their replies: after an unfollow Zalo
may refuse them (-213), and the note of such a refusal names the unfollow (`unfollow_mark`).
"""

from __future__ import annotations

import logging

from app.bridge.lanes import Item
from app.integrations import events
from app.integrations.zalo import schemas
from app.relay import windows
from app.relay.context import Progress, RelayContext
from app.texts import for_agent, vn_time

log = logging.getLogger("relay.follows")


def relay_follow(ctx: RelayContext, item: Item, progress: Progress) -> str | None:
    event = item.payload
    zalo_user, at_ms = schemas.person(event), int(event["timestamp"])
    unfollow = event["event_name"] == schemas.UNFOLLOW
    if unfollow:
        ctx.redis.set(ctx.keys.unfollowed(zalo_user), str(at_ms))
    elif (unfollowed_at(ctx, zalo_user) or 0) <= at_ms:  # an unfollow sent after this follow stays
        ctx.redis.delete(ctx.keys.unfollowed(zalo_user))
    conversation = ctx.mapping.zalo_user(zalo_user).get("fc_conversation_id")
    if not conversation:
        log.info("relay.follow_recorded", extra={"event": event["event_name"], "why": "no conversation yet"})
        return events.NOT_RELAYED
    text = for_agent(ctx.settings, "agent.unfollowed" if unfollow else "agent.followed", time=vn_time(at_ms))
    windows.post_note(ctx, conversation, f"fc:follow:{item.id}", text)
    return None


def unfollowed_at(ctx: RelayContext, zalo_user: str) -> int | None:
    """When the user unfollowed the OA (epoch ms), None unless the bridge saw them unfollow and
    not follow again since."""
    raw = ctx.redis.get(ctx.keys.unfollowed(zalo_user))
    return int(raw) if raw else None


def unfollow_mark(ctx: RelayContext, zalo_user: str) -> str:
    """For the note of a reply refused with -213: the unfollow the bridge saw, or ""."""
    at_ms = unfollowed_at(ctx, zalo_user) if zalo_user else None
    return for_agent(ctx.settings, "agent.refused_unfollowed", time=vn_time(at_ms)) if at_ms else ""


# The worker's routing for these kinds (workers/drain.py).
HANDLERS = {events.FOLLOW: relay_follow}
