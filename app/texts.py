"""Every text the bridge writes for a person, in Vietnamese and English.

A connection chooses one language for what Zalo users read (`customer_language`, default
Vietnamese) and one for the notes agents read (`agent_language`). Each entry is a format string
with named fields; `say` fills it. A key missing in a language is a bug the tests catch
(tests/unit/test_texts.py), so every entry has both.
"""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    # -- to Zalo users -----------------------------------------------------------------------
    # -- to agents (private notes in FreshChat) ----------------------------------------------
}


def say(key: str, language: str, **values) -> str:
    """The text `key` in `language` ("vi" or "en"), with `values` filled in."""
    entry = TEXTS[key]
    return entry.get(language, entry["en"]).format(**values)


def for_customer(settings, key: str, **values) -> str:
    return say(key, settings.customer_language, **values)


def for_agent(settings, key: str, **values) -> str:
    return say(key, settings.agent_language, **values)
