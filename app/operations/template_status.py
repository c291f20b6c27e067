"""What Zalo last said about each of the OA's templates: its `change_template_status` webhooks.

Zalo tells the OA when one of its templates (ZBS Template Message) is approved, rejected,
disabled... The webhook is queued like any event, in a lane of its template (`tpl:<id>`, so the
changes of one template are recorded in order), and its handler below keeps the latest change
per template in one hash per connection (`Keys.template_statuses`: template id -> JSON
{status, previous, reason, at}); nothing reaches a customer or an agent. The hash is bounded by
the OA's templates (at most MAX_TEMPLATES), and the console shows it (`template_statuses`).
A change also drops the connection's kept copy of its approved templates (`Keys.zalo_templates`,
app/commands/catalogue.py): the next `/template`, API call or console page reads Zalo afresh, so a
template just disabled is not offered for minutes after Zalo said so.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from redis import Redis

from app.bridge.keys import Keys
from app.bridge.replies import text
from app.integrations import events
from app.integrations.zalo.schemas import TemplateChange, template_change

if TYPE_CHECKING:  # types only: the drain hands this handler the relay's context (workers/drain.py)
    from app.bridge.lanes import Item
    from app.relay.context import Progress, RelayContext

log = logging.getLogger("operations.template_status")
MAX_TEMPLATES = 1000  # an OA has tens of templates; a flood of made-up ids stops here


def record_change(ctx: RelayContext, item: Item, progress: Progress) -> str:
    """The worker's handler of a change_template_status (workers/drain.py): keep it unless a
    later change of that template is already kept (a redelivery arriving late)."""
    change = template_change(item.payload)
    key = ctx.keys.template_statuses
    kept = ctx.redis.hget(key, change.template_id)
    if kept is not None and int(json.loads(kept).get("at_ms") or 0) > change.at_ms:
        return events.NOT_RELAYED
    if kept is None and ctx.redis.hlen(key) >= MAX_TEMPLATES:
        log.warning("zalo.template_status_not_kept", extra={"template": change.template_id, "why": "too many"})
        ctx.redis.delete(ctx.keys.zalo_templates)
        return events.NOT_RELAYED
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.hset(key, change.template_id, json.dumps(_record(change)))
    pipe.delete(ctx.keys.zalo_templates)
    pipe.execute()
    log.info("zalo.template_status", extra={"template": change.template_id, "status": change.status})
    return events.NOT_RELAYED


def _record(change: TemplateChange) -> dict:
    return {"status": change.status, "previous": change.previous, "reason": change.reason, "at_ms": change.at_ms}


def template_statuses(redis: Redis, connection_id: str) -> dict[str, dict]:
    """Template id -> {status, previous, reason, at_ms} as Zalo last reported it, for the
    console; {} when Zalo never reported a change."""
    raw = redis.hgetall(Keys(connection_id).template_statuses)
    return {text(k): json.loads(v) for k, v in sorted(raw.items())}


# The worker's routing for this kind (workers/drain.py adds it to the Zalo handlers).
HANDLERS = {events.TEMPLATE_STATUS: record_change}
