"""The content type of a media answer: one the bridge chose, never a partner's header.

A browser reads `Content-Type: image/png,text/html` as its last type, text/html, and `nosniff`
does not stop it: a partner's raw header would turn a copied file into a page on our origin. So a
type is kept only when it is exactly one `type/subtype` the bridge knows (`ALLOWED`); anything
else is application/octet-stream, a download. Only a few kinds a browser shows and never runs
(`INLINE`) are shown in place, and images and PDFs only when the bytes say so (app/media/fetch.py).
The same rule runs when an answer is served, so objects stored before it are served safely too.
"""

from __future__ import annotations

import re

OCTET_STREAM = "application/octet-stream"
TEXT = "text/plain"
# Every media answer, local or not: no script, no plugin, no form, an opaque origin, no frame.
CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
CLEAN = re.compile(rf"{TOKEN}/{TOKEN}")

IMAGES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp", "image/avif", "image/apng"}
# Shown in place: raster images (never SVG, which is a document and runs script), PDFs, texts.
INLINE = IMAGES | {"application/pdf", TEXT}
# Trusted only from the bytes: a header or a name saying "image/png" does not make a picture.
FROM_BYTES_ONLY = IMAGES | {"application/pdf"}
DOWNLOADS = {
    "image/heic",
    "image/tiff",
    "audio/aac",
    "audio/amr",
    "audio/mp4",
    "audio/mpeg",
    "audio/ogg",
    "audio/webm",
    "audio/x-wav",
    "audio/wav",
    "audio/x-flac",
    "video/3gpp",
    "video/mp4",
    "video/mpeg",
    "video/quicktime",
    "video/webm",
    "video/x-m4v",
    "video/x-matroska",
    "video/x-msvideo",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/rtf",
    "application/epub+zip",
    "application/zip",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "application/gzip",
    "application/x-tar",
    "text/csv",
}
ALLOWED = INLINE | DOWNLOADS


def known_type(value: str | None) -> str | None:
    """The one lower-case `type/subtype` that `value` names if the bridge knows it, else None:
    a comma list, a stray character, an unknown or active type (HTML, SVG, XML, script)."""
    if not value or "," in value:
        return None
    base = value.split(";")[0].strip(" \t").lower()
    return base if CLEAN.fullmatch(base) and base in ALLOWED else None


def served_type(value: str | None) -> str:
    """What a media answer says it is: a known type (texts as UTF-8, as they are stored), else
    application/octet-stream."""
    kind = known_type(value) or OCTET_STREAM
    return f"{TEXT}; charset=utf-8" if kind == TEXT else kind


def is_inline(value: str | None) -> bool:
    return known_type(value) in INLINE
