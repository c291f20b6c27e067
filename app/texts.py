"""Every text the bridge writes for a person, in Vietnamese and English.

A connection chooses one language for what Zalo users read (`customer_language`, default
Vietnamese) and one for the notes agents read (`agent_language`). Each entry is a format string
with named fields; `say` fills it. A key missing in a language is a bug the tests catch
(tests/unit/test_texts.py), so every entry has both.
"""

from __future__ import annotations

from config.settings import LANGUAGES

TEXTS: dict[str, dict[str, str]] = {
    # -- to Zalo users -----------------------------------------------------------------------
    "customer.long_text": {
        "vi": "{preview}…\n\n📄 Toàn bộ tin nhắn ({length} ký tự): {url}",
        "en": "{preview}…\n\n📄 Full message ({length} characters): {url}",
    },
    "customer.file_link": {"vi": "📎 Tệp {name}: {url}", "en": "📎 {name}: {url}"},
    "customer.image_link": {"vi": "🖼 Ảnh {name}: {url}", "en": "🖼 {name}: {url}"},
    "customer.resolved": {
        "vi": "Cảm ơn bạn đã liên hệ! Cuộc trò chuyện đã được giải quyết.",
        "en": "Thank you for contacting us! This conversation has been resolved.",
    },
    # -- to agents (private notes in FreshChat) ----------------------------------------------
    "agent.dead_letter_inbound": {
        "vi": "⚠️ Một tin nhắn của người dùng Zalo này không hiển thị được ở đây ({reason}). Tin nhắn được "
        "lưu lại (mã {id}); quản trị viên có thể gửi lại.",
        "en": "⚠️ A message from this Zalo user could not be shown here ({reason}). It is kept as "
        "dead letter {id}; an operator can replay it.",
    },
    "agent.dead_letter_outbound": {
        "vi": "⚠️ Không gửi được trả lời này đến người dùng Zalo ({reason}). Tin nhắn được lưu lại "
        "(mã {id}); quản trị viên có thể gửi lại.",
        "en": "⚠️ This reply could not be delivered to the Zalo user ({reason}). It is kept as "
        "dead letter {id}; an operator can replay it.",
    },
    "agent.refused": {
        "vi": "⚠️ Không gửi được đến Zalo (lỗi {code}): {advice}",
        "en": "⚠️ Not delivered to Zalo (error {code}): {advice}",
    },
    "agent.refused_message": {"vi": '\nTin nhắn: "{preview}"', "en": '\nMessage: "{preview}"'},
    "agent.not_sent": {
        "vi": "⚠️ Chưa gửi được {what} đến người dùng Zalo: {reason}",
        "en": "⚠️ The {what} was not sent to the Zalo user: {reason}",
    },
    "agent.reason_no_url": {
        "vi": "FreshChat không đưa liên kết tải về. Vui lòng đính kèm lại.",
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
        "vi": "[Đến muộn - gửi lúc {when} (UTC+7)]",
        "en": "[Delivered late - originally sent {when} (UTC+7)]",
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
    # -- kinds of attachment, as either side names them ---------------------------------------
    "kind.image": {"vi": "ảnh", "en": "image"},
    "kind.gif": {"vi": "ảnh GIF", "en": "gif"},
    "kind.sticker": {"vi": "nhãn dán", "en": "sticker"},
    "kind.file": {"vi": "tệp", "en": "file"},
    "kind.audio": {"vi": "âm thanh", "en": "audio"},
    "kind.video": {"vi": "video", "en": "video"},
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
        "vi": "Người dùng chưa tương tác với OA trong 7 ngày qua; hãy chờ đến khi họ nhắn lại.",
        "en": "The user has not interacted with the OA in the last 7 days; wait until they write again.",
    },
    -232: {
        "vi": "Lần tương tác gần nhất của người dùng với OA đã hết hạn; hãy chờ đến khi họ nhắn lại.",
        "en": "The user's last interaction with the OA has expired; wait until they write again.",
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
        "vi": "Một tham số vượt giới hạn của Zalo (tệp quá lớn hoặc văn bản quá dài).",
        "en": "A parameter exceeds Zalo's limit (file too large or text too long).",
    },
    -211: {"vi": "OA đã hết hạn mức cho tính năng này.", "en": "The OA is out of quota for this feature."},
    -223: {
        "vi": "OA chưa cấp quyền này cho ứng dụng; hãy cấp quyền lại cho OA.",
        "en": "The OA has not granted this permission to the app; re-authorise the OA.",
    },
    -224: {
        "vi": "Gói dịch vụ của OA không có tính năng này.",
        "en": "The OA's service package does not include this feature.",
    },
}
OTHER_REFUSAL = {
    "vi": "Zalo đã từ chối tin nhắn; xem mã lỗi trong bảng lỗi của Zalo.",
    "en": "Zalo refused the message; see the code in Zalo's error table.",
}


def say(key: str, language: str, **values) -> str:
    """The text `key` in `language` ("vi" or "en"), with `values` filled in."""
    entry = TEXTS[key]
    return entry.get(language, entry["en"]).format(**values)


def for_customer(settings, key: str, **values) -> str:
    return say(key, settings.customer_language, **values)


def for_agent(settings, key: str, **values) -> str:
    return say(key, settings.agent_language, **values)


def kind_for_agent(settings, kind: str) -> str:
    """An attachment kind in the agents' words; a kind Zalo names that we do not know stays as is."""
    return for_agent(settings, f"kind.{kind}") if f"kind.{kind}" in TEXTS else kind


def zalo_advice(settings, code) -> str:
    """What the agent can do when Zalo refuses a reply with `code`."""
    advice = ZALO_ADVICE.get(code, OTHER_REFUSAL)
    return advice.get(settings.agent_language, advice["en"])


def resolve_text(settings) -> str:
    """The operator's text; without one the bridge's thank-you in both languages, the customer's
    first, as the default has always been bilingual."""
    if settings.resolve_notification_text:
        return settings.resolve_notification_text
    first = settings.customer_language
    return " / ".join(say("customer.resolved", lang) for lang in sorted(LANGUAGES, key=lambda lang: lang != first))
