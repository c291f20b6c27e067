"""Shared fixtures for the simulator tests: the partners server and a webhook receiver.

Both run as real threaded HTTP servers, so every test goes over the wire like the bridge.
Test modules import the fixtures from here (`from tests.sandbox import ...`).
"""

from __future__ import annotations

import struct
import threading
import zlib
from types import SimpleNamespace

import pytest
from flask import Flask, jsonify, request

from sandbox.server import serve, start_in_thread


@pytest.fixture(scope="session")
def partners():
    base, zalo, fc, stop = start_in_thread()
    yield SimpleNamespace(base=base, zalo=zalo, fc=fc, zalo_url=base + "/zalo", fc_url=base + "/freshchat/v2")
    stop()


@pytest.fixture
def zalo(partners):
    """The Zalo simulator, reset: tests never see each other's tokens, users or faults."""
    partners.zalo.reset()
    partners.zalo.echo_url = None
    return partners.zalo


@pytest.fixture
def fc(partners):
    partners.fc.reset()
    partners.fc.reopen_mode = "classic"
    partners.fc.webhook_url = None
    return partners.fc


class Receiver:
    """A stand-in bridge that records every webhook (raw bytes and headers) it gets."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests: list[SimpleNamespace] = []
        self.status = 200
        app = Flask("receiver")
        app.add_url_rule("/hook", "hook", self._hook, methods=["POST"])
        # serve() keeps underscore headers, so Zalo's `num_retry` reaches the test
        self.server = serve(app, "127.0.0.1", 0, quiet=True)
        self.url = f"http://127.0.0.1:{self.server.port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _hook(self):
        with self.lock:
            headers = {k.lower(): v for k, v in request.headers.items()}  # WSGI spells num_retry Num-Retry
            self.requests.append(SimpleNamespace(raw=request.get_data(), headers=headers))
        return jsonify({"ok": True}), self.status

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()
            self.status = 200


@pytest.fixture(scope="session")
def receiver_server():
    server = Receiver()
    yield server
    server.server.shutdown()


@pytest.fixture
def receiver(receiver_server):
    receiver_server.clear()
    return receiver_server


def png_bytes(total_size: int | None = None) -> bytes:
    """A real 1x1 PNG; with `total_size`, padded by an ancillary chunk to exactly that size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    tail = chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")
    if total_size is None:
        return head + tail
    padding = total_size - len(head) - len(tail) - 12  # a chunk costs 12 bytes besides its data
    return head + chunk(b"siMp", b"\x00" * padding) + tail


GIF_1X1 = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
