"""Vietnamese and English for the console (Flask-Babel).

The catalogs are the .po files under app/web/console/translations/; they are compiled to .mo when
the app starts (a few milliseconds), into a folder named after their content, so no compiled
file is committed and none can be stale. The language: the switch's cookie, else the browser's
Accept-Language, else English.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request
from flask_babel import Babel

LANGUAGES = ("en", "vi")
SOURCES = Path(__file__).parent / "translations"
COOKIE = "zfb_lang"


def _locale() -> str:
    chosen = request.cookies.get(COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES) or "en"


def compiled_catalogs() -> Path:
    """The folder of compiled catalogs for the current .po files (made once per content)."""
    sources = sorted(SOURCES.glob("*/LC_MESSAGES/messages.po"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"zfb-console-{digest}"
    for po in sources:
        mo = target / po.relative_to(SOURCES).with_suffix(".mo")
        if not mo.exists():
            _compile(po, mo)
    return target


def _compile(po: Path, mo: Path) -> None:
    """Written beside, then renamed: a second process starting at once never reads half a file."""
    mo.parent.mkdir(parents=True, exist_ok=True)
    with po.open("rb") as source:
        catalog = read_po(source)
    fd, partial = tempfile.mkstemp(dir=mo.parent, suffix=".part")
    with os.fdopen(fd, "wb") as out:
        write_mo(out, catalog)
    os.replace(partial, mo)


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=_locale, default_translation_directories=str(compiled_catalogs()))
