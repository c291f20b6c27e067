"""Zalo OA Open API client: CS messages (to users and anonymous visitors), uploads, user detail,
conversation history; template messages by user id and the template API that lists them."""

from __future__ import annotations

import json
import logging
from typing import cast

import requests

from app.errors import PartnerError, parse_retry_after
from app.integrations.base_client import BaseClient, ClientHooks, status_error
from app.integrations.limits import Limiter
from app.integrations.zalo import templates
from app.integrations.zalo.errors import (
    ERRORS,
    ZaloAuthError,
    ZaloRetryable,
    error_for,
)
from app.integrations.zalo.tokens import TokenKeeper
from config.settings import Settings

log = logging.getLogger("zalo.api")
UPLOAD_FIELD = {"image": "attachment_id", "gif": "attachment_id", "file": "token"}
HISTORY_PAGE = 10  # Zalo's history reads answer at most 10 items per call


class HistoryTooLong(Exception):
    """More messages since the time asked for than the pages a reader may read."""


def history_since(read_page, since_ms: int, max_pages: int):
    """One chat's messages, newest first, back to `since_ms`; `read_page(offset)` reads one page
    (a plain `conversation` call, or one that waits out rate limits or watches a deadline).
    HistoryTooLong when `max_pages` pages did not reach that time."""
    for page in range(max_pages):
        items = read_page(page * HISTORY_PAGE)
        for item in items:
            if int(item.get("time") or 0) < since_ms:
                return
            yield item
        if len(items) < HISTORY_PAGE:
            return
    raise HistoryTooLong(f"more than {max_pages * HISTORY_PAGE} messages")


class SentId(str):
    """Zalo's message_id of a sent message, carrying the answer's `quota` object: which quota
    paid for it (None when the answer has none: Zalo billed the message)."""

    quota: dict | None = None


def sent_id(data: dict) -> SentId:
    sent = SentId(str(data.get("message_id", "")))
    sent.quota = data.get("quota") if isinstance(data.get("quota"), dict) else None
    return sent


