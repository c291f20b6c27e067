"""Fixtures for real-process tests: simulators in a thread, bridge processes per test (or one
stack per module, `shared`), and Debian's headless Chromium for the browser tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import tempfile

import pytest
import redis as redis_lib

from sandbox.procs import Bridge
from sandbox.server import start_in_thread


@pytest.fixture(scope="session")
def partners():
    base, zalo, fc, stop = start_in_thread()
    yield base, zalo, fc
    stop()


SHARED: list[Bridge] = []  # the module's shared stack while it runs


def no_shared_stack() -> None:
    """A fresh Redis and simulators under a running shared stack would change them under its
    feet (and its worker would take the new bridge's jobs)."""
    if SHARED:
        pytest.fail("a test needing its own bridge ran after one using `shared`: put those first in the module")


@pytest.fixture
def sims(partners, redis):
    no_shared_stack()
    base, zalo, fc = partners
    zalo.reset()
    fc.reset()
    return base, zalo, fc


def start_bridge(base, fc, redis_url: str, tmp, started: list[Bridge], workers: int = 1, **env) -> Bridge:
    bridge = Bridge(redis_url, base, fc.public_key_pem_rsa_label, tmp, **env)
    started.append(bridge)  # stopped at teardown even if it never became ready
    bridge.start_all(workers=workers)
    fc.webhook_url = bridge.url + "/webhooks/freshchat"  # FreshChat echoes API posts, like the real one
    return bridge


@pytest.fixture
def make_bridge(sims, redis_server, tmp_path):
    base, zalo, fc = sims
    started: list[Bridge] = []
    yield lambda workers=1, **env: start_bridge(base, fc, redis_server.url, tmp_path, started, workers, **env)
    for bridge in started:
        bridge.stop(signal.SIGKILL)  # the next test flushes Redis: a graceful stop would only take longer
    fc.webhook_url = None


@pytest.fixture(scope="module")
def shared_stack(partners, redis_server, tmp_path_factory):
    """One bridge (gunicorn and one worker, the default settings) for the tests of a module
    that do not need a fresh one: Redis is flushed and the simulators reset once, before it
    starts; each test then keeps to its own Zalo users and conversations."""
    no_shared_stack()
    base, zalo, fc = partners
    if redis_server.proc is None:
        redis_server.start()
    redis_lib.Redis.from_url(redis_server.url).flushall()
    zalo.reset()
    fc.reset()
    started: list[Bridge] = []
    try:
        SHARED.append(start_bridge(base, fc, redis_server.url, tmp_path_factory.mktemp("shared"), started))
        yield SHARED[0], zalo, fc
    finally:
        SHARED.clear()
        for bridge in started:
            bridge.stop(signal.SIGKILL)
        fc.webhook_url = None


@pytest.fixture
def shared(shared_stack):
    """The module's shared bridge and the simulators; faults a test set are cleared after it."""
    bridge, zalo, fc = shared_stack
    yield shared_stack
    for sim in (zalo, fc):
        sim.faults.clear()
    zalo.echo_url = None


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,900",
    "--lang=en-US",
)


def browser_or_skip() -> tuple[str, str]:
    """Chromium and its driver; a missing one fails CI (no silent skips) and skips locally."""
    paths = shutil.which("chromium"), shutil.which("chromedriver")
    if all(paths) and importlib.util.find_spec("selenium"):
        return paths
    reason = "needs Debian's chromium and chromium-driver and selenium (.ci/run installs them)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}",):
        options.add_argument(flag)
    # English pages whatever the machine's locale: the tests read the pages' words.
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()
