"""`make run` with no credentials: bin/run starts Redis, the simulators, web and worker in
sandbox mode; /sandbox moves messages both ways through the real path (latency printed; bench/ measures it); no
secret reaches the page; Ctrl-C (SIGINT to the foreground process group) stops every process.

The stack is started once for this module, the way a person runs it (bin/run is what `make
run` executes after installing), with its own ports and var directory."""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from config.sandbox import DEFAULTS
from sandbox.procs import ROOT, descendants, free_port, wait_until
from tests.sandbox import PDF, png_bytes

DEMO_USER = "4937104852669371342"  # the page's fixed "Minh Khánh"


class RunStack:
    """bin/run in its own session, as a terminal would run it in the foreground."""

    def __init__(self, var: Path):
        self.var = var
        self.ports = {"PORT": free_port(), "REDIS_PORT": free_port(), "SANDBOX_PARTNERS_PORT": free_port()}
        self.url = f"http://127.0.0.1:{self.ports['PORT']}"
        self.log = var / "run.log"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict:
        """No partner credentials, no REDIS_URL: exactly the fresh-clone case."""
        drop = ("ZALO_", "FRESHCHAT_", "SANDBOX", "REDIS_URL", "PUBLIC_BASE_URL", "MEDIA_DIR", "SECRET_KEY")
        env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
        env.update(
            {k: str(v) for k, v in self.ports.items()},
            VAR_DIR=str(self.var),
            LOG_FORMAT="text",
            PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        )
        return env

    def start(self) -> RunStack:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                ["bin/run"], cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(self.ready, timeout=60, what="make run's bridge and simulators")
        return self

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.output()
        try:
            state = requests.get(self.url + "/sandbox/api/state", timeout=2).json()
            return requests.get(self.url + "/readyz", timeout=2).ok and state.get("partners") == "ok"
        except (requests.RequestException, ValueError):
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ctrl_c(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(60)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    run = RunStack(tmp_path_factory.mktemp("make-run"))
    try:
        yield run.start()
    finally:
        if run.proc and run.proc.poll() is None:  # the Ctrl-C test did not run or failed
            stop_everything(run)


def stop_everything(run: RunStack) -> None:
    """Ctrl-C, then SIGKILL whatever survived (honcho's children live in their own sessions)."""
    left = descendants(run.proc.pid)
    try:
        run.ctrl_c()
    finally:
        for pid in filter(alive, left):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


# -- helpers --------------------------------------------------------------------------------------


def post(stack, path: str, body: dict) -> dict:
    resp = requests.post(f"{stack.url}/sandbox/api/{path}", json=body, timeout=20)
    assert resp.status_code == 200, resp.text
    return resp.json()


def state(stack) -> dict:
    return requests.get(stack.url + "/sandbox/api/state", timeout=5).json()


def inbox_messages(stack) -> list[dict]:
    """Messages of the demo user's newest conversation, as the agent inbox shows them."""
    conversations = [c for c in state(stack)["inbox"]["conversations"] if c["zalo_user_id"] == DEMO_USER]
    return conversations[0]["messages"] if conversations else []


def phone_messages(stack) -> list[dict]:
    return state(stack)["zalo"]["chats"].get(DEMO_USER, [])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def conversation_id(stack) -> str:
    """The demo user's conversation, started with a first message when a test runs alone."""

    def found():
        return next((c["id"] for c in state(stack)["inbox"]["conversations"] if c["zalo_user_id"] == DEMO_USER), None)

    if not found():
        post(stack, "zalo/send", {"user_id": DEMO_USER, "kind": "text", "text": "Xin chào"})
    return wait_until(found, timeout=10, what="the demo user's conversation")


# -- tests (in file order: the last one stops the stack) ------------------------------------------


def test_the_page_exists_only_in_sandbox_mode(client):
    """With partner credentials (the `client` fixture's settings) there is no /sandbox at all."""
    assert client.get("/sandbox").status_code == 404
    assert client.get("/sandbox/api/state").status_code == 404


def test_make_run_announces_sandbox_mode_and_serves_the_page(stack):
    banner = stack.output()
    assert "SANDBOX MODE" in banner and f"http://localhost:{stack.ports['PORT']}/sandbox" in banner
    page = requests.get(stack.url + "/sandbox", timeout=5)
    assert page.status_code == 200 and 'id="zalo-messages"' in page.text and 'id="fc-messages"' in page.text
    assert requests.get(stack.url + "/sandbox/static/sandbox.js", timeout=5).status_code == 200
    (demo,) = [u for u in state(stack)["zalo"]["users"] if u["user_id"] == DEMO_USER]
    assert {k: demo[k] for k in ("display_name", "send_error", "follows")} == {
        "display_name": "Minh Khánh",
        "send_error": None,
        "follows": True,
    }
    assert demo["user_id_by_app"]  # the person's app-wide id, shown beside the OA's


def test_text_typed_on_either_side_arrives_on_the_other_and_its_latency_is_printed(stack):
    """Measured by the simulators' own clocks (one process): when the text was typed on one
    side, when the bridge's call brought it to the other. How long this test takes to poll the
    page's state (a busy machine's share) is no part of it."""
    typed, reply = "Chào shop, còn hàng không?", "Dạ còn ạ!"
    sent = post(stack, "zalo/send", {"user_id": DEMO_USER, "kind": "text", "text": typed})
    assert sent == {"ok": True, "webhook_statuses": [200]}  # the bridge queued a signed webhook
    arrived = wait_until(lambda: message_with(inbox_messages(stack), typed), timeout=10, what="the Zalo message")
    typed_at = next(i["time"] for i in phone_messages(stack) if i["from"] == "user" and i["text"] == typed)
    post(stack, "agent/reply", {"conversation_id": conversation_id(stack), "text": reply})
    shown = lambda: next((i for i in phone_messages(stack) if i["from"] == "oa" and i["text"] == reply), None)  # noqa: E731
    on_phone = wait_until(shown, timeout=10, what="the agent's reply on the phone")
    replied_at = epoch_ms(message_with(inbox_messages(stack), reply)["time"])
    inbound, outbound = (epoch_ms(arrived["time"]) - typed_at) / 1000, (on_phone["time"] - replied_at) / 1000
    print(f"\nsandbox API latency: Zalo→FreshChat {inbound:.3f}s, FreshChat→Zalo {outbound:.3f}s")
    # Printed, not asserted against a threshold: timing is measured by bench/ (bench.relay's
    # end-to-end latency), never by a timed assertion. Each side came after it was typed.
    assert inbound >= 0 and outbound >= 0


def message_with(messages: list[dict], text: str) -> dict | None:
    return next((m for m in messages if any(p.get("text") == text for p in m["parts"])), None)


def epoch_ms(stamp: str) -> int:
    """FreshChat's `2026-12-07T23:31:46.325Z`, in milliseconds."""
    return round(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def test_media_from_either_side_is_shown_byte_exact(stack):
    photo, attachment = png_bytes(700), png_bytes(900)
    post(
        stack,
        "zalo/send",
        {
            "user_id": DEMO_USER,
            "kind": "image",
            "file": {"name": "ao.png", "content_type": "image/png", "data": b64(photo)},
        },
    )
    post(
        stack,
        "zalo/send",
        {
            "user_id": DEMO_USER,
            "kind": "file",
            "file": {"name": "đơn hàng.pdf", "content_type": "application/pdf", "data": b64(PDF)},
        },
    )
    wait_until(
        lambda: [p for m in inbox_messages(stack) for p in m["parts"] if p["kind"] == "file"],
        timeout=10,
        what="the file in the inbox",
    )
    parts = [p for m in inbox_messages(stack) for p in m["parts"] if p["kind"] in ("image", "file")]
    assert [fetch(stack, p["url"]) for p in parts] == [photo, PDF] and parts[1]["name"] == "đơn hàng.pdf"
    post(
        stack,
        "agent/attach",
        {
            "conversation_id": conversation_id(stack),
            "name": "mau.png",
            "content_type": "image/png",
            "data": b64(attachment),
        },
    )
    wait_until(
        lambda: [i for i in phone_messages(stack) if i["from"] == "oa" and i["kind"] == "image"],
        timeout=10,
        what="the agent's image on the phone",
    )
    shown = next(i for i in phone_messages(stack) if i["from"] == "oa" and i["kind"] == "image")
    assert fetch(stack, shown["url"]) == attachment


def fetch(stack, url: str) -> bytes:
    """Links on the page are relative to the bridge (media, or partner media through its proxy)."""
    resp = requests.get(stack.url + url if url.startswith("/") else url, timeout=5)
    assert resp.status_code == 200, url
    return resp.content


def test_refusal_note_token_refresh_and_resolve_from_the_page(stack):
    conversation = conversation_id(stack)
    post(stack, "zalo/refuse", {"user_id": DEMO_USER, "display_name": "Minh Khánh", "send_error": -230})
    post(stack, "agent/reply", {"conversation_id": conversation, "text": "Bạn ơi?"})
    wait_until(
        lambda: [m for m in inbox_messages(stack) if m["private"] and "-230" in m["parts"][0]["text"]],
        timeout=10,
        what="the not-delivered note",
    )
    post(stack, "zalo/refuse", {"user_id": DEMO_USER, "display_name": "Minh Khánh", "send_error": None})
    post(stack, "zalo/expire-token", {})
    post(stack, "agent/reply", {"conversation_id": conversation, "text": "Sau khi làm mới token"})
    wait_until(
        lambda: any(i["text"] == "Sau khi làm mới token" for i in phone_messages(stack)),
        timeout=10,
        what="the reply after the token expired",
    )
    assert state(stack)["status"]["zalo_refreshes"] == 1 and state(stack)["status"]["zalo_token"]["present"]
    post(stack, "agent/resolve", {"conversation_id": conversation})
    assert next(c for c in state(stack)["inbox"]["conversations"] if c["id"] == conversation)["status"] == "resolved"


def known_secrets(stack) -> list[str]:
    """Every credential in play: sandbox defaults, the per-checkout secret, the rotated Zalo pair."""
    partners = f"http://127.0.0.1:{stack.ports['SANDBOX_PARTNERS_PORT']}"
    tokens = requests.get(partners + "/zalo/_sim/state", timeout=5).json()["tokens"]
    values = [
        DEFAULTS[k]
        for k in (
            "zalo_app_secret",
            "zalo_oa_secret_key",
            "zalo_access_token",
            "zalo_refresh_token",
            "freshchat_api_key",
        )
    ]
    secret_key = (stack.var / "sandbox-secret").read_text().strip()
    return values + [secret_key, tokens["access_token"], tokens["refresh_token"]]


def test_no_secret_reaches_the_page(stack):
    pages = [
        requests.get(stack.url + path, timeout=5).text
        for path in ("/sandbox", "/sandbox/api/state", "/sandbox/static/sandbox.js")
    ]
    leaked = [s for s in known_secrets(stack) for page in pages if s in page]
    assert leaked == []
    assert requests.get(stack.url + "/sandbox/partners/zalo/_sim/state", timeout=5).status_code == 404
    assert raw_get(stack, "/sandbox/partners/zalo/cdn/../_sim/state") == 404  # the proxy serves media only


def raw_get(stack, path: str) -> int:
    """A request path sent as written (requests would resolve the `..` itself)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.ports["PORT"], timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped by whichever init this machine has."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) != "Z"
    except (OSError, IndexError):
        return False


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_ctrl_c_stops_every_process_make_run_started(stack):
    started = descendants(stack.proc.pid)
    assert len(started) >= 6  # redis, simulators, gunicorn + workers, worker supervisor + RQ children
    started_at = time.monotonic()
    assert stack.ctrl_c() in (0, 130)
    print(f"\nmake run stopped {len(started) + 1} processes in {time.monotonic() - started_at:.1f}s")
    wait_until(lambda: not [p for p in started if alive(p)], timeout=10, what="every process to exit")
    assert [port for port in stack.ports.values() if listening(port)] == []
