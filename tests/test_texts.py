"""The text catalog: both languages everywhere, the same fields in both, and no text for people
written anywhere else in the relay."""

from __future__ import annotations

import ast
import re
import string
from dataclasses import replace
from pathlib import Path

import pytest

from app.texts import OTHER_REFUSAL, TEXTS, ZALO_ADVICE, for_agent, for_customer, resolve_text, zalo_advice
from config.settings import LANGUAGES

RELAY = Path(__file__).resolve().parents[1] / "app" / "relay"
WORDS = re.compile(r"[^\W\d_]{2,}")  # a run of letters, in any script
FIELD = re.compile(r"\{[^{}]*\}")
# Literals that are not words for a person: a content type, the FreshChat user's name pattern the
# contract fixes ("<name> Zalo", "User <last 6 digits> Zalo"), and the plainness labels logs use.
TECHNICAL = {"text/plain; charset=utf-8", "User ", " Zalo", "as built", "images as file parts", "media as text links"}


def fields_of(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


@pytest.mark.parametrize("key", sorted(TEXTS))
def test_every_text_has_both_languages_with_the_same_fields(key):
    entry = TEXTS[key]
    assert set(entry) == set(LANGUAGES)
    assert all(entry[lang].strip() for lang in LANGUAGES)
    assert fields_of(entry["vi"]) == fields_of(entry["en"])


@pytest.mark.parametrize("code", sorted(ZALO_ADVICE) + [None])
def test_every_zalo_advice_has_both_languages(code):
    advice = ZALO_ADVICE[code] if code is not None else OTHER_REFUSAL
    assert set(advice) == set(LANGUAGES) and all(advice[lang].strip() for lang in LANGUAGES)
    assert advice["vi"] != advice["en"]


def test_each_side_reads_its_own_language(settings):
    both = replace(settings, customer_language="en", agent_language="vi")
    assert for_customer(both, "kind.file") == "file" and for_agent(both, "kind.file") == "tệp"
    assert zalo_advice(both, -217) == "Người dùng đã chặn tin nhắn từ OA này."
    assert zalo_advice(replace(both, agent_language="en"), -217) == "The user has blocked messages from this OA."


def test_an_operators_resolve_text_is_sent_as_written(settings):
    assert resolve_text(replace(settings, resolve_notification_text="Hẹn gặp lại!")) == "Hẹn gặp lại!"


# -- no text for people outside app/texts.py ---------------------------------------------------------


def texts_for_people(source: str) -> list[str]:
    """String literals that read as words for a person: not docstrings, not log lines, not the
    messages of raised exceptions (those are for operators)."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            skipped.add(id(first.value))  # a docstring
        if isinstance(node, ast.Raise) and node.exc is not None or _is_log_call(node):
            skipped.update(id(inner) for inner in ast.walk(node))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skipped:
            text = node.value
            if text not in TECHNICAL and " " in FIELD.sub("", text) and WORDS.search(FIELD.sub("", text)):
                found.append(text)
    return found


def _is_log_call(node) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "log"
    )


def test_the_scan_finds_a_text_written_in_place():
    source = 'def f(ctx):\n    """Docstring words."""\n    log.info("ok", extra={"why": "some words"})\n'
    source += '    send(ctx, f"📎 File {name}: {url}")\n    raise ValueError("for operators only")\n'
    assert texts_for_people(source) == ["📎 File "]
    assert texts_for_people('x = "[{kind}] {url}"\ny = "text/plain; charset=utf-8"\n') == []


@pytest.mark.parametrize("module", sorted(p.name for p in RELAY.glob("*.py")))
def test_the_relay_writes_no_text_for_people_outside_the_catalog(module):
    assert texts_for_people((RELAY / module).read_text(encoding="utf-8")) == []


# -- Vietnamese that reads as Vietnamese -------------------------------------------------------------

VIETNAMESE = re.compile(r"[àáảãạăằắẳẵặâầấẩẫậèéẻẽẹêềếểễệìíỉĩịòóỏõọôồốổỗộơờớởỡợùúủũụưừứửữựỳýỷỹỵđ]", re.IGNORECASE)


@pytest.mark.parametrize("key", sorted(TEXTS) + [f"zalo_advice.{code}" for code in sorted(ZALO_ADVICE)])
def test_every_text_is_written_in_vietnamese_not_copied_from_english(key):
    """Each note, message and problem kind: a Vietnamese of its own (with Vietnamese letters),
    never the English copied over."""
    entry = ZALO_ADVICE[int(key.split(".")[1])] if key.startswith("zalo_advice.") else TEXTS[key]
    assert entry["vi"] != entry["en"] and VIETNAMESE.search(entry["vi"])
