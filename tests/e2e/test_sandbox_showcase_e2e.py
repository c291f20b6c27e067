"""What the sandbox page shows of the later features, with `make run`'s real processes (bin/run:
Redis, the simulators, web and worker) driven through the page's own API, as a person clicking it:

- the satisfaction survey (on for the default connection in sandbox mode, config/sandbox.py):
  "Resolve" in the inbox → the rating question on the phone → "4" typed on the phone → the note
  "rated 4/5" in the inbox, and no customer message "4".
"""

from __future__ import annotations

import pytest
import requests

from app.texts import say
from config import Settings
from sandbox.procs import wait_until
from tests.e2e.test_sandbox_e2e import DEMO_USER, RunStack, post, stop_everything

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    run = RunStack(tmp_path_factory.mktemp("make-run-showcase"))
    try:
        yield run.start()
    finally:
        if run.proc and run.proc.poll() is None:
            stop_everything(run)


def state(stack, oa: str | None = None) -> dict:
    """The page's view, of the OA picked in its selector (the default's when none)."""
    return requests.get(stack.url + "/sandbox/api/state", params={"oa": oa} if oa else {}, timeout=5).json()


def conversations(stack, user: str, oa: str | None = None) -> list[dict]:
    """The user's conversations in the inbox of the OA's FreshChat account, newest first."""
    inbox = state(stack, oa)["inbox"]["conversations"]
    return [c for c in inbox if c["zalo_user_id"] == user]


def texts_in(conversation: dict, private: bool) -> list[str]:
    return [p["text"] for m in conversation["messages"] if m["private"] == private for p in m["parts"] if "text" in p]


def test_resolving_asks_the_phone_for_a_rating_and_the_digit_is_a_note(stack):
    defaults = Settings()
    question = say("customer.survey", defaults.customer_language)
    rated = say("agent.rated", defaults.agent_language, rating=4)
    assert state(stack)["status"]["satisfaction_survey"] is True  # the page says the option is on

    post(stack, "zalo/send", {"user_id": DEMO_USER, "kind": "text", "text": "Cảm ơn shop nhé"})
    conv = wait_until(lambda: conversations(stack, DEMO_USER), timeout=20, what="the conversation")[0]["id"]
    post(stack, "agent/resolve", {"conversation_id": conv})

    def phone_texts() -> list[str]:
        return [i["text"] for i in state(stack)["zalo"]["chats"][DEMO_USER] if i["from"] == "oa"]

    wait_until(lambda: question in phone_texts(), timeout=20, what="the rating question on the phone")
    assert phone_texts().count(question) == 1

    assert post(stack, "zalo/send", {"user_id": DEMO_USER, "kind": "text", "text": "4"})["ok"]
    shown = wait_until(
        lambda: next((c for c in conversations(stack, DEMO_USER) if rated in texts_in(c, True)), None),
        timeout=20,
        what="the rating note in the inbox",
    )
    assert shown["id"] == conv
    assert "4" not in [t for c in conversations(stack, DEMO_USER) for t in texts_in(c, False)]
