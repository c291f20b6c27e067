"""The Zalo webhook events an operator switches on for the bridge (all are off by default).

One table: each event's name, whether the bridge needs it (without the `user_send_*` ones
users' messages never arrive), and what it is for, in words (app/texts.py `zalo_event.<name>`).
Zalo's "Webhook Retry" switch is advised too (`webhook_retry_advice`).
"""

from __future__ import annotations

from app.texts import say

# (event name, required)
EVENTS: tuple[tuple[str, bool], ...] = (
    ("user_send_text", True),
    ("user_send_image", True),
    ("user_send_gif", True),
    ("user_send_sticker", True),
    ("user_send_file", True),
    ("user_send_audio", True),
    ("user_send_video", True),
    ("user_send_location", True),
    ("user_send_link", True),
    ("user_send_business_card", True),
    ("oa_send_text", False),
    ("oa_send_image", False),
    ("oa_send_gif", False),
    ("oa_send_file", False),
    ("oa_send_sticker", False),
    ("anonymous_send_text", False),
    ("anonymous_send_image", False),
    ("anonymous_send_file", False),
    ("anonymous_send_sticker", False),
    ("user_reacted_message", False),
    ("user_received_message", False),
    ("user_seen_message", False),
    ("follow", False),
    ("unfollow", False),
    ("user_submit_info", False),
)


def catalog(language: str) -> list[dict]:
    """[{"name", "required", "purpose"}] in the table's order, `purpose` in `language`."""
    return [
        {"name": name, "required": required, "purpose": say(f"zalo_event.{name}", language)}
        for name, required in EVENTS
    ]


def webhook_retry_advice(language: str) -> str:
    return say("zalo_webhook_retry", language)
