"""`python -m tests.e2e.screenshots`: the admin console's screenshots in docs/ (console-*.png)
and the sandbox page's at 390, 1024 and 1440 px (sandbox-*.png).

tests/e2e/test_console_browser.py takes them as it walks through the console (sign-in,
dashboard at 1280 px and at a phone's 390 px, a connection's form, events and dead letters);
tests/e2e/test_browser.py takes the sandbox's as it checks the page at those widths; this runs
both tests with docs/ as the place to put them. It needs what the test needs
(Debian's chromium and chromium-driver) and fails without them instead of skipping."""

from __future__ import annotations

import os
import sys

import pytest

from sandbox.procs import ROOT

SANDBOX = "test_sandbox_page_rough_edges_at_1024_and_1440"


def main() -> int:
    os.environ["CONSOLE_SCREENSHOTS_DIR"] = os.environ["SANDBOX_SCREENSHOTS_DIR"] = str(ROOT / "docs")
    os.environ["CI"] = "true"  # no browser is a failure here, not a skip
    tests = [str(ROOT / "tests/e2e/test_console_browser.py"), str(ROOT / "tests/e2e/test_browser.py") + "::" + SANDBOX]
    return pytest.main(["-q", "-p", "no:cacheprovider", *tests])


if __name__ == "__main__":
    sys.exit(main())
