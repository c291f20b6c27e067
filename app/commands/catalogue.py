"""A connection's approved Zalo templates, read from Zalo's template API and kept a few minutes
in Redis (`Keys.zalo_templates`): `/templates` reads them afresh, `/template <id>`, the API
route and the console page read the kept copy while it lasts."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from app.integrations.zalo.templates import Template

CACHE_SECONDS = 300  # a template approved or disabled meanwhile shows within five minutes


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Listing:
    templates: tuple[Template, ...]
    refreshed_at_ms: int

    def get(self, template_id: str) -> Template | None:
        return next((t for t in self.templates if t.id == template_id), None)

    def view(self) -> dict:
        return {"templates": [t.view() for t in self.templates]}


class Catalogue:
    def __init__(self, redis, keys, zalo):
        self.redis = redis
        self.keys = keys
        self.zalo = zalo

    def cached(self) -> Listing | None:
        raw = self.redis.get(self.keys.zalo_templates)
        if raw is None:
            return None
        kept = json.loads(raw)
        return Listing(tuple(Template.from_stored(t) for t in kept["templates"]), int(kept["at"]))

    def refresh(self, progress: Callable[[], None] = _nothing) -> Listing:
        """Read the list and each template's detail from Zalo (`progress` between calls: a
        worker's lease), keep the approved ones."""
        found = []
        for template_id in self.zalo.template_ids():
            progress()
            template = self.zalo.template_info(template_id)
            if template.enabled:
                found.append(template)
        listing = Listing(tuple(found), int(time.time() * 1000))
        kept = {"at": listing.refreshed_at_ms, "templates": [t.stored() for t in listing.templates]}
        self.redis.set(self.keys.zalo_templates, json.dumps(kept), ex=CACHE_SECONDS)
        return listing

    def current(self, progress: Callable[[], None] = _nothing) -> Listing:
        return self.cached() or self.refresh(progress)

    def find(self, template_id: str, progress: Callable[[], None] = _nothing) -> Template | None:
        """The approved template `template_id`; else Zalo's own detail of it (which says why it
        cannot be sent: its status); None when Zalo names no such template of this OA."""
        listing = self.current(progress)
        found = listing.get(template_id)
        if found is not None:
            return found
        progress()
        template = self.zalo.template_info(template_id)
        return template if template.id or template.name else None
