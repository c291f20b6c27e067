"""Every text the bridge writes for a person, in Vietnamese and English.

A connection chooses one language for what Zalo users read (`customer_language`, default
Vietnamese) and one for the notes agents read (`agent_language`). Each entry is a format string
with named fields; `say` fills it. A key missing in a language is a bug the tests catch
(tests/test_texts.py), so every entry has both.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from config.settings import LANGUAGES, Settings

TEXTS: dict[str, dict[str, str]] = {
    # -- to Zalo users -----------------------------------------------------------------------
    "customer.long_text": {
        "vi": "{preview}…\n\n📄 Toàn bộ tin nhắn ({length} ký tự): {url}",
        "en": "{preview}…\n\n📄 Full message ({length} characters): {url}",
    },
    "customer.file_link": {"vi": "📎 Tệp {name}: {url}", "en": "📎 {name}: {url}"},
    "customer.image_link": {"vi": "🖼 Ảnh {name}: {url}", "en": "🖼 {name}: {url}"},
    "customer.resolved": {
        "vi": "Cảm ơn bạn đã liên hệ! Yêu cầu của bạn đã được xử lý xong.",
        "en": "Thank you for contacting us! This conversation has been resolved.",
    },
    "customer.survey": {
        "vi": "Bạn thấy cuộc trò chuyện vừa rồi thế nào? Vui lòng trả lời bằng một số từ 1 (chưa hài lòng) "
        "đến 5 (rất hài lòng).",
        "en": "How was this conversation? Please reply with one digit from 1 (poor) to 5 (excellent).",
    },
    # -- to agents (private notes in FreshChat) ----------------------------------------------
    "agent.rated": {
        "vi": "⭐ Khách hàng chấm {rating}/5 cho cuộc trò chuyện (khảo sát sau khi đóng).",
        "en": "⭐ The customer rated the conversation {rating}/5 (survey after resolution).",
    },
    # -- to operators: a connection's problems (app/operations/problems.py), shown red in the console ----
    "problem.public_url_local.what": {
        "vi": "PUBLIC_BASE_URL là {url}: Zalo, FreshChat và khách hàng không mở được link ảnh, tệp.",
        "en": "PUBLIC_BASE_URL is {url}: Zalo, FreshChat and customers cannot open media links.",
    },
    "problem.public_url_local.fix": {
        "vi": "Đặt PUBLIC_BASE_URL là địa chỉ HTTPS công khai của cầu nối, rồi khởi động lại web và worker.",
        "en": "Set PUBLIC_BASE_URL to the bridge's public HTTPS address, then restart web and worker.",
    },
    "problem.freshchat_url_no_v2.what": {
        "vi": "URL API FreshChat {url} không kết thúc bằng /v2: mọi lệnh gọi FreshChat sẽ lỗi.",
        "en": "The FreshChat API URL {url} does not end in /v2: every FreshChat call fails.",
    },
    "problem.freshchat_url_no_v2.fix": {
        "vi": "Dùng URL chat của tài khoản thêm /v2, ví dụ https://acme.freshchat.com/v2.",
        "en": "Use the account's chat URL plus /v2, e.g. https://acme.freshchat.com/v2.",
    },
    "problem.zalo_refused.what": {
        "vi": "Ở lần kiểm tra kết nối gần nhất, Zalo đã từ chối: {detail}",
        "en": "At the last connection test Zalo said no: {detail}",
    },
    "problem.zalo_refused.fix": {
        "vi": "Kiểm tra OA ID và kết nối lại OA, rồi bấm “Kiểm tra kết nối”.",
        "en": "Check the OA id and connect the OA again, then click “Test connection”.",
    },
    "problem.freshchat_refused.what": {
        "vi": "Ở lần kiểm tra kết nối gần nhất, FreshChat đã từ chối: {detail}",
        "en": "At the last connection test FreshChat said no: {detail}",
    },
    "problem.freshchat_refused.fix": {
        "vi": "Kiểm tra URL API, khóa API và chủ đề (topic), rồi bấm “Kiểm tra kết nối”.",
        "en": "Check the API URL, API key and topic, then click “Test connection”.",
    },
    "problem.token_dead.what": {
        "vi": "Cặp token Zalo đã hết hiệu lực ({reason}); các tin trả lời đang phải chờ.",
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
        "vi": "Xem lý do trong danh sách sự kiện, khắc phục nguyên nhân, rồi gửi lại hoặc xóa các tin đó.",
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
    "problem.webhook_off.what": {
        "vi": "Webhook Zalo không đến nữa: khi lấy lại tin bị lỡ, cầu nối tìm thấy {count} tin nhắn chưa "
        "từng đến qua webhook, tin mới nhất gửi lúc {when}.",
        "en": "Zalo webhooks stopped arriving: catch-up found {count} message(s) that never came by webhook, "
        "the newest sent {when}.",
    },
    "problem.webhook_off.fix": {
        "vi": "Có thể Zalo đã tắt webhook: bật lại tại Zalo Developers → ứng dụng của bạn → Webhook.",
        "en": "Zalo may have switched the webhook off: switch it on again in Zalo Developers → your app → Webhook.",
    },
    "problem.redis_replicas_short.what": {
        "vi": "Chỉ {connected}/{wanted} bản sao Redis (REDIS_WAIT_REPLICAS) đang kết nối: mọi webhook đều bị "
        "trả lỗi 503 để không tin nào bị mất, Zalo và FreshChat sẽ gửi lại sau.",
        "en": "Only {connected} of the {wanted} Redis replica(s) REDIS_WAIT_REPLICAS asks for are connected: every "
        "webhook is answered 503 so that nothing can be lost, and Zalo and FreshChat send them again later.",
    },
    "problem.redis_replicas_short.fix": {
        "vi": "Khởi động lại bản sao Redis (hoặc thêm bản sao mới), hoặc giảm REDIS_WAIT_REPLICAS rồi khởi động "
        "lại web.",
        "en": "Bring a Redis replica back (or add one), or lower REDIS_WAIT_REPLICAS and restart the web process.",
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
        "vi": "Người dùng quan tâm OA: nhân viên thấy một ghi chú trong cuộc trò chuyện.",
        "en": "A user follows the OA: agents see a note in the conversation.",
    },
    "zalo_event.unfollow": {
        "vi": "Người dùng bỏ quan tâm OA: nhân viên thấy một ghi chú (các trả lời có thể bị từ chối, -213).",
        "en": "A user unfollows the OA: agents see a note (replies may be refused, -213).",
    },
    "zalo_event.user_submit_info": {
        "vi": "Người dùng chia sẻ thông tin (số điện thoại, tên, địa chỉ) qua biểu mẫu của OA: "
        "lưu vào hồ sơ FreshChat và báo cho nhân viên.",
        "en": "A user shares their information (phone, name, address) through the OA's form: saved on "
        "the FreshChat profile and shown to agents.",
    },
    "zalo_webhook_retry": {
        "vi": "Bật “Webhook Retry” trên trang Webhook của ứng dụng Zalo: nếu không bật, một sự kiện "
        "quá hạn trả lời 2 giây sẽ mất hẳn; nếu bật, Zalo sẽ gửi lại và cầu nối bỏ qua bản trùng.",
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
        "Sau đó, trong tối đa 7 ngày, mỗi tin trả lời sẽ bị Zalo tính phí. Quá thời hạn đó, bạn vẫn gửi được "
        "cho khách một mẫu tin Zalo đã duyệt: gõ /templates để xem danh sách.",
        "en": "⏳ The free reply window closes at {time} (48 h after the customer's last message). "
        "After that Zalo bills each reply, for up to 7 days; past those, an approved Zalo template can "
        "still reach the customer: type /templates to see them.",
    },
    "reply_billed": {
        "vi": "💰 Tin trả lời này bị Zalo tính phí: tin nhắn cuối của khách đã quá 48 giờ.",
        "en": "💰 Zalo billed this reply: the customer's last message is over 48 h old.",
    },
    "reply_held": {
        "vi": "⏸ Chưa gửi: tin nhắn cuối của khách đã quá 48 giờ nên Zalo sẽ tính phí tin này, và kết nối "
        "này được cài đặt để không gửi tin có phí. Khi khách nhắn lại, hãy gửi lại tin này (lúc đó miễn phí). "
        "Muốn báo khách ngay, hãy dùng một mẫu tin Zalo đã duyệt: gõ /templates để xem danh sách.\n"
        "Tin nhắn: “{preview}”",
        "en": "⏸ Not sent: the customer's last message is over 48 h old, so Zalo would bill this reply, "
        "and this connection holds billed replies. Send it again once the customer writes (free). "
        "To reach them now, use an approved Zalo template: type /templates to see them.\n"
        "Message: “{preview}”",
    },
    # -- from the customer, as agents read them in FreshChat ----------------------------------
    "reaction": {"vi": "{emoji} Đã thả cảm xúc vào tin nhắn {quote}", "en": "{emoji} Reacted to {quote}"},
    "reaction_unknown": {"vi": "{emoji} Đã thả cảm xúc vào một tin nhắn", "en": "{emoji} Reacted to a message"},
    # {reason}: the bridge's reason in the agents' language (app/relay/notes.py reason_for_agent)
    "agent.dead_letter_inbound": {
        "vi": "⚠️ Một tin nhắn của người dùng Zalo này không hiển thị được ở đây.\nLý do: {reason}\n"
        "Tin nhắn đã được lưu lại (mã {id}); quản trị viên có thể gửi lại.",
        "en": "⚠️ A message from this Zalo user could not be shown here.\nWhy: {reason}\n"
        "It is kept as dead letter {id}; an operator can replay it.",
    },
    "agent.dead_letter_outbound": {
        "vi": "⚠️ Không gửi được trả lời này đến người dùng Zalo.\nLý do: {reason}\n"
        "Tin nhắn đã được lưu lại (mã {id}); quản trị viên có thể gửi lại.",
        "en": "⚠️ This reply could not be delivered to the Zalo user.\nWhy: {reason}\n"
        "It is kept as dead letter {id}; an operator can replay it.",
    },
    # {detail}: Zalo's code and its own words, as the bridge says them ("Zalo báo lỗi -230: “…”")
    "agent.refused": {
        "vi": "⚠️ Không gửi được tin này qua Zalo: {advice}\n({detail})",
        "en": "⚠️ Not delivered to Zalo: {advice}\n({detail})",
    },
    "agent.refused_message": {"vi": "\nTin nhắn: “{preview}”", "en": "\nMessage: “{preview}”"},
    "agent.not_sent": {
        "vi": "⚠️ Chưa gửi được {what} đến người dùng Zalo: {reason}",
        "en": "⚠️ The {what} was not sent to the Zalo user: {reason}",
    },
    "agent.reason_no_url": {
        "vi": "FreshChat không cung cấp liên kết tải về. Vui lòng đính kèm lại.",
        "en": "FreshChat gave no download link for it. Please attach it again.",
    },
    "agent.reason_http": {
        "vi": "liên kết tải về trả lời HTTP {status}{meaning}. Vui lòng đính kèm lại.",
        "en": "its download link answered HTTP {status}{meaning}. Please attach it again.",
    },
    "agent.reason_blocked": {
        "vi": "liên kết trỏ tới một địa chỉ mạng nội bộ.",
        "en": "its link points to a private network address.",
    },
    "agent.reason_not_web": {
        "vi": "liên kết không phải địa chỉ web (http/https).",
        "en": "its link is not a web (http/https) address.",
    },
    "agent.http_401": {"vi": " (chưa xác thực)", "en": " (unauthorised)"},
    "agent.http_403": {"vi": " (bị từ chối truy cập)", "en": " (access denied)"},
    "agent.http_404": {"vi": " (không tìm thấy)", "en": " (not found)"},
    "agent.http_410": {"vi": " (không còn nữa)", "en": " (gone)"},
    "agent.sent_by_admin": {
        "vi": "[Quản trị viên {admin} gửi trong khung chat OA của Zalo]",
        "en": "[Sent in Zalo's OA chat by admin {admin}]",
    },
    "agent.sent_elsewhere": {
        "vi": "[OA gửi ngoài cầu nối này (công cụ khác hoặc tin nhắn tự động)]",
        "en": "[Sent by the OA outside this bridge (another tool or an automatic message)]",
    },
    "agent.late": {
        "vi": "[Đến muộn - gửi lúc {when}]",
        "en": "[Delivered late - originally sent {when}]",
    },
    "agent.quote_unknown": {"vi": "↩ Trả lời một tin nhắn trước đó", "en": "↩ Reply to an earlier message"},
    "agent.no_content": {"vi": "[{event} không có nội dung]", "en": "[{event} without content]"},
    "agent.copy_failed": {
        "vi": "[Không sao chép được {kind} ({error}); liên kết gốc của Zalo, hết hạn sau khoảng 7 ngày: {url}]",
        "en": "[The {kind} could not be copied ({error}); Zalo's original link, which expires after about 7 days: "
        "{url}]",
    },
    "agent.location": {"vi": "📍 Vị trí", "en": "📍 Location"},
    "agent.location_named": {"vi": "📍 Vị trí: {label}", "en": "📍 Location: {label}"},
    "agent.business_card": {"vi": "👤 Danh thiếp: {name}", "en": "👤 Business card: {name}"},
    "agent.card_phone": {"vi": "Điện thoại: {phone}", "en": "Phone: {phone}"},
    "agent.no_name": {"vi": "(không có tên)", "en": "(no name)"},
    # -- agent commands (app/commands/): the bridge's answers, as private notes ------------------
    "command.help": {
        "vi": "🤖 Lệnh cho cầu nối Zalo (khách không thấy các lệnh này):\n"
        "/templates - các mẫu tin Zalo đã duyệt: mã, tên, tham số, giá\n"
        "/template <mã> rồi mỗi dòng một tham số “tên: giá trị” - gửi mẫu tin đó cho khách (kể cả khi đã "
        "hết thời gian trả lời)\n"
        "/askinfo - gửi khách biểu mẫu “Chia sẻ thông tin” của Zalo\n"
        "//văn bản - gửi cho khách “/văn bản” (bỏ một dấu /)\n"
        "/help - danh sách này",
        "en": "🤖 Commands for the Zalo bridge (the customer never sees them):\n"
        "/templates - the approved Zalo templates: id, name, parameters, price\n"
        "/template <id> then one “name: value” line per parameter - sends that template to the customer "
        "(even after the reply window has closed)\n"
        "/askinfo - sends the customer Zalo's “share your information” form\n"
        "//text - sends the customer “/text” (one / removed)\n"
        "/help - this list",
    },
    "command.unknown": {"vi": "Không có lệnh “{name}”.\n", "en": "There is no command “{name}”.\n"},
    "command.templates": {
        "vi": "📋 Mẫu tin Zalo đã duyệt (cập nhật lúc {time}):\n{lines}\n"
        "Gửi: /template <mã>, rồi mỗi dòng một tham số “tên: giá trị” (* là bắt buộc).",
        "en": "📋 Approved Zalo templates (as of {time}):\n{lines}\n"
        "To send one: /template <id>, then one “name: value” line per parameter (* is required).",
    },
    "command.template_line": {
        "vi": "• {id} - {name} - giá {price}\n  tham số: {params}",
        "en": "• {id} - {name} - price {price}\n  parameters: {params}",
    },
    "command.param_max": {"vi": "tối đa {max} ký tự", "en": "up to {max} characters"},
    "command.no_params": {"vi": "không có", "en": "none"},
    "command.no_price": {"vi": "chưa rõ", "en": "not given"},
    "command.no_templates": {
        "vi": "📋 OA này chưa có mẫu tin Zalo nào đã được duyệt. Tạo và gửi duyệt mẫu tin trong trang quản lý "
        "mẫu tin ZBS của Zalo.",
        "en": "📋 This OA has no approved Zalo template yet. Create one and submit it for review in Zalo's ZBS "
        "Template Message console.",
    },
    "command.templates_failed": {
        "vi": "⚠️ Không đọc được danh sách mẫu tin từ Zalo: {advice}\n({detail})",
        "en": "⚠️ Could not read the templates from Zalo: {advice}\n({detail})",
    },
    "command.template_usage": {
        "vi": "Cách dùng: /template <mã mẫu tin>, rồi mỗi dòng một tham số “tên: giá trị”. Gõ /templates để xem "
        "mã và tham số.",
        "en": "Usage: /template <template id>, then one “name: value” line per parameter. Type /templates for "
        "the ids and parameters.",
    },
    "command.template_unknown": {
        "vi": "⚠️ Chưa gửi: OA này không có mẫu tin đã duyệt mã {id}. Gõ /templates để xem các mẫu tin dùng được.",
        "en": "⚠️ Not sent: this OA has no approved template {id}. Type /templates for the ones you can use.",
    },
    "command.template_not_enabled": {
        "vi": "⚠️ Chưa gửi: mẫu tin {id} ({name}) đang ở trạng thái {status}, chưa dùng được; chỉ mẫu tin đã "
        "duyệt (ENABLE) mới gửi được.",
        "en": "⚠️ Not sent: template {id} ({name}) is {status}, not usable; only approved (ENABLE) templates "
        "can be sent.",
    },
    "command.template_params": {
        "vi": "⚠️ Chưa gửi mẫu tin {id} ({name}):{problems}\nTham số của mẫu tin: {params}",
        "en": "⚠️ Template {id} ({name}) was not sent:{problems}\nIts parameters: {params}",
    },
    "command.missing": {"vi": "\n- thiếu tham số bắt buộc: {names}", "en": "\n- required, missing: {names}"},
    "command.unknown_params": {
        "vi": "\n- mẫu tin không có tham số: {names}",
        "en": "\n- not parameters of this template: {names}",
    },
    "command.too_long": {"vi": "\n- quá dài: {names}", "en": "\n- too long: {names}"},
    "command.bad_lines": {
        "vi": "\n- không đọc được (cần dạng “tên: giá trị”): {lines}",
        "en": "\n- not read (write “name: value”): {lines}",
    },
    "command.template_sent": {
        "vi": "✅ Đã gửi mẫu tin {id} ({name}) cho khách qua Zalo.{quota}",
        "en": "✅ Template {id} ({name}) was sent to the customer on Zalo.{quota}",
    },
    "command.quota": {"vi": " Trừ vào hạn mức: {quota}.", "en": " Paid from: {quota}."},
    "command.quota_remain": {"vi": "{kind} (còn {remain})", "en": "{kind} ({remain} left)"},
    "command.template_refused": {
        "vi": "⚠️ Zalo không gửi mẫu tin {id} ({name}): {advice}\n({detail})",
        "en": "⚠️ Zalo did not send template {id} ({name}): {advice}\n({detail})",
    },
    "command.outcome_unknown": {
        "vi": "❓ Zalo không trả lời khi gửi {what}: có thể khách đã nhận, có thể chưa. Cầu nối không gửi lại "
        "(để khách không nhận hai lần); hãy hỏi khách hoặc xem trong Zalo trước khi gửi lại.",
        "en": "❓ Zalo did not answer when {what} was sent: the customer may or may not have it. The bridge does "
        "not send it again (so they never get it twice); ask them or look in Zalo before sending it again.",
    },
    "command.what_template": {"vi": "mẫu tin {id}", "en": "template {id}"},
    "command.what_form": {"vi": "biểu mẫu chia sẻ thông tin", "en": "the information form"},
    "command.askinfo_sent": {
        "vi": "📝 Đã gửi khách biểu mẫu “Chia sẻ thông tin” của Zalo; thông tin khách chia sẻ sẽ hiện ở đây.",
        "en": "📝 The customer got Zalo's “share your information” form; what they share will show here.",
    },
    "command.askinfo_refused": {
        "vi": "⚠️ Không gửi được biểu mẫu chia sẻ thông tin: {advice}\n({detail})",
        "en": "⚠️ The information form was not sent: {advice}\n({detail})",
    },
    "command.no_zalo_user": {
        "vi": "⚠️ Cuộc trò chuyện này không gắn với người dùng Zalo nào mà cầu nối biết: chưa gửi gì.",
        "en": "⚠️ This conversation is not linked to a Zalo user the bridge knows: nothing was sent.",
    },
    "command.anonymous": {
        "vi": "⚠️ Khách này là khách ẩn danh (khung chat trên website): Zalo chỉ cho gửi tin nhắn thường.",
        "en": "⚠️ This customer is an anonymous website-chat visitor: Zalo only allows plain messages to them.",
    },
    "customer.askinfo_title": {"vi": "Chia sẻ thông tin", "en": "Share your information"},
    "customer.askinfo_subtitle": {
        "vi": "Vui lòng chia sẻ thông tin liên hệ để chúng tôi hỗ trợ bạn tốt hơn.",
        "en": "Please share your contact details so that we can help you better.",
    },
    # -- what a person chose to share, and follows (app/relay/shared_info.py, follows.py) --------
    "agent.shared_info": {
        "vi": "📇 Khách hàng đã chia sẻ thông tin với OA:",
        "en": "📇 The customer shared their information with the OA:",
    },
    "agent.shared.name": {"vi": "Họ tên: {value}", "en": "Name: {value}"},
    "agent.shared.phone": {"vi": "Số điện thoại: {value}", "en": "Phone: {value}"},
    "agent.shared.address": {"vi": "Địa chỉ: {value}", "en": "Address: {value}"},
    "agent.shared.district": {"vi": "Quận/huyện: {value}", "en": "District: {value}"},
    "agent.shared.city": {"vi": "Tỉnh/thành phố: {value}", "en": "City: {value}"},
    "agent.shared_info_saved": {
        "vi": "Thông tin này đã được lưu vào hồ sơ khách hàng trong FreshChat.",
        "en": "It is saved on the customer's FreshChat profile.",
    },
    "agent.shared_info_empty": {
        "vi": "📇 Khách hàng đã gửi biểu mẫu thông tin của Zalo nhưng không có thông tin nào đọc được.",
        "en": "📇 The customer sent Zalo's information form, but nothing in it could be read.",
    },
    "agent.unfollowed": {
        "vi": "🔕 Khách hàng đã bỏ quan tâm OA lúc {time}. Zalo có thể từ chối các trả lời tiếp theo "
        "(mã lỗi -213) cho đến khi khách quan tâm lại hoặc nhắn tin cho OA.",
        "en": "🔕 The customer unfollowed the OA at {time}. Zalo may refuse further replies (error -213) "
        "until they follow it again or write to the OA.",
    },
    "agent.followed": {
        "vi": "🔔 Khách hàng đã quan tâm OA lúc {time}; OA lại có thể nhắn tin cho khách.",
        "en": "🔔 The customer followed the OA at {time}; the OA can message them again.",
    },
    "agent.refused_unfollowed": {
        "vi": "\nKhách hàng đã bỏ quan tâm OA lúc {time}.",
        "en": "\nThe customer unfollowed the OA at {time}.",
    },
    # -- kinds of attachment, as either side names them ---------------------------------------
    "kind.image": {"vi": "ảnh", "en": "image"},
    "kind.gif": {"vi": "ảnh GIF", "en": "gif"},
    "kind.sticker": {"vi": "nhãn dán", "en": "sticker"},
    "kind.file": {"vi": "tệp", "en": "file"},
    "kind.audio": {"vi": "tệp âm thanh", "en": "audio"},
    "kind.video": {"vi": "tệp video", "en": "video"},
    # -- to the OA admin at the end of "Connect with Zalo" (app/web/oauth.py) ----------------------
    "oauth.other_oa": {
        "vi": "Zalo đã kết nối OA {got}, nhưng kết nối {connection} dành cho OA {expected}: chưa lưu gì cả. "
        "Hãy làm lại và chọn OA {expected} trên trang của Zalo.",
        "en": "Zalo connected OA {got}, but connection {connection} is for OA {expected}: nothing was stored. "
        "Start again and pick OA {expected} on Zalo's page.",
    },
    "oauth.oa_unknown": {
        "vi": "Chưa hỏi được Zalo xem token mới thuộc OA nào ({detail}): chưa lưu gì cả. Hãy làm lại để thử lần nữa.",
        "en": "Could not ask Zalo which OA the new token serves ({detail}): nothing was stored. Start again to retry.",
    },
}

# Zalo's refusals of a reply, by error code: what the agent can do about it.
ZALO_ADVICE: dict[int, dict[str, str]] = {
    -201: {
        "vi": "Zalo từ chối nội dung vì không hợp lệ (sai mã người dùng, quá dài hoặc tệp đính kèm không được hỗ trợ).",
        "en": "Zalo rejected the content as invalid (bad user id, too long, or an unsupported attachment).",
    },
    -213: {
        "vi": "Người dùng cần mở chat với OA trên điện thoại (hoặc quan tâm OA) thì OA mới nhắn được.",
        "en": "The user must open a chat with the OA on mobile (or follow it) before the OA can message them.",
    },
    -217: {"vi": "Người dùng đã chặn tin nhắn từ OA này.", "en": "The user has blocked messages from this OA."},
    -222: {
        "vi": "Tài khoản Zalo của người dùng bị khóa hoặc không còn hoạt động.",
        "en": "The user's Zalo account is banned or inactive.",
    },
    -227: {
        "vi": "Tài khoản Zalo của người dùng bị khóa hoặc đã không hoạt động quá 45 ngày.",
        "en": "The user's Zalo account is banned or has been inactive for over 45 days.",
    },
    -230: {
        "vi": "Người dùng chưa tương tác với OA trong 7 ngày qua; hãy chờ khách nhắn lại, hoặc gửi một mẫu tin "
        "Zalo đã duyệt (gõ /templates để xem danh sách).",
        "en": "The user has not interacted with the OA in the last 7 days; wait until they write again, or send "
        "an approved Zalo template (type /templates to see them).",
    },
    -232: {
        "vi": "Lần tương tác gần nhất của người dùng với OA đã hết hạn; hãy chờ khách nhắn lại, hoặc gửi một mẫu "
        "tin Zalo đã duyệt (gõ /templates để xem danh sách).",
        "en": "The user's last interaction with the OA has expired; wait until they write again, or send an "
        "approved Zalo template (type /templates to see them).",
    },
    -233: {"vi": "Zalo không hỗ trợ loại tin nhắn này ở đây.", "en": "Zalo does not support this message type here."},
    -234: {
        "vi": "Không gửi được loại tin nhắn này vào ban đêm (22:00-06:00); hãy gửi sau 06:00.",
        "en": "This message type cannot be sent at night (22:00-06:00); send it after 06:00.",
    },
    -244: {
        "vi": "Người dùng đã chặn loại tin nhắn này từ OA.",
        "en": "The user has restricted this message type from the OA.",
    },
    -320: {
        "vi": "Tin nhắn tính phí: hãy liên kết Zalo Cloud Account với ứng dụng để trả lời sau 48 giờ.",
        "en": "Paid message: connect a Zalo Cloud Account to the app to reply after 48 hours.",
    },
    -321: {
        "vi": "Tin nhắn tính phí: Zalo Cloud Account đã hết tiền; hãy nạp thêm rồi gửi lại.",
        "en": "Paid message: the Zalo Cloud Account has no funds; top it up, then resend.",
    },
    -210: {
        "vi": "Tin nhắn vượt giới hạn của Zalo (tệp quá lớn hoặc nội dung quá dài).",
        "en": "A parameter exceeds Zalo's limit (file too large or text too long).",
    },
    -211: {"vi": "OA đã hết hạn mức cho tính năng này.", "en": "The OA is out of quota for this feature."},
    -223: {
        "vi": "OA chưa cấp quyền này cho ứng dụng; hãy kết nối lại OA để cấp quyền.",
        "en": "The OA has not granted this permission to the app; re-authorise the OA.",
    },
    -224: {
        "vi": "Gói dịch vụ của OA không có tính năng này.",
        "en": "The OA's service package does not include this feature.",
    },
}
# Zalo's refusals of a template message (reference §3.7, its error table), by code: what to do.
TEMPLATE_ADVICE: dict[int, dict[str, str]] = {
    **dict.fromkeys(
        (-109, -117, -131),
        {
            "vi": "mã mẫu tin không đúng, OA không có quyền dùng hoặc mẫu tin chưa được duyệt; gõ /templates để xem "
            "các mẫu tin dùng được.",
            "en": "the template id is wrong, not this OA's, or not approved; type /templates for the ones you can use.",
        },
    ),
    **dict.fromkeys(
        (-111, -112, -113, -1121, -1122, -1123, -1124),
        {
            "vi": "tham số thiếu, sai kiểu hoặc quá dài; gõ /templates để xem tham số của mẫu tin.",
            "en": "a parameter is missing, of the wrong kind or too long; type /templates for its parameters.",
        },
    ),
    **dict.fromkeys(
        (-114, -118, -119),
        {
            "vi": "người dùng này không nhận được mẫu tin (tài khoản không hoạt động hoặc không dùng được).",
            "en": "this user cannot receive template messages (their account is inactive or unusable).",
        },
    ),
    -115: {
        "vi": "OA đã hết hạn mức hoặc hết số dư để gửi mẫu tin; hãy nạp thêm vào tài khoản ZBS rồi gửi lại.",
        "en": "the OA is out of template quota or balance; top it up (ZBS), then send again.",
    },
    -133: {
        "vi": "Zalo không gửi mẫu tin này vào ban đêm (22:00-06:00); hãy gửi lại sau 06:00.",
        "en": "Zalo does not send this template at night (22:00-06:00); send it again after 06:00.",
    },
    -135: {
        "vi": "OA này chưa được phép gửi mẫu tin; kiểm tra gói dịch vụ ZBS của OA.",
        "en": "this OA may not send template messages; check its ZBS package.",
    },
    **dict.fromkeys(
        (-136, -137),
        {
            "vi": "chưa liên kết được hoặc chưa trừ được tiền từ tài khoản ZBS; kiểm tra tài khoản ZBS của OA.",
            "en": "the ZBS account is not linked or could not be charged; check the OA's ZBS account.",
        },
    ),
    **dict.fromkeys(
        (-139, -141),
        {
            "vi": "khách đã từ chối nhận loại tin này hoặc tin từ OA này; Zalo sẽ không gửi.",
            "en": "the customer refused this kind of message or messages from this OA; Zalo will not send it.",
        },
    ),
    **dict.fromkeys(
        (-144, -1441),
        {
            "vi": "OA đã gửi hết số mẫu tin cho phép trong ngày hoặc tháng; hãy gửi lại sau.",
            "en": "the OA reached its daily or monthly template limit; send it again later.",
        },
    ),
    -146: {
        "vi": "Zalo đã tắt mẫu tin này vì chất lượng thấp; hãy dùng mẫu tin khác.",
        "en": "Zalo disabled this template for low quality; use another one.",
    },
    **dict.fromkeys(
        (-147, -160),
        {
            "vi": "mẫu tin đã hết hạn mức gửi trong ngày; hãy gửi lại vào ngày mai.",
            "en": "the template's daily quota is spent; send it again tomorrow.",
        },
    ),
    -1471: {
        "vi": "khách đã nhận đủ số tin chăm sóc cho phép trong tháng từ OA này.",
        "en": "the customer has had this month's allowed follow-up messages from this OA.",
    },
    -249: {
        "vi": "mẫu tin này không gửi được bằng mã người dùng Zalo (chỉ gửi được bằng số điện thoại); hãy dùng "
        "mẫu tin khác (mẫu tin được duyệt từ 10/12/2025 trở đi).",
        "en": "this template cannot be sent by user id (phone number only); use another one (templates approved "
        "since 10 Dec 2025 can).",
    },
    -201: {
        "vi": "Zalo báo yêu cầu gửi không hợp lệ. Cầu nối gửi user_id ở cấp ngoài cùng như tài liệu; nếu lỗi "
        "lặp lại với mọi mẫu tin, có thể Zalo đã đổi dạng yêu cầu: báo quản trị viên (README, mục “Mẫu tin Zalo”).",
        "en": "Zalo says the request is invalid. The bridge sends user_id at the top level as documented; if "
        "every template fails this way, Zalo may have changed the request's shape: tell an operator (README, "
        "“Zalo templates”).",
    },
}
OTHER_REFUSAL = {
    "vi": "Zalo đã từ chối tin nhắn; xem mã lỗi trong bảng lỗi của Zalo.",
    "en": "Zalo refused the message; see the code in Zalo's error table.",
}


VN = timezone(timedelta(hours=7))


def vn_time(at_ms: int) -> str:
    """A moment as agents read it: Vietnam's time, which the OA and its customers live in."""
    return datetime.fromtimestamp(at_ms / 1000, VN).strftime("%H:%M %d/%m/%Y") + " (UTC+7)"


