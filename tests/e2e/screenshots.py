"""`python -m tests.e2e.screenshots`: the admin console's screenshots in docs/ (console-*.png).

tests/e2e/test_console_browser.py takes them as it walks through the console (sign-in,
dashboard at 1280 px and at a phone's 390 px, a connection's form, events and dead letters);
this runs that test with docs/ as the place to put them. It needs what the test needs
(Debian's chromium and chromium-driver) and fails without them instead of skipping."""

from __future__ import annotations

import os
import sys

import pytest

from sandbox.procs import ROOT


def main() -> int:
    os.environ["CONSOLE_SCREENSHOTS_DIR"] = str(ROOT / "docs")
    os.environ["CI"] = "true"  # no browser is a failure here, not a skip
    return pytest.main(["-q", "-p", "no:cacheprovider", str(ROOT / "tests/e2e/test_console_browser.py")])


if __name__ == "__main__":
    sys.exit(main())
