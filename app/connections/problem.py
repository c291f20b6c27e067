"""A request the bridge refuses (a 4xx, or a 502 when a partner refused it), with one message per
bad field. Raised by the operator's jobs in app/connections/ and app/operations/, answered by the
JSON API, the console and `flask bridge` alike."""

from __future__ import annotations


class Problem(Exception):
    """A request the bridge refuses: `status` is the HTTP code, `fields` one message per bad field."""

    def __init__(self, status: int, message: str, fields: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields or {}

    def answer(self) -> dict:
        return {"error": self.message, **({"fields": self.fields} if self.fields else {})}
