"""The operator's jobs, built for the current app: one place for the JSON API, the console and
`flask bridge` (each job is a small class of app/connections/ or app/operations/)."""

from __future__ import annotations

from app.bridge.keys import Keys
from app.bridge.tokens_store import TokenStore
from app.commands.catalogue import Catalogue
from app.connections.checks import ConnectionChecks
from app.connections.service import ConnectionService
from app.connections.store import Connections
from app.connections.verification import VerificationUploads
from app.extensions import lanes, media_store, redis, settings
from app.integrations.http import build_session
from app.integrations.zalo.client import ZaloClient
from app.integrations.zalo.tokens import TokenKeeper
from app.operations.dead_letters import DeadLetterDesk
from app.operations.forget import Forgetting
from app.operations.overview import Overview


def service() -> ConnectionService:
    return ConnectionService(redis(), lanes(), settings())


def overview() -> Overview:
    return Overview(redis(), lanes(), settings())


def checks() -> ConnectionChecks:
    return ConnectionChecks(redis(), settings())


def uploads() -> VerificationUploads:
    return VerificationUploads(redis(), settings())


def dead_letter_desk() -> DeadLetterDesk:
    return DeadLetterDesk(redis(), lanes(), settings())


def connections() -> Connections:
    return Connections(redis(), settings())


def template_catalogue(connection_id: str) -> Catalogue:
    """A connection's approved Zalo templates (a 404 Problem for an unknown connection): the
    copy the worker keeps while it lasts, else read from Zalo with the connection's token, as
    the connection test reads Zalo (an operator's request, never a webhook)."""
    connection = connections().get(connection_id)
    keys, session = Keys(connection.id), build_session()
    tokens = TokenKeeper(TokenStore.of(redis(), connection.settings, keys), connection.settings, session)
    return Catalogue(redis(), keys, ZaloClient(session, connection.settings, tokens))


def forgetting() -> Forgetting:
    return Forgetting(redis(), media_store())
