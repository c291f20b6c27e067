"""The web process's read deadline (app/web/webserver.py), without gunicorn: a client that trickles
its request is read as a closed connection once the deadline passes, so its thread is freed.

The same defence under real gunicorn with many slow clients at once is measured by
`python -m bench.slow_clients` (it used to run here as a 13 s test)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from app.web import webserver
from app.web.webserver import DeadlineSocket, DeadlineThreadWorker


@pytest.fixture
def pair():
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


def trickle(sock, stop: threading.Event, seconds: float = 3.0) -> None:
    """One byte at a time like a slow client, for `seconds` (or until `stop`), then hang up."""
    until = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < until:
        try:
            sock.sendall(b"X")
        except OSError:
            return
        time.sleep(0.02)
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the test is over and closed it


def read_until_closed(sock) -> tuple[bytes, float]:
    started, got = time.monotonic(), b""
    while chunk := sock.recv(1024):
        got += chunk
    return got, time.monotonic() - started


def test_a_trickling_client_reads_as_closed_once_its_deadline_passes(pair):
    server, client = pair
    stop = threading.Event()
    slow = threading.Thread(target=trickle, args=(client, stop), daemon=True)
    slow.start()
    sock = DeadlineSocket(server)
    sock.start_request(0.3)
    try:
        got, took = read_until_closed(sock)
    finally:
        stop.set()
        slow.join()
    assert got and set(got) == {ord("X")}  # what came before the deadline was read
    assert 0.3 <= took < 2.5  # the client was still sending (for 3 s): only the deadline ended the read
    assert server.gettimeout() is None  # gunicorn's own timeout is given back after each read


def test_a_silent_client_reads_as_closed_at_its_deadline(pair):
    server, client = pair
    hang_up = threading.Timer(3.0, client.shutdown, (socket.SHUT_WR,))  # ends the read if nothing else does
    hang_up.start()
    sock = DeadlineSocket(server)
    sock.start_request(0.2)
    started = time.monotonic()
    try:
        assert sock.recv(1024) == b""
    finally:
        hang_up.cancel()
    assert 0.2 <= time.monotonic() - started < 2.5 and server.gettimeout() is None


def test_without_a_request_under_way_reads_are_plain(pair):
    server, client = pair
    client.sendall(b"GET")
    assert DeadlineSocket(server).recv(1024) == b"GET"


def test_each_request_of_a_connection_gets_the_whole_deadline(monkeypatch):
    handled = []
    monkeypatch.setattr(webserver.ThreadWorker, "enqueue_req", lambda self, conn: None)
    monkeypatch.setattr(webserver.ThreadWorker, "handle", lambda self, conn: handled.append(conn.sock._deadline))

    class Conn:
        sock = object()

    worker, conn = DeadlineThreadWorker.__new__(DeadlineThreadWorker), Conn()
    worker.enqueue_req(conn)
    assert isinstance(conn.sock, DeadlineSocket)
    before = time.monotonic()
    worker.handle(conn)
    worker.enqueue_req(conn)  # keep-alive: the same connection comes back, wrapped once
    assert not isinstance(conn.sock._sock, DeadlineSocket)
    worker.handle(conn)
    assert len(handled) == 2 and handled[1] >= handled[0] >= before + webserver.READ_DEADLINE_SECONDS
