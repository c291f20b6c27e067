"""Zalo's template messages (ZBS Template Message, formerly ZNS) sent by user id: the shapes.

The template API (`ZALO_BUSINESS_API_BASE_URL`: `/template/all`, `/template/info/v2`) describes
an OA's templates; `POST /v3.0/oa/message/template` sends one to an OA-scoped user id
(reference zalo.md §3.7). The client (client.py) makes the calls; this module reads their
answers into the bridge's plain view of a template and builds the send's body, in one place:
sources disagree whether the user id is top-level (`user_id`, three code bases and the
integration spec) or `{"recipient": {"user_id"}}` (one), so the body is built only here.
"""

from __future__ import annotations

from dataclasses import dataclass

SEND_PATH = "/v3.0/oa/message/template"
LIST_PATH = "/template/all"
INFO_PATH = "/template/info/v2"
LIST_QUERY = {"offset": 0, "limit": 100, "status": 1}  # status 1: ENABLE (approved) only
ENABLE = "ENABLE"
# Zalo's numeric statuses, as the list filter takes them; the answers spell them.
STATUS_NAMES = {1: ENABLE, 2: "PENDING_REVIEW", 3: "REJECT", 4: "DISABLE"}


def send_body(user_id: str, template_id: str, data: dict[str, str]) -> dict:
    """The body of a template send by user id (top-level `user_id`, reference §3.7)."""
    return {"user_id": user_id, "template_id": str(template_id), "template_data": dict(data)}


@dataclass(frozen=True)
class Param:
    name: str
    required: bool
    max_length: int | None  # None: Zalo gave no limit

    def view(self) -> dict:
        return {"name": self.name, "required": self.required, "max_length": self.max_length}


@dataclass(frozen=True)
class Template:
    id: str
    name: str
    status: str
    params: tuple[Param, ...]
    price: str  # as Zalo gives it (the by-user-id price when given), "" when it gives none

    @property
    def enabled(self) -> bool:
        return self.status == ENABLE

    def view(self) -> dict:
        """As `/templates` and `GET /api/connections/<id>/templates` show it (CONTRACT §7)."""
        return {"id": self.id, "name": self.name, "params": [p.view() for p in self.params], "price": self.price}

    def stored(self) -> dict:
        return {**self.view(), "status": self.status}

    @classmethod
    def from_stored(cls, raw: dict) -> Template:
        params = tuple(Param(p["name"], bool(p["required"]), p.get("max_length")) for p in raw.get("params") or [])
        return cls(str(raw["id"]), str(raw["name"]), str(raw.get("status") or ""), params, str(raw.get("price") or ""))


def listed_ids(data) -> list[str]:
    """The template ids of a `/template/all` answer's `data` (a list of records)."""
    if not isinstance(data, list):
        return []
    return [str(row["templateId"]) for row in data if isinstance(row, dict) and row.get("templateId") is not None]


def from_info(data: dict) -> Template:
    """A `/template/info/v2` answer's `data` as a Template."""
    params = tuple(_param(p) for p in data.get("listParams") or [] if isinstance(p, dict) and p.get("name"))
    status = data.get("status")
    status = STATUS_NAMES.get(status, str(status)) if isinstance(status, int) else str(status or "")
    price = data.get("price_uid") if data.get("price_uid") not in (None, "") else data.get("price")
    return Template(
        id=str(data.get("templateId", "")),
        name=str(data.get("templateName") or ""),
        status=status,
        params=params,
        price="" if price is None else str(price),
    )


def _param(raw: dict) -> Param:
    length = str(raw.get("maxLength") or "")
    return Param(str(raw["name"]), bool(raw.get("require")), int(length) if length.isdigit() else None)


def check(template: Template, values: dict[str, str]) -> dict[str, list[str]]:
    """What is wrong with `values` for `template`: parameters missing (required, not given or
    empty), unknown (not the template's), too long (over max_length). Empty lists: all good."""
    known = {p.name: p for p in template.params}
    return {
        "missing": [p.name for p in template.params if p.required and not values.get(p.name, "").strip()],
        "unknown": [name for name in values if name not in known],
        "too_long": [
            name
            for name, value in values.items()
            if name in known and (limit := known[name].max_length) is not None and len(value) > limit
        ],
    }
