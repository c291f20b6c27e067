"""What the container image found when it was first built, checked on the real processes
without docker (bin/image-check runs the same in the image): gunicorn opens no control socket
in a home its user cannot write, and the worker's health check tells the worker's truth."""

from __future__ import annotations

import subprocess
import sys

from app.bridge.keys import HEARTBEAT
from sandbox.procs import ROOT, Bridge, answers, wait_until


def _health(bridge: Bridge) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workers.health"], cwd=ROOT, env=bridge.env, capture_output=True, text=True, timeout=30
    )


def test_web_starts_without_a_control_socket_error_where_home_cannot_be_written(sims, redis_server, tmp_path):
    base, _, fc = sims
    home = tmp_path / "home-is-a-file"  # not even root can make $HOME/.gunicorn under a file
    home.write_text("")
    bridge = Bridge(redis_server.url, base, fc.public_key_pem_rsa_label, tmp_path, HOME=str(home), XDG_RUNTIME_DIR="")
    try:
        bridge.start("web")
        wait_until(lambda: answers(bridge.url + "/healthz"), timeout=30, what="web /healthz")
        wait_until(lambda: bridge.log("web").count("Booting worker") >= 2, timeout=30, what="both web processes")
    finally:
        bridge.stop()
    log = bridge.log("web")
    assert "Control server error" not in log and "Traceback" not in log, log
    assert "Shutting down: Master" in log


def test_the_worker_health_check_follows_the_worker_heartbeat(sims, redis_server, redis, tmp_path):
    base, _, fc = sims
    bridge = Bridge(redis_server.url, base, fc.public_key_pem_rsa_label, tmp_path)
    no_worker = _health(bridge)
    assert no_worker.returncode == 1 and "no fresh worker heartbeat" in no_worker.stderr
    try:
        bridge.start("worker")
        wait_until(lambda: _health(bridge).returncode == 0, timeout=30, interval=0.5, what="worker health check")
        assert "healthy: worker heartbeat" in _health(bridge).stdout
    finally:
        bridge.stop()
    redis.set(HEARTBEAT, 1.0)  # a heartbeat from long ago: the worker stopped beating
    assert _health(bridge).returncode == 1

    gone = Bridge("redis://127.0.0.1:9/0", base, fc.public_key_pem_rsa_label, tmp_path)
    unreachable = _health(gone)
    assert unreachable.returncode == 1 and "redis unreachable" in unreachable.stderr
