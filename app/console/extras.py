"""Parts of the console that other modules provide, looked up by name; a missing one is None
and its section of the page is hidden."""

from __future__ import annotations

import importlib

from app.connections_admin import ConnectionAdmin


def _journal():
    try:
        journal = importlib.import_module("app.bridge.journal")
    except ImportError:
        return None

    def recent(redis, connection_id: str, filters: dict) -> list[dict]:
        found = {k: v for k, v in filters.items() if v}
        return journal.Journal(redis, connection_id).recent(limit=100, **found)

    return recent


def _events_catalog():
    try:
        return importlib.import_module("app.integrations.zalo.events_catalog")
    except ImportError:
        return None


def _admin_method(name: str):
    return getattr(ConnectionAdmin, name, None)


def find(name: str):
    if name == "journal":
        return _journal()
    if name == "events_catalog":
        return _events_catalog()
    return _admin_method(name)
