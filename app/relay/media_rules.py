"""Which FreshChat attachments Zalo accepts as uploads (docs/interface.md, Z10); the rest go as links."""

from __future__ import annotations

import struct

IMAGE_MAX = 1024 * 1024
GIF_MAX = 5 * 1024 * 1024
FILE_MAX = 5 * 1024 * 1024
FILE_TYPES = {
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


def zalo_upload_kind(content_type: str, size: int) -> str | None:
    """ "image", "gif" or "file" when Zalo takes it as an attachment, else None (send a link)."""
    content_type = content_type.split(";")[0].strip().lower()
    if content_type in ("image/jpeg", "image/png") and size <= IMAGE_MAX:
        return "image"
    if content_type == "image/gif" and size <= GIF_MAX:
        return "gif"
    if content_type in FILE_TYPES and size <= FILE_MAX:
        return "file"
    return None


def gif_size(data: bytes) -> tuple[int, int]:
    """Width and height from the GIF logical screen descriptor (Zalo wants them for GIFs)."""
    if len(data) < 10 or not data.startswith((b"GIF87a", b"GIF89a")):
        return 0, 0
    return struct.unpack("<HH", data[6:10])
