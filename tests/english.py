"""English left in a text meant for Vietnamese readers: the console's pages
(tests/web/console/test_console_i18n.py) and the notes and messages the worker writes
(tests/test_texts_in_vietnamese.py) are checked by the same rules."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from babel.messages.pofile import read_po

PO = Path(__file__).parents[1] / "app" / "web" / "console" / "translations" / "vi" / "LC_MESSAGES" / "messages.po"
# The product's English words: none may be read in Vietnamese. (Words Vietnamese keeps as they
# are - webhook, token, API, OA, App ID, Admin, APIs for chat, channel - are not among them.)
DENIED_WORDS = (
    "the|and|not|with|is|are|was|failed|delivered|retrying|queued|received|refused|works|work|characters|"
    "exists|permanent|unexpected|environment|attempts|found|connection|never|unknown|replay|"
    "replayed|drop|dropped|settings|message|messages|reply|agent|waiting|check|saved|error|errors|expires|"
    "alive|dead|active|inactive|none|topics|test|invalid|missing|required|digits|only|letter|letters"
)
DENIED = re.compile(rf"\b({DENIED_WORDS})\b", re.IGNORECASE)
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w+\}")
# A PEM key (the FreshChat webhook key a connection's page shows) is base64, no words. Read as
# words, a random key (sandbox/helpers.py makes a new one per test process) holding "+the+", or a
# line of no "/" ending "+is", failed the console's Vietnamese test by chance: 51 of 400 000
# simulated keys, 1 in 8 000.
PEM = re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.DOTALL)


def _holds(text: str, fragment: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(fragment)}(?!\w)", text) is not None


def catalogue() -> list:
    with PO.open("rb") as po:
        return [m for m in read_po(po) if m.id]


def fragments(pairs: Iterable[tuple[str, str]]) -> set[str]:
    """The literal parts of each English text whose Vietnamese differs (and does not keep that
    part itself, as "tệp video" keeps "video"): seen in Vietnamese, they are untranslated."""
    found = set()
    for english, vietnamese in pairs:
        if vietnamese and vietnamese != english:
            for part in PLACEHOLDER.split(english):
                part = part.strip(" .,:;()\"'-—")
                if len(part) >= 4 and not _holds(vietnamese, part):
                    found.add(part)
    return found


def english_fragments() -> set[str]:
    return fragments((m.id, m.string) for m in catalogue())


ENGLISH = english_fragments()


def english_left(text: str, known: set[str] = ENGLISH, denied: re.Pattern = DENIED) -> list[str]:
    """The English fragments and denied words in `text`; paths, {fields} and PEM keys are no words."""
    text = PEM.sub(" ", text)
    left = [f for f in known if _holds(text, f)]
    words = re.sub(r"\S*/\S*|\{\w+\}", " ", text)
    return left + sorted({m.group(0) for m in denied.finditer(words)})
