"""One person across the OAs of one Zalo app (option `merge_users_by_app`, CONTRACT §7).

Zalo gives each OA its own user id for a person, and every OA of an app the same
`user_id_by_app`. Connections of one app on one FreshChat account that have the option share
one FreshChat user per `user_id_by_app` (app/bridge/mapping.py `People`); each keeps its own
mapping, conversation (in its own topic) and lanes, so replies leave through the OA of the
conversation the agent answers in.

Turning the option on merges nobody: a user a connection already has stays its user. The first
time such a user writes with the option on, their FreshChat user becomes the person's unless the
person already has one, so a first message through another OA joins it (`adopt`).
"""

from __future__ import annotations

from collections.abc import Callable

from app.bridge.mapping import People
from app.connections.store import freshchat_account
from app.errors import RetryableError
from app.integrations.zalo.schemas import anonymous_id
from app.relay.context import RelayContext

CLAIM_TIMEOUTS = 4  # times HTTP_TIMEOUT_SECONDS: a profile read, a look-up, a creation, a margin
WAIT_SECONDS = 1.0  # how soon an OA waiting for another OA's creation looks again


class PersonClaimed(RetryableError):
    """Another connection is creating the person's FreshChat user: a known wait, not a
    failure, so it spends no retry budget (workers/drain.py)."""

    waiting = True


def merges(ctx: RelayContext, zalo_user: str) -> bool:
    """Whether this connection shares the user's FreshChat user with the app's other OAs (an
    anonymous web-chat visitor has no app-wide id)."""
    return bool(ctx.settings.merge_users_by_app) and not anonymous_id(zalo_user)


def by_app(event: dict | None) -> str:
    """The event's `user_id_by_app` (top level of user events, zalo.md §3.8), "" when absent."""
    return str((event or {}).get("user_id_by_app") or "")


def person_of(ctx: RelayContext, zalo_user: str, event: dict | None, profile: Callable[[], dict]) -> str:
    """The person a merging connection's new user is ("" when the connection does not merge or
    Zalo names no person): from the event, else (an OA's console message, a catch-up) from
    Zalo's profile, which `user/detail` answers with it."""
    if not merges(ctx, zalo_user):
        return ""
    return by_app(event) or str(profile().get("user_id_by_app") or "")


def reference_id(ctx: RelayContext, user_id_by_app: str) -> str:
    """The shared FreshChat user's reference: the person, not one OA's id of them."""
    return f"zalo:app:{ctx.settings.zalo_app_id}:{user_id_by_app}"


def shared_user(ctx: RelayContext, user_id_by_app: str, create: Callable[[str], dict], claimant: str) -> str:
    """The person's FreshChat user id: the one an OA of the app already made, or one made now
    with `create(reference_id)` (which looks the reference up first, as for one OA, so a crash
    between creation and record makes no second user)."""
    people = _people(ctx)
    ttl = int(CLAIM_TIMEOUTS * ctx.settings.http_timeout_seconds)
    found = people.claim(user_id_by_app, claimant, ttl)
    if found is None:
        raise PersonClaimed("another OA of the app is creating this person's FreshChat user", retry_after=WAIT_SECONDS)
    if found:
        return found
    return people.settle(user_id_by_app, claimant, create(reference_id(ctx, user_id_by_app))["id"])


def adopt(ctx: RelayContext, zalo_user: str, known: dict, event: dict | None) -> None:
    """A user this connection already had (before the option, or alone) becomes the person's,
    unless the person has a user already; once per user (its mapping then names the person)."""
    user_id_by_app = by_app(event)
    if not user_id_by_app or known.get("user_id_by_app") or not merges(ctx, zalo_user):
        return
    _people(ctx).adopt(user_id_by_app, known["fc_user_id"])
    ctx.mapping.set_zalo_user(zalo_user, user_id_by_app=user_id_by_app)


def own_conversations(ctx: RelayContext, conversations: list[str]) -> list[str]:
    """Of a FreshChat user's conversations, those another connection does not own: a shared
    user has one per OA, and a message this connection posted blind is never in another's."""
    if not ctx.settings.merge_users_by_app or not conversations:
        return conversations
    owners = ctx.redis.hmget(ctx.mapping.owners, conversations)
    return [c for c, owner in zip(conversations, owners, strict=True) if owner in (None, ctx.connection.encode())]


def _people(ctx: RelayContext) -> People:
    return People(ctx.redis, ctx.settings.zalo_app_id, freshchat_account(ctx.settings))