def say(key: str, language: str, **values) -> str:
    """The text `key` in `language` ("vi" or "en"), with `values` filled in."""
    entry = TEXTS[key]
    return entry.get(language, entry["en"]).format(**values)


def for_customer(settings: Settings, key: str, **values) -> str:
    return say(key, settings.customer_language, **values)


def for_agent(settings: Settings, key: str, **values) -> str:
    return say(key, settings.agent_language, **values)


def kind_for_agent(settings: Settings, kind: str) -> str:
    """An attachment kind in the agents' words; a kind Zalo names that we do not know stays as is."""
    return for_agent(settings, f"kind.{kind}") if f"kind.{kind}" in TEXTS else kind


def zalo_advice(settings: Settings, code) -> str:
    """What the agent can do when Zalo refuses a reply with `code`."""
    advice = ZALO_ADVICE.get(code, OTHER_REFUSAL)
    return advice.get(settings.agent_language, advice["en"])


def template_advice(settings: Settings, code) -> str:
    """What the agent can do when Zalo refuses a template message (or the template API) with `code`."""
    advice = TEMPLATE_ADVICE.get(code) or ZALO_ADVICE.get(code, OTHER_REFUSAL)
    return advice.get(settings.agent_language, advice["en"])


def resolve_text(settings: Settings) -> str:
    """The operator's text; without one the bridge's thank-you in both languages, the customer's
    first, as the default has always been bilingual."""
    if settings.resolve_notification_text:
        return settings.resolve_notification_text
    first = settings.customer_language
    return " / ".join(say("customer.resolved", lang) for lang in sorted(LANGUAGES, key=lambda lang: lang != first))
