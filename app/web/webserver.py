"""The web process's gunicorn worker: gthread, plus a deadline on reading each request.

gunicorn's gthread worker hands a connection to a thread once its first byte arrives, and the
thread then blocks until the headers and body are complete: a client sending one byte every
few seconds holds a thread for as long as it likes, and 2 × 8 such clients took the web down.
This worker gives every request READ_DEADLINE_SECONDS from the moment a thread takes it to
its last header and body byte; a client slower than that reads as a closed connection, its
thread is freed, and the request never reaches the app whole (an incomplete body fails its
signature, so nothing is queued from it).

A deadline frees threads, it does not multiply them: each slow client still holds one for up
to the deadline. Many threads (Procfile WEB_THREADS, cheap while they wait on a socket) keep
room for real requests; the README says which setup is safe on the open internet (a buffering
proxy in front).
"""

from __future__ import annotations

import socket
import time

import gunicorn.http.wsgi
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import TConn, ThreadWorker

from app.logs import log_handler
from config import ConfigError, load_settings

READ_DEADLINE_SECONDS = 10.0  # Zalo and FreshChat send a few KiB at once; people never reach here

# gunicorn names itself and its version in a Server header on every answer.
gunicorn.http.wsgi.SERVER = "bridge"


class DeadlineSocket:
    """A client socket whose reads all end by one deadline, restarted for each request."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._deadline: float | None = None

    def start_request(self, seconds: float) -> None:
        self._deadline = time.monotonic() + seconds

    def recv(self, size: int, *flags: int) -> bytes:
        if self._deadline is None:
            return self._sock.recv(size, *flags)
        left = self._deadline - time.monotonic()
        if left <= 0:
            return b""  # the parser sees a closed connection and lets the thread go
        before = self._sock.gettimeout()  # None while serving; gunicorn's own when it drains
        self._sock.settimeout(left if before is None else min(left, before))
        try:
            return self._sock.recv(size, *flags)
        except TimeoutError:
            return b""
        finally:
            self._sock.settimeout(before)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class DeadlineThreadWorker(ThreadWorker):
    """`--worker-class app.web.webserver.DeadlineThreadWorker`."""

    def enqueue_req(self, conn: TConn) -> None:
        if not isinstance(conn.sock, DeadlineSocket):
            conn.sock = DeadlineSocket(conn.sock)
        super().enqueue_req(conn)

    def handle(self, conn: TConn) -> object:
        conn.sock.start_request(READ_DEADLINE_SECONDS)
        return super().handle(conn)


class BridgeLogger(Logger):
    """gunicorn's own lines (starting, booting workers, signals) in the bridge's log format, so
    the web process prints one format like every other (Procfile `--logger-class`)."""

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        try:
            settings = load_settings()
        except ConfigError:
            return  # create_app prints each problem and stops the worker: gunicorn's format will do
        self.error_log.handlers[:] = [log_handler(settings)]
