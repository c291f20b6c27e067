"""What the sandbox page shows of the later features, with `make run`'s real processes (bin/run:
Redis, the simulators, web and worker) driven through the page's own API, as a person clicking it:

- the satisfaction survey (on for the default connection in sandbox mode, config/sandbox.py):
  "Resolve" in the inbox → the rating question on the phone → "4" typed on the phone → the note
  "rated 4/5" in the inbox, and no customer message "4";
- the two merging OAs (sandbox/connections.py MERGING): "Lan Zalo" writes to Shop HN and to Shop
  HCM from the phone → one FreshChat user with two conversations, one in each OA's topic; the
  agent's reply in each reaches her phone through that OA.
"""

from __future__ import annotations

import pytest
import requests

from app.texts import say
from config import Settings
from sandbox.connections import MERGING
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


def test_one_person_on_the_two_merging_oas_is_one_freshchat_user_with_a_conversation_each(stack):
    oas = {m["name"]: (m["oa"]["oa_id"], m["person"]["user_id"], m["channel_id"]) for m in MERGING}
    by_app = set()
    for name, (oa, lan, _topic) in oas.items():
        (user,) = state(stack, oa)["zalo"]["users"]  # the page puts her on each OA's phone
        assert (user["user_id"], user["display_name"]) == (lan, "Lan Zalo")
        by_app.add(user["user_id_by_app"])
        assert post(stack, "zalo/send", {"oa": oa, "user_id": lan, "kind": "text", "text": f"Chào {name}"})["ok"]
    assert len(by_app) == 1  # one person: two OA-scoped ids, one id by app

    def hers() -> list[dict]:
        return [
            c for c in state(stack, oas["Sandbox Shop HN"][0])["inbox"]["conversations"] if c["zalo_user_id"] in by_app
        ]

    found = wait_until(lambda: len(hers()) == 2 and hers(), timeout=30, what="her two conversations")
    assert len({c["fc_user_id"] for c in found}) == 1  # one FreshChat user

    def wrote_to() -> list[set[str]]:  # what her profile says she wrote to, seen from each conversation
        return [set((c["profile"].get("zalo_oa") or "").split("; ")) for c in hers()]

    wait_until(lambda: wrote_to() == [set(oas)] * 2, timeout=20, what="both OAs on her profile")
    assert sorted((c["topic_oa"], c["topic"], texts_in(c, False)) for c in found) == [
        (name, topic, [f"Chào {name}"]) for name, (_oa, _lan, topic) in sorted(oas.items())
    ]
    for conv in found:
        oa, lan, _topic = oas[conv["topic_oa"]]
        post(stack, "agent/reply", {"oa": oa, "conversation_id": conv["id"], "text": f"Dạ, {conv['topic_oa']} đây ạ"})
    for name, (oa, lan, _topic) in oas.items():

        def replies(oa=oa, lan=lan) -> list[str]:
            return [i["text"] for i in state(stack, oa)["zalo"]["chats"].get(lan, []) if i["from"] == "oa"]

        wait_until(lambda r=replies: r(), timeout=20, what=f"the reply on {name}'s phone")
        assert replies() == [f"Dạ, {name} đây ạ"]  # through this OA, and only this OA's reply
