"""The FreshChat user's properties beyond the ids the bridge always sets (app/relay/inbound.py
`properties`): which OA(s) the person wrote to (`zalo_oa`), and what they chose to share
(app/relay/shared_info.py).

FreshChat does not say whether `PUT /users/<id>` replaces the property list or merges it
(freshchat.md §2.4), so every PUT carries the whole list. The values are kept for that in the
user's mapping hash, as `prop:<name>` fields (stored as `p:<name>`, app/bridge/mapping.py
`USER_FIELDS`): bounded per user, deleted with the user. The OA names are kept only when they
are more than this connection's own, which `extra` adds to every list.
"""

from __future__ import annotations

import logging

from app.errors import PartnerError
from app.relay.context import RelayContext

log = logging.getLogger("relay.user_properties")
PREFIX = "prop:"
OA = "zalo_oa"  # the OA name(s) the person wrote to, as agents read them
OA_SEPARATOR = "; "


def kept(known: dict) -> dict[str, str]:
    """The properties kept in a user's mapping hash, by name."""
    return {name[len(PREFIX) :]: value for name, value in known.items() if name.startswith(PREFIX)}


def as_fields(properties: dict[str, str]) -> dict[str, str]:
    """The mapping hash's fields that keep `properties`."""
    return {PREFIX + name: value for name, value in properties.items()}


def to_keep(ctx: RelayContext, properties: dict[str, str]) -> dict[str, str]:
    """The mapping hash's fields that keep `properties`, without this connection's OA name when
    it is the only one: `extra` adds it back, and most users write to one OA (bytes per user)."""
    alone = properties.get(OA) == oa_label(ctx)
    return as_fields({name: value for name, value in properties.items() if not (alone and name == OA)})


def oa_label(ctx: RelayContext) -> str:
    """How agents know the OA of this connection: its name (the default connection's OA id)."""
    return ctx.connection_name


def with_oa(names: str, oa: str) -> str:
    """`names` (separated by OA_SEPARATOR) with `oa` added when it is not among them."""
    listed = [n.strip() for n in names.split(OA_SEPARATOR.strip()) if n.strip()]
    return OA_SEPARATOR.join(listed if oa in listed else [*listed, oa])


def extra(ctx: RelayContext, known: dict) -> dict[str, str]:
    """The extra properties a user gets at creation and with each later PUT: what is kept,
    with this connection's OA among the OA names."""
    found = kept(known)
    return {**found, OA: with_oa(found.get(OA, ""), oa_label(ctx))}


def join_found(ctx: RelayContext, zalo_user: str, fc_user: dict, put) -> None:
    """A FreshChat user the bridge found rather than created (a crash before our mapping write,
    or a person known through another OA): add this OA to the names it carries. `put(fields)`
    writes the user's whole property list; failing only costs the label, so it is only logged."""
    theirs = next((p.get("value") for p in fc_user.get("properties") or [] if p.get("name") == OA), None)
    names = with_oa(theirs if isinstance(theirs, str) else "", oa_label(ctx))
    fields = to_keep(ctx, {OA: names})
    if fields:
        ctx.mapping.set_zalo_user(zalo_user, **fields)
    if names == theirs:
        return
    try:
        put()
    except PartnerError as exc:
        log.warning("relay.oa_property_failed", extra={"error": str(exc)[:300]})
