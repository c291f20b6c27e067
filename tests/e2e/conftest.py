"""Fixtures for real-process tests: simulators in a thread, bridge processes per test, and
Debian's headless Chromium for the browser tests."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile

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
