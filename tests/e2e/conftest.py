"""Fixtures for real-process tests: simulators in a thread, bridge processes per test."""

from __future__ import annotations

import pytest

from sandbox.procs import Bridge
from sandbox.server import start_in_thread


@pytest.fixture(scope="session")
def partners():
    base, zalo, fc, stop = start_in_thread()
    yield base, zalo, fc
    stop()


@pytest.fixture
def sims(partners, redis):
    base, zalo, fc = partners
    zalo.reset()
    fc.reset()
    return base, zalo, fc


@pytest.fixture
def make_bridge(sims, redis_server, tmp_path):
    base, zalo, fc = sims
    started: list[Bridge] = []

    def make(workers: int = 1, **env) -> Bridge:
        bridge = Bridge(redis_server.url, base, fc.public_key_pem_rsa_label, tmp_path, **env)
        started.append(bridge)  # stopped at teardown even if it never became ready
        bridge.start_all(workers=workers)
        fc.webhook_url = bridge.url + "/webhooks/freshchat"  # FreshChat echoes API posts, like the real one
        return bridge

    yield make
    for bridge in started:
        bridge.stop()
    fc.webhook_url = None
