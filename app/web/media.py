"""GET /media/<signed>: the never-expiring link FreshChat and Zalo users click."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from app import extensions
from app.media.links import unsign_key
from app.media.store import StoredObject, content_disposition, served_content_type
from app.media.types import CSP

bp = Blueprint("media", __name__)
CACHE = "private, max-age=3600"


@bp.get("/media/<path:signed>")
def serve(signed: str):
    settings = extensions.settings()
    store = extensions.media_store()
    key = unsign_key(settings.secret_key, signed)
    if key is None:
        return _not_found()
    try:
        url = store.redirect_url(key)
        stored = None if url else store.get(key)
    except ValueError:  # signed by us yet not a valid key: treat like any unknown link
        return _not_found()
    if url:
        return _redirect(url)
    return _not_found() if stored is None else _bytes(stored)


def _bytes(stored: StoredObject) -> BaseResponse:
    content_type = served_content_type(stored.content_type)  # never the raw stored type
    response = Response(stored.data, content_type=content_type)
    response.headers["Content-Disposition"] = content_disposition(content_type, stored.filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = CSP  # a second wall, should a type slip through
    response.headers["Cache-Control"] = CACHE
    # Ranges let browsers seek in audio and video served from the local store.
    return response.make_conditional(request, accept_ranges=True, complete_length=len(stored.data))


def _redirect(url: str) -> BaseResponse:
    response = redirect(url, 302)
    # The presigned URL expires in an hour; a cached redirect must not outlive it.
    response.headers["Cache-Control"] = "no-store"
    return response


def _not_found() -> BaseResponse:
    response = jsonify({"error": "not found"})
    response.status_code = 404
    # A copy still in flight (or re-uploaded) must not be hidden behind a cached 404.
    response.headers["Cache-Control"] = "no-store"
    return response
