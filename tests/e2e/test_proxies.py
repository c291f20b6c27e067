"""deploy/nginx.conf and deploy/Caddyfile, the files operators install, run here in front of a
recording upstream (bench/proxies.py renders them onto loopback with a certificate made for the
run): they pass the client address and scheme the way TRUSTED_PROXIES expects, and hand the
upstream a body only once the client has sent all of it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from bench.proxies import PROXIES, Proxy


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[dict] = []

    def do_POST(self):
        arrived = time.monotonic()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Recorder.seen.append({"arrived": arrived, "headers": dict(self.headers), "body": body})
        answer = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.fixture(params=PROXIES)
def proxy(request, upstream, tmp_path):
    if not shutil.which(request.param):
        reason = f"needs Debian's {request.param} (.ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    running = Proxy(request.param, upstream, tmp_path).start()
    Recorder.seen.clear()  # the start-up probe went through too
    yield running
    running.stop()


def test_the_client_address_and_scheme_reach_the_bridge_and_a_clients_own_do_not(proxy):
    spoofed = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "http"}
    resp = requests.get(proxy.url + "/healthz", headers=spoofed, verify=str(proxy.cert), timeout=10)
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    headers = Recorder.seen[-1]["headers"]
    assert headers["X-Forwarded-For"] == "127.0.0.1", headers
    assert headers["X-Forwarded-Proto"] == "https", headers


def test_a_slow_body_reaches_the_bridge_only_once_it_is_whole(proxy):
    body = b'{"event_name":"user_send_text","pad":"' + b"x" * 4000 + b'"}'
    head = (
        f"POST /webhooks/zalo HTTP/1.1\r\nHost: localhost:{proxy.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with proxy.wrap(socket.create_connection(("127.0.0.1", proxy.port), timeout=10)) as sock:
        sock.sendall(head + body[:100])
        time.sleep(1.0)  # a slow client: the rest of the body a second later
        finished = time.monotonic()
        sock.sendall(body[100:])
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    (seen,) = Recorder.seen
    assert seen["body"] == body
    assert seen["arrived"] >= finished, "the proxy opened the request to the bridge before the body was whole"
