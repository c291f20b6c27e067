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
    # -- to operators: a connection's problems (app/problems.py), shown red in the console ----
    "problem.token_dead.what": {
        "vi": "Cặp token Zalo đã hỏng ({reason}); tin trả lời đang phải chờ.",
        "en": "The Zalo token pair is dead ({reason}); replies are waiting.",
    },
    "problem.token_dead.fix": {
        "vi": "Kết nối lại OA (nút “Kết nối với Zalo”).",
        "en": "Connect the OA again (“Connect with Zalo”).",
    },
    "problem.token_expired.what": {
        "vi": "Refresh token của Zalo đã hết hạn.",
        "en": "The Zalo refresh token has expired.",
    },
    "problem.token_expired.fix": {
        "vi": "Kết nối lại OA (nút “Kết nối với Zalo”).",
        "en": "Connect the OA again (“Connect with Zalo”).",
    },
    "problem.token_expiring.what": {
        "vi": "Refresh token của Zalo chỉ còn {days} ngày.",
        "en": "The Zalo refresh token has only {days} days left.",
    },
    "problem.token_expiring.fix": {
        "vi": "Kết nối lại OA trước khi token hết hạn.",
        "en": "Connect the OA again before it runs out.",
    },
    "problem.no_token.what": {
        "vi": "Chưa có cặp token Zalo: chưa gửi được tin trả lời nào.",
        "en": "No Zalo token pair yet: no reply can be sent.",
    },
    "problem.no_token.fix": {
        "vi": "Bấm “Kết nối với Zalo”, hoặc dán access token và refresh token.",
        "en": "Click “Connect with Zalo”, or paste an access and a refresh token.",
    },
    "problem.no_zalo_webhook.what": {
        "vi": "Chưa nhận được webhook nào từ Zalo.",
        "en": "No webhook from Zalo has arrived yet.",
    },
    "problem.no_zalo_webhook.fix": {
        "vi": "Dán URL webhook Zalo vào trang Webhook của ứng dụng, bật các sự kiện, rồi nhắn thử cho OA.",
        "en": "Paste the Zalo webhook URL into the app's Webhook page, switch the events on, then message the OA.",
    },
    "problem.no_freshchat_webhook.what": {
        "vi": "Chưa nhận được webhook nào từ FreshChat.",
        "en": "No webhook from FreshChat has arrived yet.",
    },
    "problem.no_freshchat_webhook.fix": {
        "vi": "Dán URL webhook FreshChat và khóa công khai RSA vào trang Webhooks của FreshChat, rồi trả lời thử.",
        "en": "Paste the FreshChat webhook URL and the RSA public key into FreshChat's Webhooks page, then reply once.",
    },
    "problem.dead_letters.what": {
        "vi": "{count} tin không gửi được đang chờ xử lý.",
        "en": "{count} message(s) could not be delivered and are waiting.",
    },
    "problem.dead_letters.fix": {
        "vi": "Xem lý do trong danh sách sự kiện, sửa nguyên nhân, rồi gửi lại hoặc bỏ chúng.",
        "en": "See why in the events list, fix the cause, then replay or drop them.",
    },
    "problem.queue_stuck.what": {
        "vi": "Có tin đã chờ {minutes} phút mà chưa worker nào xử lý.",
        "en": "Messages have waited {minutes} min without a worker taking them.",
    },
    "problem.queue_stuck.fix": {
        "vi": "Kiểm tra tiến trình worker đang chạy và kết nối được Redis.",
        "en": "Check that the worker process runs and reaches Redis.",
    },
    # -- to operators: Zalo webhook events to switch on (app/integrations/zalo/events_catalog.py)
    "zalo_event.user_send_text": {
        "vi": "Tin nhắn chữ và emoji của người dùng.",
        "en": "The user's text and emoji messages.",
    },
    "zalo_event.user_send_image": {"vi": "Ảnh người dùng gửi.", "en": "Photos the user sends."},
    "zalo_event.user_send_gif": {"vi": "Ảnh GIF người dùng gửi.", "en": "GIFs the user sends."},
    "zalo_event.user_send_sticker": {"vi": "Sticker người dùng gửi.", "en": "Stickers the user sends."},
    "zalo_event.user_send_file": {"vi": "Tệp người dùng gửi.", "en": "Files the user sends."},
    "zalo_event.user_send_audio": {"vi": "Tin nhắn thoại và âm thanh.", "en": "Voice and audio messages."},
    "zalo_event.user_send_video": {"vi": "Video người dùng gửi.", "en": "Videos the user sends."},
    "zalo_event.user_send_location": {
        "vi": "Vị trí người dùng chia sẻ (kèm link bản đồ).",
        "en": "Locations the user shares (with a map link).",
    },
    "zalo_event.user_send_link": {"vi": "Đường link người dùng gửi.", "en": "Links the user sends."},
    "zalo_event.user_send_business_card": {
        "vi": "Danh thiếp người dùng gửi.",
        "en": "Business cards the user sends.",
    },
    "zalo_event.oa_send_text": {
        "vi": "Tin nhắn chữ OA gửi từ công cụ khác (trang quản lý Zalo): hiện cho nhân viên dưới dạng ghi chú.",
        "en": "Texts the OA sends from elsewhere (Zalo's own console): shown to agents as private notes.",
    },
    "zalo_event.oa_send_image": {
        "vi": "Ảnh OA gửi từ công cụ khác: hiện cho nhân viên dưới dạng ghi chú.",
        "en": "Photos the OA sends from elsewhere: shown to agents as private notes.",
    },
    "zalo_event.oa_send_gif": {
        "vi": "GIF OA gửi từ công cụ khác: hiện cho nhân viên dưới dạng ghi chú.",
        "en": "GIFs the OA sends from elsewhere: shown to agents as private notes.",
    },
    "zalo_event.oa_send_file": {
        "vi": "Tệp OA gửi từ công cụ khác: hiện cho nhân viên dưới dạng ghi chú.",
        "en": "Files the OA sends from elsewhere: shown to agents as private notes.",
    },
    "zalo_event.oa_send_sticker": {
        "vi": "Sticker OA gửi từ công cụ khác: hiện cho nhân viên dưới dạng ghi chú.",
        "en": "Stickers the OA sends from elsewhere: shown to agents as private notes.",
    },
    "zalo_event.anonymous_send_text": {
        "vi": "Tin nhắn chữ từ khung chat trên website của OA (khách ẩn danh).",
        "en": "Texts from the OA's website chat widget (anonymous visitors).",
    },
    "zalo_event.anonymous_send_image": {
        "vi": "Ảnh từ khung chat trên website của OA.",
        "en": "Photos from the OA's website chat widget.",
    },
    "zalo_event.anonymous_send_file": {
        "vi": "Tệp từ khung chat trên website của OA.",
        "en": "Files from the OA's website chat widget.",
    },
    "zalo_event.anonymous_send_sticker": {
        "vi": "Sticker từ khung chat trên website của OA.",
        "en": "Stickers from the OA's website chat widget.",
    },
    "zalo_event.user_reacted_message": {
        "vi": "Người dùng thả cảm xúc vào một tin nhắn.",
        "en": "The user reacts to a message.",
    },
    "zalo_event.user_received_message": {
        "vi": "Tin trả lời đã đến máy người dùng (chỉ trên điện thoại).",
        "en": "A reply reached the user's phone (mobile only).",
    },
    "zalo_event.user_seen_message": {
        "vi": "Người dùng đã xem tin trả lời (chỉ trên điện thoại).",
        "en": "The user has read a reply (mobile only).",
    },
    "zalo_event.follow": {
        "vi": "Người dùng quan tâm OA (chỉ ghi nhận).",
        "en": "A user follows the OA (recorded only).",
    },
    "zalo_event.unfollow": {
        "vi": "Người dùng bỏ quan tâm OA (chỉ ghi nhận).",
        "en": "A user unfollows the OA (recorded only).",
    },
    "zalo_webhook_retry": {
        "vi": "Bật “Webhook Retry” trên trang Webhook của ứng dụng Zalo: khi không có, một sự kiện "
        "bị lỡ hạn trả lời 2 giây sẽ mất hẳn; khi có, Zalo gửi lại và cầu nối bỏ qua bản trùng.",
        "en": "Switch on “Webhook Retry” on the Zalo app's Webhook page: without it, an event that "
        "misses the 2-second deadline is lost; with it, Zalo resends it and the bridge drops duplicates.",
    },
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
