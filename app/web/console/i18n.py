"""Vietnamese and English for the console (Flask-Babel).

The catalogs are the .po files under app/web/console/translations/; they are compiled to .mo when
the app starts (a few milliseconds), into a folder named after their content, so no compiled
file is committed and none can be stale. The language: the switch's cookie, else the browser's
Accept-Language, else English.
"""

from __future__ import annotations

from flask import Flask, request
from flask_babel import Babel

from app.wording import compiled_catalogs

LANGUAGES = ("en", "vi")
COOKIE = "zfb_lang"


def _locale() -> str:
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "en"


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=_locale, default_translation_directories=str(compiled_catalogs()))
