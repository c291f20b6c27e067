"""The connection form <-> the body ConnectionService takes (the JSON API's): one validation.

Inputs are named after the body's fields (`zalo.app_id`), so ConnectionService's per-field
messages land next to their input. A secret input left empty keeps the stored secret; its value
is never written into a page, not even back into the form after an error.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask_babel import lazy_gettext as _l

from app.connections.store import SECRETS
from app.wording import said

# In the order of Zalo's own setup pages, then FreshChat's.
ZALO_FIELDS = ("app_id", "app_secret", "oa_secret_key", "oa_id")
TOKEN_FIELDS = ("access_token", "refresh_token")
FRESHCHAT_FIELDS = ("api_url", "api_key", "channel_id", "webhook_public_key")
FLAGS = ("resolve_notification", "hold_billed_replies", "satisfaction_survey", "merge_users_by_app")
CHOICES = ("receipts", "customer_language", "agent_language")
TEXTS = ("resolve_notification_text", "agent_signature", "freshchat_group_id")

# ConnectionService and marshmallow write English; the messages the form meets most, in shorter
# words (any other: app/wording.py).
FIELD_MESSAGES = {
    "digits only": _l("digits only"),
    "Missing data for required field.": _l("required"),
    "Not a valid URL.": _l("not a valid URL"),
    "not a PEM/base64 RSA public key": _l("not a PEM or base64 RSA public key"),
    "1 to 40 characters of a-z, 0-9 and -": _l("1 to 40 characters of a-z, 0-9 and -"),
    "must end in /v2 (the chat URL plus /v2, e.g. https://acme.freshchat.com/v2)": _l(
        "must end in /v2 (the chat URL plus /v2, e.g. https://acme.freshchat.com/v2)"
    ),
}


def field_messages(fields: dict) -> dict:
    """One message per field, in the reader's language (app/wording.py)."""
    return {name: str(FIELD_MESSAGES[m]) if m in FIELD_MESSAGES else said(m) for name, m in fields.items()}


def body_from_form(form: Mapping[str, str], creating: bool) -> dict:
    body: dict = {}
    if creating:
        body["id"] = form.get("id", "").strip()
    if form.get("name", "").strip():
        body["name"] = form["name"].strip()
    body["zalo"] = _section(form, "zalo", ZALO_FIELDS + TOKEN_FIELDS)
    body["freshchat"] = _section(form, "freshchat", FRESHCHAT_FIELDS)
    options: dict[str, bool | str] = {name: form.get(f"options.{name}") == "on" for name in FLAGS}
    options.update({name: form.get(f"options.{name}", "") for name in CHOICES + TEXTS})
    body["options"] = options
    return body


def _section(form: Mapping[str, str], section: str, names: tuple[str, ...]) -> dict:
    values = {}
    for name in names:
        value = form.get(f"{section}.{name}", "").strip()
        if value or ((section, name) not in SECRETS and name not in TOKEN_FIELDS):
            values[name] = value  # an empty secret or token: keep what is stored
    return values


def shown_values(view: dict, form: Mapping[str, str] | None = None) -> dict:
    """What the form shows: the connection as the API shows it (secrets "set"/""), with the
    submitted non-secret values on top after a refused save."""
    values = {f"{s}.{f}": v for s in ("zalo", "freshchat", "options") for f, v in view.get(s, {}).items()}
    values.update(id=view.get("id", ""), name=view.get("name", ""))
    if form is not None:
        for name, value in form.items():
            section, _, field = name.partition(".")
            if name != "csrf_token" and (section, field) not in SECRETS and field not in TOKEN_FIELDS:
                values[name] = value
        for flag in FLAGS:
            values[f"options.{flag}"] = form.get(f"options.{flag}") == "on"
    return values
