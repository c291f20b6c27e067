"""FreshChat REST v2 client: users, conversations, messages."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import requests

from app.errors import parse_retry_after
from app.integrations.base_client import BaseClient, ClientHooks
from app.integrations.freshchat.errors import ERRORS, error_for
from app.integrations.limits import Limiter
from config.settings import Settings

log = logging.getLogger("freshchat.api")
MESSAGES_PAGE = 50  # FreshChat's largest page


def auth_headers(api_key: str) -> dict:
    """What every FreshChat API call carries (the client's and the connection test's)."""
    return {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}


class FreshchatClient(BaseClient):
    name = "FreshChat"
    errors = ERRORS

    def __init__(
        self,
        session: requests.Session,
        settings: Settings,
        limiter: Limiter | None = None,
        hooks: ClientHooks | None = None,
    ):
        super().__init__(session, settings.freshchat_api_url, settings.http_timeout_seconds, limiter, hooks)
        self.channel_id = settings.freshchat_channel_id
        self.group_id = settings.freshchat_group_id  # "": FreshChat's own routing decides
        self.headers = auth_headers(settings.freshchat_api_key)

    def find_user(self, reference_id: str, skip: frozenset[str] = frozenset()) -> dict | None:
        """The user whose reference_id matches exactly (the filter is not trusted blindly), but
        none whose id is in `skip` (users the bridge was asked to forget)."""
        users = self._call("GET", "/users", params={"reference_id": reference_id}).get("users") or []
        return next((u for u in users if u.get("reference_id") == reference_id and u.get("id") not in skip), None)

    def create_user(self, user: dict) -> dict:
        return self._call("POST", "/users", json=user)

    def get_user(self, user_id: str) -> dict:
        return self._call("GET", f"/users/{user_id}")

    def update_user(self, user_id: str, fields: dict) -> None:
        self._call("PUT", f"/users/{user_id}", json=fields)

    def get_agent(self, agent_id: str) -> dict:
        return self._call("GET", f"/agents/{agent_id}")

    def create_conversation(self, user_id: str, message: dict) -> dict:
        """A new conversation in the connection's topic, assigned to its group when it has one."""
        body = {"channel_id": self.channel_id, "users": [{"id": user_id}], "messages": [message]}
        if self.group_id:
            body["assigned_group_id"] = self.group_id
        return self._call("POST", "/conversations", json=body)

    def post_message(self, conversation_id: str, message: dict) -> dict:
        return self._call("POST", f"/conversations/{conversation_id}/messages", json=message)

    def messages(self, conversation_id: str, from_time: str | None = None, next_page: str | None = None) -> tuple:
        """One page of a conversation's messages, newest first, and the link to the next page
        (None on the last): GET /conversations/{id}/messages, or the `link.href` of the page
        before (relative to the host, /v2 included)."""
        if next_page:
            body = self._call("GET", self._below_v2(next_page))
        else:
            params = {"page": 1, "items_per_page": MESSAGES_PAGE, **({"from_time": from_time} if from_time else {})}
            body = self._call("GET", f"/conversations/{conversation_id}/messages", params=params)
        return body.get("messages") or [], (body.get("link") or {}).get("href")

    def user_conversations(self, user_id: str) -> list[str]:
        """The ids of a user's conversations (FreshChat answers the whole list, unordered)."""
        found = self._call("GET", f"/users/{user_id}/conversations").get("conversations") or []
        return [str(c["id"]) for c in found if c.get("id")]

    @staticmethod
    def _below_v2(href: str) -> str:
        """A `link.href` (host-relative, starting with /v2) as a path below our API root, which
        ends in /v2 wherever the account is hosted."""
        parts = urlsplit(href)
        path = parts.path.removeprefix("/v2")
        return path + (f"?{parts.query}" if parts.query else "")

    def list_channels(self) -> list[dict]:
        """Topics of the account: a cheap read that tells whether FreshChat answers at all."""
        return self._call("GET", "/channels").get("channels") or []

    def _call(self, method: str, path: str, **kwargs) -> dict:
        return self._request(method, path, headers=self.headers, **kwargs)

    def _answer(self, resp: requests.Response, path: str) -> dict:
        """The body of a 2xx answer; FreshChat says what failed by the status (and its message)."""
        if resp.status_code >= 300:
            raise error_for(resp.status_code, path, _detail(resp), parse_retry_after(resp.headers.get("Retry-After")))
        return resp.json() if resp.content else {}


def _detail(resp: requests.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    return str(body.get("message") or body.get("status") or body)[:200] if isinstance(body, dict) else str(body)[:200]
