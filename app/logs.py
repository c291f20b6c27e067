"""Logging for web and worker: JSON (or text) lines with a request/job id, secrets masked."""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterable
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from config.settings import Settings

context_id: contextvars.ContextVar[str] = contextvars.ContextVar("context_id", default="-")
MASK = "***"
# Attributes every LogRecord has: they hold paths, names and numbers, never our secrets.
STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "context_id"}


class ContextFilter(logging.Filter):
    """Adds the request or job id to every record, and masks configured secrets: the
    environment's, and those of every connection stored in Redis (`mask_also`, which the
    connection registry calls whenever it reads them)."""

    stored: frozenset[str] = frozenset()  # every process's filters share the stored connections' secrets

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.own = list(secrets)
        self._masked_from: frozenset[str] | None = None
        self.secrets: list[str] = []
        self._refresh()

    def _refresh(self) -> None:
        if self._masked_from is not ContextFilter.stored:
            self._masked_from = ContextFilter.stored
            self.secrets = sorted(set(self.own) | ContextFilter.stored, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        record.context_id = context_id.get()
        self._refresh()
        if self.secrets:
            record.msg = self._mask(record.getMessage())
            record.args = ()
            for key, value in list(record.__dict__.items()):
                if key not in STANDARD and isinstance(value, str):
                    record.__dict__[key] = self._mask(value)
            if record.exc_info and not record.exc_text:
                record.exc_text = self._mask(logging.Formatter().formatException(record.exc_info))
        return True

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


class TextFormatter(logging.Formatter):
    """One readable line: the event name, then its fields as key=value (the JSON form's keys)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(context_id)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(
            f"{k}={v}"
            for k, v in record.__dict__.items()
            if k not in STANDARD and k != "asctime" and not k.startswith("_")
        )
        if not extra:
            return line
        head, newline, tail = line.partition("\n")  # fields before a traceback, not after it
        return f"{head} {extra}{newline}{tail}"


def mask_also(values: Iterable[str]) -> None:
    """Mask these too in every log line of this process from now on (stored connections'
    secrets: they never pass through the environment's Settings)."""
    found = frozenset(v for v in values if v and len(v) >= 4)
    if not found <= ContextFilter.stored:
        ContextFilter.stored = ContextFilter.stored | found


def log_handler(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    """A handler writing LOG_FORMAT lines with secrets masked (also gunicorn's: app/web/webserver.py)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter(settings.secrets()))
    if settings.log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(context_id)s",
                rename_fields={"levelname": "level", "asctime": "time"},
            )
        )
    else:
        handler.setFormatter(TextFormatter())
    return handler


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Install one handler on the root logger; safe to call more than once."""
    root = logging.getLogger()
    root.handlers[:] = [log_handler(settings, stream)]
    root.setLevel(settings.log_level.upper())  # LOG_LEVEL: debug adds each accepted webhook's line
    for noisy in ("urllib3", "botocore", "boto3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


AUDIT = logging.getLogger("bridge.audit")


def audit(event: str, *, client: str = "-", **fields) -> None:
    """One line per security event (sign-in, wrong token, throttled, sign-out, stored token pair,
    refused backup, …): the event name, the client address, and fields that are never secrets.
    Every audit line goes through the `bridge.audit` logger, so an operator can route or grep it."""
    AUDIT.warning(event, extra={"audit": True, "client": client, **fields})
