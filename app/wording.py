"""The English the bridge writes outside the console, in the console reader's language, or in
the language of the agents a worker writes a note for.

The JSON API, the command line and what Redis keeps (a dead letter's reason, an event's last
error, the last connection test) stay in English: acceptance tests, scripts and logs read them,
and records written by older versions must still read. The console translates when it shows
them: a text is matched against the known SHAPES (English with {named} holes), the shape's
catalogue translation is filled with the text's own values, each value translated in turn (a
reason inside a reason). A text of no known shape, such as a partner's own words, is shown as is.

The shapes are msgids of app/web/console/translations/vi/LC_MESSAGES/messages.po, kept there by
hand (pybabel cannot extract them: they are written in other modules); tests/web/
test_console_i18n.py checks that each one has its Vietnamese. A worker, which has no request,
reads the same compiled catalogue (`in_language`), loaded once per process and language.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask_babel import gettext
from marshmallow import Schema, fields, validate

from app.connections import checks as connection_checks
from app.connections import service as connection_service
from app.connections import store as connection_store
from app.connections import verification
from app.integrations.zalo.errors import ZALO_ERROR
from app.operations import dead_letters, forget, journal

SOURCES = Path(__file__).parent / "web" / "console" / "translations"  # the console's catalogue


def _marshmallow(message: object) -> str:
    """One of marshmallow's default messages, which it types `str | list | dict`: those named
    below are texts (checked when the module loads)."""
    if not isinstance(message, str):
        raise TypeError(f"not a text: {message!r}")
    return message


SHAPES: tuple[str, ...] = (
    # why an item waits or failed (workers/drain.py, app/relay/*, app/integrations/*)
    "permanent: {reason}",
    "gave up after {attempts} attempts: {reason}",
    "unexpected: {kind}: {reason}",
    "FreshChat refused even the plainest form: {reason}",
    "FreshChat HTTP {status} on {path}: {detail}",
    "FreshChat unreachable: {error}",
    "FreshChat attachment download failed: {reason}",
    "local FreshChat rate limit",
    ZALO_ERROR,
    "Zalo answered non-JSON (HTTP {status})",
    "Zalo refresh token is dead: {reason}",
    "Zalo token refresh lock busy",
    "Zalo unreachable: {error}",
    "Zalo HTTP {status}",
    "local Zalo rate limit",
    "{partner} send of unknown outcome: look in {seconds}s",
    "echo waits for a send of unknown outcome",
    "no handler for {kind} event {event}",
    "Zalo OAuth unreachable: {error}",
    "Zalo OAuth answered HTTP {status}",
    "Zalo OAuth answered non-JSON (HTTP {status})",
    "copying Zalo media failed: {reason}",
    "echo not matched yet",
    "another OA of the app is creating this person's FreshChat user",  # app/relay/people.py
    "no Zalo conversation is known for anonymous visitor {visitor}",
    "connection {id} no longer exists",
    "connection {id} is disabled",
    connection_service.REMOVED_REASON,
    # refusals of a form or a request (app/connections/, app/operations/, marshmallow)
    *connection_store.TEXTS.values(),
    *connection_service.TEXTS.values(),
    *dead_letters.TEXTS.values(),
    *forget.TEXTS.values(),
    "invalid Zalo user",
    "a whole number from 1 to {most}",
    *verification.TEXTS.values(),
    "invalid connection",
    "the body must be a JSON object",
    "cannot load topics",
    "cannot load groups",
    "invalid verification file",
    "invalid query",
    "1 to {max} characters",
    "digits only",
    "not a PEM/base64 RSA public key",
    _marshmallow(fields.Field.default_error_messages["required"]),
    _marshmallow(fields.Field.default_error_messages["null"]),
    _marshmallow(fields.Url.default_error_messages["invalid"]),
    _marshmallow(fields.String.default_error_messages["invalid"]),
    _marshmallow(fields.Boolean.default_error_messages["invalid"]),
    Schema._default_error_messages["unknown"],
    validate.Length.message_max,
    validate.OneOf.default_message,
    "in or out",
    "one of {states}",
    "at most {count} characters",
    journal.LIMIT_TEXT,
    # what "Test connection" found, and the topic picker's refusals (app/connections/checks.py)
    *connection_checks.TEXTS.values(),
    "none",  # the channels found, when there are none
    # why a file could not be copied (app/media/fetch.py); last, as "{error} fetching {url}" fits much
    "HTTP {status} from {url}",
    "more than {hops} redirects from {url}",
    "refusing a {scheme} URL",
    "bad port in {url}",
    "cannot resolve {host}",
    "{host} resolves to {address}, which is not a public address",
    "{size} bytes is over the {limit}-byte limit",
    "more than the {limit}-byte limit",
    "{error} fetching {url}",
)
HOLE = re.compile(r"\{(\w+)\}")


def _pattern(shape: str) -> re.Pattern:
    parts = HOLE.split(shape)  # literal, name, literal, name, ..., literal
    regex = "".join(re.escape(p) if n % 2 == 0 else f"(?P<{p}>.*?)" for n, p in enumerate(parts))
    return re.compile(regex, re.DOTALL)


PATTERNS = [(shape, _pattern(shape)) for shape in dict.fromkeys(SHAPES)]


def said(text: object, translate: Callable[[str], str] = gettext) -> str:
    """`text` (English written by the bridge) in the reader's language (`translate`: the
    request's, unless given); as is when unknown."""
    shape, values = _shape_of(text)
    if shape is None:
        return str(text)
    return translate(shape).format(**{name: said(value, translate) for name, value in values.items()})


def found_in(text: object, wanted: str) -> dict | None:
    """The values of the shape `wanted` in `text` or in a reason inside it; None: not there."""
    shape, values = _shape_of(text)
    if shape == wanted:
        return values
    inner = (found_in(value, wanted) for value in values.values())
    return next((found for found in inner if found is not None), None)


def _shape_of(text: object) -> tuple[str | None, dict]:
    for shape, pattern in PATTERNS:
        found = pattern.fullmatch(str(text))
        if found:
            return shape, found.groupdict()
    return None, {}


def in_language(text: object, language: str) -> str:
    """`text` in `language` ("vi" or "en"), outside any request: what a worker's note says."""
    return said(text, _catalogue(language).gettext)


@cache
def _catalogue(language: str) -> NullTranslations:
    """The compiled catalogue of `language` (English: none, so texts stay as written: Babel's
    NullTranslations)."""
    return Translations.load(str(compiled_catalogs()), [language])


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
