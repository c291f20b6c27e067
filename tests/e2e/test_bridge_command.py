"""`bin/bridge` beside `make run`: the same .env, var directory and Redis (started here the way
bin/run starts it: bin/redis-server on REDIS_PORT with the password in var/redis-password),
every `flask bridge` command, and one line when that Redis does not answer."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis as redis_lib

from sandbox.procs import ROOT, free_port, wait_until


def bridge(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bin/bridge", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def beside_make_run(tmp_path):
    """An environment as a plain shell has it (no REDIS_URL), a .env, and make run's Redis."""
    var, port = tmp_path / "var", free_port()
    drop = ("ZALO_", "FRESHCHAT_", "SANDBOX", "REDIS_", "PUBLIC_BASE_URL", "MEDIA_DIR", "SECRET_KEY", "LOG_", "ADMIN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(VAR_DIR=str(var), REDIS_PORT=str(port), ENV_FILE=str(tmp_path / "dot.env"))
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    (tmp_path / "dot.env").write_text("ADMIN_TOKEN=from-dotenv-admin-token-0123456789\n")
    # what bin/run does before it starts honcho: bin/env.sh, then bin/redis-server
    setup = 'source bin/env.sh && echo "$redis_password_file"'
    password_file = subprocess.run(["bash", "-c", setup], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    password_file = Path(ROOT, password_file.stdout.strip())
    server = subprocess.Popen(
        ["bin/redis-server", str(port), str(var / "redis-sandbox"), str(password_file)],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    client = redis_lib.Redis(port=port, password=password_file.read_text().strip())
    wait_until(lambda: _answers(client), timeout=15, what="make run's Redis")
    yield env, client, port, password_file
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(10)


def _answers(client) -> bool:
    try:
        return client.ping()
    except redis_lib.RedisError:
        return False


def test_bin_bridge_runs_every_command_against_make_runs_redis(beside_make_run):
    env, client, port, password_file = beside_make_run
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    with pytest.raises(redis_lib.AuthenticationError):  # another local user has no password
        redis_lib.Redis(port=port).ping()
    client.hset("zfb:dead", "zalo:e1", '{"id": "zalo:e1", "lane": "in:u1", "reason": "made here"}')
    client.zadd("zfb:dead:order", {"zalo:e1": 1})

    listed = bridge(env, "dead-letters", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == "zalo:e1\tin:u1\tmade here\n1 dead letter(s)\n"
    assert listed.stderr == ""  # no start-up warnings before (or after) a command's output
    connections = bridge(env, "connections", "list")
    assert connections.returncode == 0 and connections.stderr == "", connections.stderr
    assert "--help" not in connections.stdout and "sandbox-2" not in connections.stdout  # the CLI stores nothing


def test_an_unreachable_redis_is_one_line(beside_make_run):
    env, client, port, password_file = beside_make_run
    gone = bridge({**env, "REDIS_PORT": str(free_port())}, "dead-letters", "list")
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.count("\n") == 1, gone.stderr
    assert gone.stderr.startswith("Error: Redis at redis://:***@127.0.0.1:")
    assert "is `make run` running?" in gone.stderr and password_file.read_text().strip() not in gone.stderr
