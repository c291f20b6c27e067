"""gunicorn hooks of the web process (Procfile: `--config python:app.web.gunicorn_hooks`).

Every gunicorn process of a web host counts the webhooks it answers; a scrape of GET /metrics,
whichever process takes it, must add them all up (app/web/metrics.py). prometheus_client's
multiprocess mode does that through files in PROMETHEUS_MULTIPROC_DIR, one per process.

The master makes a fresh directory of its own before it forks, and its processes inherit it,
so no other process can ever share it: nothing has to be wiped, and two web instances on one
host (or a restart while the old master still exits) cannot reset or mix each other's counts.
Workers write nothing there: what they count is in Redis, for web hosts anywhere to read. A
set PROMETHEUS_MULTIPROC_DIR names where these directories go (default: the system's
temporary folder); the master removes its own when it exits. Only module-level names that
gunicorn knows as settings are read as such: the hooks below, `forwarded_allow_ips` and
`control_socket_disable`.

gunicorn believes X-Forwarded-Proto from 127.0.0.1 unless told otherwise; the bridge reads the
forwarding headers in one place, from TRUSTED_PROXIES only (app/web/proxies.py), so gunicorn
believes none.

gunicorn 27 opens a control socket (for `gunicornc`) in $XDG_RUNTIME_DIR or else
$HOME/.gunicorn; the image's user may write neither, and gunicorn then logs
`Control server error: [Errno 13] Permission denied` at every start. Nothing here uses it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter

from prometheus_client import values

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "bridge-web-metrics-"
_OWN: dict[str, str] = {}
forwarded_allow_ips = ""
control_socket_disable = True  # gunicorn's setting (`--no-control-socket`): no gunicornc socket


def on_starting(server: Arbiter) -> None:
    base = os.environ.get(VARIABLE) or None
    if base:
        os.makedirs(base, exist_ok=True)
    path = tempfile.mkdtemp(prefix=PREFIX, dir=base)
    _OWN["path"] = os.environ[VARIABLE] = path
    # prometheus_client chose how counters keep their values when it was first imported, and
    # importing this module (package app) imported it before the variable was set: choose again,
    # or every worker counts in its own memory and /metrics shows no webhook at all.
    values.ValueClass = values.get_value_class()
    server.log.info("web metrics of this host's processes are added up in %s", path)


def on_exit(server: Arbiter) -> None:
    if "path" in _OWN:
        shutil.rmtree(_OWN.pop("path"), ignore_errors=True)
