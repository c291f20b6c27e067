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
    "receipt_received": {
        "vi": "✓ Khách đã nhận lúc {time}: {replies}",
        "en": "✓ Received by the customer at {time}: {replies}",
    },
    "receipt_read": {
        "vi": "✓✓ Khách đã xem lúc {time}: {replies}",
        "en": "✓✓ Read by the customer at {time}: {replies}",
    },
    "receipt_replies": {"vi": "{first} và {more} tin khác", "en": "{first} and {more} more"},
    "a_reply": {"vi": "một tin trả lời", "en": "a reply"},
    "window_closing": {
        "vi": "⏳ Hết thời gian trả lời miễn phí lúc {time} (48 giờ sau tin nhắn cuối của khách). "
        "Sau đó Zalo tính phí tin trả lời, trong tối đa 7 ngày.",
        "en": "⏳ The free reply window closes at {time} (48 h after the customer's last message). "
        "After that Zalo bills each reply, for up to 7 days.",
    },
    "reply_billed": {
        "vi": "💰 Tin trả lời này bị Zalo tính phí: tin nhắn cuối của khách đã quá 48 giờ.",
        "en": "💰 Zalo billed this reply: the customer's last message is over 48 h old.",
    },
    "reply_held": {
        "vi": "⏸ Chưa gửi: tin nhắn cuối của khách đã quá 48 giờ nên Zalo sẽ tính phí, và kết nối này "
        "giữ lại tin có phí. Khi khách nhắn lại, hãy gửi lại (miễn phí).\nTin nhắn: “{preview}”",
        "en": "⏸ Not sent: the customer's last message is over 48 h old, so Zalo would bill this reply, "
        "and this connection holds billed replies. Send it again once the customer writes (free).\n"
        "Message: “{preview}”",
    },
    # -- from the customer, as agents read them in FreshChat ----------------------------------
    "reaction": {"vi": "{emoji} Đã thả cảm xúc vào tin nhắn {quote}", "en": "{emoji} Reacted to {quote}"},
    "reaction_unknown": {"vi": "{emoji} Đã thả cảm xúc vào một tin nhắn", "en": "{emoji} Reacted to a message"},
}


def say(key: str, language: str, **values) -> str:
    """The text `key` in `language` ("vi" or "en"), with `values` filled in."""
    entry = TEXTS[key]
    return entry.get(language, entry["en"]).format(**values)


def for_customer(settings, key: str, **values) -> str:
    return say(key, settings.customer_language, **values)


def for_agent(settings, key: str, **values) -> str:
    return say(key, settings.agent_language, **values)
