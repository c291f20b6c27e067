"""`user_submit_info` (CONTRACT §4): a person filled in Zalo's "share your information" form, by
their own choice (the answer to `/askinfo`, or to a form the OA sent otherwise).

The FreshChat user gets the phone (`phone`) and the shared name, address, district and city as
properties (`shared_name`, `shared_address`, `shared_district`, `shared_city`) in one
`PUT /users/<id>`, and the agents a private note in the conversation showing what was shared,
in their language. A user the bridge has not met yet is created, with a conversation, as a first
message creates them. Forms differ (zalo.md §3.8): whatever is missing or junk is left out
(app/integrations/zalo/schemas.py `shared_info`), named in a log line, never its value.
"""

from __future__ import annotations

import logging

from app.bridge.lanes import Item
from app.integrations import events
from app.integrations.zalo import schemas
from app.relay import inbound, user_properties
from app.relay.context import Progress, RelayContext
from app.relay.parts import text_part
from app.texts import for_agent

log = logging.getLogger("relay.shared_info")
PROPERTY = "shared_{}"  # a shared field's FreshChat property name (the phone is the user's own field)


def relay_shared_info(ctx: RelayContext, item: Item, progress: Progress) -> None:
    event = item.payload
    zalo_user, info = schemas.person(event), schemas.shared_info(event)
    if info.dropped:
        log.warning("relay.shared_info_dropped", extra={"item": item.id, "fields": list(info.dropped)})
    known = ctx.mapping.zalo_user(zalo_user)
    fc_user = inbound.ensure_freshchat_user(ctx, zalo_user, known)
    progress()
    shared = {PROPERTY.format(k): v for k, v in info.shown().items() if k != "phone"}
    if shared:
        ctx.mapping.set_zalo_user(zalo_user, **user_properties.as_fields(shared))
    if shared or info.phone:
        body = inbound.user_update(ctx, zalo_user) | ({"phone": info.phone} if info.phone else {})
        ctx.freshchat.update_user(fc_user, body)
        progress()
    text = shared_note(ctx, info)
    envelope = {"message_type": "private", "actor_type": "system", "user_id": fc_user}
    outgoing = inbound.Outgoing(envelope, [text_part(text)], text)
    inbound.deliver(ctx, item.id, zalo_user, fc_user, outgoing, known.get("fc_conversation_id"), progress)


def shared_note(ctx: RelayContext, info: schemas.SharedInfo) -> str:
    """What the person shared, one line per field, in the agents' language."""
    shown = info.shown()
    if not shown:
        return for_agent(ctx.settings, "agent.shared_info_empty")
    lines = [for_agent(ctx.settings, f"agent.shared.{name}", value=value) for name, value in shown.items()]
    head, tail = for_agent(ctx.settings, "agent.shared_info"), for_agent(ctx.settings, "agent.shared_info_saved")
    return "\n".join([head, *lines, tail])


# The worker's routing for this kind (workers/drain.py).
HANDLERS = {events.SHARED_INFO: relay_shared_info}
