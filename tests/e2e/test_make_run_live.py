"""`make run` in live mode (credentials from a .env file, here pointing at the simulators): the
banner says LIVE, the terminal shows one log format (honcho's time and process name, then the
bridge's text lines, gunicorn's included), a message goes through, and Ctrl-C stops every
process quietly: no traceback, no error line (Redis going away while the worker stops is none)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis as redis_lib
import requests

from sandbox.procs import ROOT, descendants, free_port, wait_until

USER = "8300000000000000001"
BIN_RUN_SAYS = ("read ", "Redis ", "warning: Redis ", "LIVE MODE")  # bin/run's own lines before honcho starts
HONCHO_LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<name>[\w.]+)\s*\| (?P<text>.*)$")
BRIDGE_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|CRITICAL) \[[^\]]*\] [\w.]+: \S")


def dotenv(path: Path, partners: str, public_key: str, port: int) -> None:
    values = {
        "SECRET_KEY": "make-run-live-secret-0123456789",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ZALO_APP_ID": "1000000000000000001",
        "ZALO_OA_ID": "2000000000000000002",
        "ZALO_APP_SECRET": "sandbox-app-secret",
        "ZALO_OA_SECRET_KEY": "sandbox-oa-secret-key",
        "ZALO_ACCESS_TOKEN": "sandbox-access-token-0",
        "ZALO_REFRESH_TOKEN": "sandbox-refresh-token-0",
        "ZALO_API_BASE_URL": partners + "/zalo",
        "ZALO_OAUTH_BASE_URL": partners + "/zalo",
        "FRESHCHAT_API_URL": partners + "/freshchat/v2",
        "FRESHCHAT_API_KEY": "sandbox-freshchat-api-key",
        "FRESHCHAT_CHANNEL_ID": "sandbox-zalo-topic",
        "MEDIA_FETCH_ALLOW_PRIVATE": "true",
        "WORKER_CONCURRENCY": "2",
        "WEB_CONCURRENCY": "1",
    }
    key = public_key.replace("\n", "\\n")
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()) + f'FRESHCHAT_WEBHOOK_PUBLIC_KEY="{key}"\n')


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_live_make_run_prints_one_format_and_ctrl_c_stops_quietly(sims, tmp_path):
    base, zalo, fc = sims
    port = free_port()
    dotenv(tmp_path / "live.env", base, fc.public_key_pem_rsa_label, port)
    drop = ("ZALO_", "FRESHCHAT_", "SANDBOX", "REDIS_URL", "PUBLIC_BASE_URL", "MEDIA_DIR", "SECRET_KEY", "LOG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(
        ENV_FILE=str(tmp_path / "live.env"),
        VAR_DIR=str(tmp_path / "var"),
        PORT=str(port),
        REDIS_PORT=str(free_port()),
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    )
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bin/run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and _ready(url), timeout=60, what="make run's bridge")
        assert zalo.send_text(url + "/webhooks/zalo", USER, "xin chào").statuses == [200]
        wait_until(lambda: fc.state()["users"], timeout=20, what="the message in FreshChat")
        with pytest.raises(redis_lib.AuthenticationError):  # another local user cannot queue work
            redis_lib.Redis(port=int(env["REDIS_PORT"])).ping()
        started = descendants(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        code = proc.wait(30)
    wait_until(lambda: not [p for p in started if alive(p)], timeout=10, what="every process to exit")
    assert code in (0, 130)
    text = log.read_text(errors="replace")
    assert "LIVE MODE" in text and "SANDBOX MODE" not in text
    assert "Traceback" not in text and " ERROR " not in text, text
    assert (tmp_path / "var" / "redis-password").read_text().strip() not in text
    for line in text.splitlines():
        if line.startswith(BIN_RUN_SAYS):
            continue
        match = HONCHO_LINE.match(line)
        assert match and (match["name"] == "system" or BRIDGE_LINE.match(match["text"])), line
    assert "gunicorn.error: Starting gunicorn" in text and "redis.unreachable" not in text
    assert "web.1" in text and "worker.1" in text and "redis.1" in text


def _ready(url: str) -> bool:
    try:
        return requests.get(url + "/readyz", timeout=2).ok
    except requests.RequestException:
        return False