class ZaloClient(BaseClient):
    name = "Zalo"
    errors = ERRORS

    def __init__(
        self,
        session: requests.Session,
        settings: Settings,
        tokens: TokenKeeper,
        limiter: Limiter | None = None,
        hooks: ClientHooks | None = None,
    ):
        super().__init__(session, settings.zalo_api_base_url, settings.http_timeout_seconds, limiter, hooks)
        self.tokens = tokens
        self.window = settings.rate_window_seconds
        self.business = settings.zalo_business_api_base_url.rstrip("/")

    def send(self, user_id: str, message: dict, reply_to: str = "") -> SentId:
        """POST /v3.0/oa/message/cs; return Zalo's message_id (with the quota that paid).

        With `reply_to` (one of the user's messages), it goes as a reply to that message
        (recipient `message_id`); which message, if any, is the relay's choice
        (app/relay/outbound.py `send_to_user`)."""
        return self._send({"message_id": reply_to} if reply_to else {"user_id": user_id}, message)

    def _send(self, recipient: dict, message: dict) -> SentId:
        data = self._call("POST", "/v3.0/oa/message/cs", json={"recipient": recipient, "message": message})
        return sent_id(data)

    def send_text(self, user_id: str, text: str) -> SentId:
        return self.send(user_id, {"text": text})

    def request_user_info(self, user_id: str, title: str, subtitle: str, image_url: str = "") -> SentId:
        """Zalo's "share your information" form (reference §3.2); the answer is `user_submit_info`."""
        element = {"title": title[:100], "subtitle": subtitle[:500]}
        if image_url:
            element["image_url"] = image_url
        payload = {"template_type": "request_user_info", "elements": [element]}
        return self.send(user_id, {"attachment": {"type": "template", "payload": payload}})

    def template_ids(self) -> list[str]:
        """GET {business}/template/all: the ids of the OA's approved (ENABLE) templates."""
        data = self._call("GET", templates.LIST_PATH, base=self.business, params=templates.LIST_QUERY)
        return templates.listed_ids(data)

    def template_info(self, template_id: str) -> templates.Template:
        """GET {business}/template/info/v2: one template's parameters, status and price."""
        params = {"template_id": template_id}
        return templates.from_info(self._call("GET", templates.INFO_PATH, base=self.business, params=params))

    def send_template(self, user_id: str, template_id: str, data: dict[str, str]) -> SentId:
        """POST /v3.0/oa/message/template by user id; Zalo's message_id, with the quota that paid."""
        body = templates.send_body(user_id, template_id, data)
        return sent_id(self._call("POST", templates.SEND_PATH, json=body))

    def send_anonymous(self, anonymous_id: str, conversation_id: str, message: dict) -> str:
        """POST /v2.0/oa/message: a visitor of the OA's web chat widget is answered through the
        older v2 API, inside the conversation their message named; return Zalo's message_id."""
        body = {"recipient": {"anonymous_id": anonymous_id, "conversation_id": conversation_id}, "message": message}
        data = self._call("POST", "/v2.0/oa/message", json=body)
        return str(data.get("message_id", ""))

    def upload(self, kind: str, data: bytes, filename: str, content_type: str) -> str:
        """Upload to /v2.0/oa/upload/<kind>; return the attachment_id (image, gif) or token (file)."""
        files = {"file": (filename, data, content_type)}
        result = self._call("POST", f"/v2.0/oa/upload/{kind}", files=files)
        return str(result.get(UPLOAD_FIELD[kind], ""))

    def user_detail(self, user_id: str) -> dict:
        params = {"data": json.dumps({"user_id": user_id})}
        return self._call("GET", "/v3.0/oa/user/detail", params=params)

    def recent_chats(self, offset: int = 0, count: int = HISTORY_PAGE) -> list[dict]:
        """GET /v2.0/oa/listrecentchat: the OA's chats by latest activity, newest first, each as
        its latest message (`src` 1 from the user, 0 from the OA; `time` in ms)."""
        return self._history("/v2.0/oa/listrecentchat", {"offset": offset, "count": count})

    def conversation(self, user_id: str, offset: int = 0, count: int = HISTORY_PAGE) -> list[dict]:
        """GET /v2.0/oa/conversation: one user's messages in both directions, newest first."""
        return self._history("/v2.0/oa/conversation", {"user_id": user_id, "offset": offset, "count": count})

    def _history(self, path: str, query: dict) -> list[dict]:
        if not 0 < query["count"] <= HISTORY_PAGE or query["offset"] < 0:
            raise ValueError(f"history pages hold 1..{HISTORY_PAGE} items from offset 0 on")
        data = self._call("GET", path, params={"data": json.dumps(query)})
        # past the last page Zalo answers an empty `data`, which _parse turns into {}
        return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []

    def get_oa(self) -> dict:
        """The OA's profile: a cheap read that tells whether Zalo answers at all."""
        return self._call("GET", "/v2.0/oa/getoa")

    def _call(self, method: str, path: str, **kwargs) -> dict:
        """One request; on an auth error refresh the token once and try again."""
        token = self.tokens.access_token()
        try:
            return self._request(method, path, headers={"access_token": token}, **kwargs)
        except ZaloAuthError as exc:
            self.hooks.on_token_rejected(exc)
            fresh = self.tokens.refresh(token)
            return self._request(method, path, headers={"access_token": fresh}, **kwargs)

    def _answer(self, resp: requests.Response, path: str) -> dict:
        """The `data` of an answer; Zalo says what failed by a negative `error` in an HTTP 200."""
        if resp.status_code == 429 or resp.status_code >= 500:
            raise self._http_error(resp)
        try:
            body = resp.json()
        except ValueError:
            raise ZaloRetryable(f"Zalo answered non-JSON (HTTP {resp.status_code})", status=resp.status_code) from None
        code = int(body.get("error") or 0)
        if code != 0:
            raise error_for(code, str(body.get("message", "")))
        return body.get("data") or {}

    def _http_error(self, resp: requests.Response) -> PartnerError:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if resp.status_code == 429:  # waiting past our own rate window never helps
            retry_after = min(retry_after or 1.0, self.window)
        # asked for a 429 or a 5xx only, which status_error always answers with an error
        return cast(PartnerError, status_error(ERRORS, resp.status_code, f"Zalo HTTP {resp.status_code}", retry_after))
