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
    "late_original_time": {
        "vi": "[Đến muộn - gửi lúc {when} (UTC+7)]",
        "en": "[Delivered late - originally sent {when} (UTC+7)]",
    },
    # -- to operators (alerts in /readyz and the status API, in the agents' language) ----------
    "webhook_off": {
        "vi": (
            "Webhook Zalo không đến nữa: đồng bộ bù tìm thấy {count} tin nhắn chưa từng đến qua webhook, "
            "tin mới nhất gửi lúc {when} (UTC+7). Có thể Zalo đã tắt webhook: bật lại tại Zalo Developers "
            "→ ứng dụng của bạn → Webhook."
        ),
        "en": (
            "Zalo webhooks stopped arriving: catch-up found {count} message(s) that never came by webhook, "
            "the newest sent {when} (UTC+7). Zalo may have switched the webhook off: switch it on again in "
            "Zalo Developers → your app → Webhook."
        ),
    },
}


def say(key: str, language: str, **values) -> str:
    """The text `key` in `language` ("vi" or "en"), with `values` filled in."""
    entry = TEXTS[key]
    return entry.get(language, entry["en"]).format(**values)


def for_customer(settings, key: str, **values) -> str:
    return say(key, settings.customer_language, **values)


def for_agent(settings, key: str, **values) -> str:
    return say(key, settings.agent_language, **values)
