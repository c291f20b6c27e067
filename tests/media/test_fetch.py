"""download(): size cap, address checks on every hop, sniffing and filenames."""

from __future__ import annotations

import io
import ipaddress
import socket
import struct
import zipfile
import zlib

import pytest
import requests

from app.media.fetch import BlockedAddress, Downloaded, MediaFetchError, MediaTooLarge, download, sniff
from tests.media.hostile import HOSTILE_TYPES, SCRIPT_PAGE

CDN = "https://cdn.example.com"
HOSTS = {
    "cdn.example.com": ["93.184.216.34"],
    "files.example.com": ["2606:2800:220:1:248:1893:25c8:1946"],
    "internal.example.com": ["10.0.0.5"],
    "loopback.example.com": ["127.0.0.1"],
    "v6-loopback.example.com": ["::1"],
    "metadata.example.com": ["169.254.169.254"],
    "mapped.example.com": ["::ffff:127.0.0.1"],
    "cgnat.example.com": ["100.64.1.1"],
    "mixed.example.com": ["93.184.216.34", "192.168.1.10"],
}
PRIVATE_HOSTS = [h for h in HOSTS if h not in ("cdn.example.com", "files.example.com")]
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def png_bytes() -> bytes:
    """A valid 1x1 RGB PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def gif_bytes() -> bytes:
    """A valid 1x1 GIF89a with a two-colour palette."""
    screen = struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + screen + image + b";"


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("_rels/.rels", "<Relationships/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n%%EOF\n"


class CountingBody(io.RawIOBase):
    """A response body of `size` bytes that records how much was actually read."""

    def __init__(self, size: int):
        self.size, self.sent = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.size - self.sent)
        buffer[:n] = b"\0" * n
        self.sent += n
        return n


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    """Resolve the names above (and IP literals) without a network; records what was asked."""
    asked = []

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        asked.append(host)
        addresses = [host] if _is_ip(host) else HOSTS.get(host)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [_addrinfo(address, port) for address in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _addrinfo(address: str, port: int):
    if ":" in address:
        return socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)
    return socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def fetch(session, url, **kwargs):
    kwargs.setdefault("max_bytes", 1_000_000)
    kwargs.setdefault("allow_private", False)
    return download(session, url, **kwargs)


def test_downloads_bytes_type_and_name(session, requests_mock, dns):
    requests_mock.get(f"{CDN}/photos/abc.png", content=png_bytes(), headers={"Content-Type": "image/png"})
    got = fetch(session, f"{CDN}/photos/abc.png?token=t0k", timeout=3)
    assert got == Downloaded(png_bytes(), "image/png", "abc.png")
    assert dns == ["cdn.example.com"]
    assert requests_mock.last_request.timeout == 3


# --- size cap -----------------------------------------------------------------------------


def test_streamed_body_over_the_cap_stops_early(session, requests_mock):
    body = CountingBody(20_000_000)
    requests_mock.get(f"{CDN}/big", body=body)
    with pytest.raises(MediaTooLarge):
        fetch(session, f"{CDN}/big", max_bytes=100_000)
    assert body.sent < 100_000 + 256 * 1024


def test_body_one_byte_over_the_cap_is_refused(session, requests_mock):
    requests_mock.get(f"{CDN}/big", body=CountingBody(100_001))
    with pytest.raises(MediaTooLarge):
        fetch(session, f"{CDN}/big", max_bytes=100_000)


def test_body_exactly_at_the_cap_is_accepted(session, requests_mock):
    requests_mock.get(f"{CDN}/fits", body=CountingBody(100_000))
    assert len(fetch(session, f"{CDN}/fits", max_bytes=100_000).data) == 100_000


def test_content_length_over_the_cap_is_refused_before_reading(session, requests_mock):
    body = CountingBody(100_001)
    requests_mock.get(f"{CDN}/big", body=body, headers={"Content-Length": "100001"})
    with pytest.raises(MediaTooLarge):
        fetch(session, f"{CDN}/big", max_bytes=100_000)
    assert body.sent == 0


# --- addresses and redirects ----------------------------------------------------------------


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_redirect_to_a_private_address_is_blocked_before_the_request(session, requests_mock, host):
    requests_mock.get(f"{CDN}/a", status_code=302, headers={"Location": f"http://{host}/x"})
    inside = requests_mock.get(f"http://{host}/x", content=b"secret")
    with pytest.raises(BlockedAddress):
        fetch(session, f"{CDN}/a")
    assert not inside.called


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:10.0.0.5]/x",
        "http://0.0.0.0/x",
        "http://[fd00::1]/x",
        "http://[64:ff9b::a9fe:a9fe]/x",
        "http://224.0.0.1/x",
        "http://[2002:a00:5::1]/x",
    ],
)
def test_private_ip_literals_are_blocked(session, requests_mock, url):
    target = requests_mock.get(url, content=b"secret")
    with pytest.raises(BlockedAddress):
        fetch(session, url)
    assert not target.called


def test_public_ipv6_is_allowed(session, requests_mock):
    requests_mock.get("https://files.example.com/doc.pdf", content=PDF)
    assert fetch(session, "https://files.example.com/doc.pdf").content_type == "application/pdf"


@pytest.mark.parametrize("url", ["http://[::ffff:93.184.216.34]/x", "http://[64:ff9b::5db8:d822]/x"])
def test_public_ipv4_behind_ipv6_forms_is_allowed(session, requests_mock, url):
    # DNS64 networks hand out 64:ff9b:: addresses for ordinary public hosts.
    requests_mock.get(url, content=b"ok")
    assert fetch(session, url).data == b"ok"


def test_private_addresses_are_allowed_when_configured(session, requests_mock):
    requests_mock.get(f"{CDN}/a", status_code=302, headers={"Location": "http://internal.example.com:8080/x.png"})
    requests_mock.get("http://internal.example.com:8080/x.png", content=png_bytes())
    got = fetch(session, f"{CDN}/a", allow_private=True)
    assert got.data == png_bytes() and got.filename == "x.png"


def test_five_redirects_are_followed(session, requests_mock, dns):
    for hop in range(5):
        requests_mock.get(f"{CDN}/r{hop}", status_code=301 + (hop % 2), headers={"Location": f"/r{hop + 1}"})
    requests_mock.get(f"{CDN}/r5", content=b"arrived")
    assert fetch(session, f"{CDN}/r0").data == b"arrived"
    assert len(dns) == 6  # every hop was checked


def test_six_redirects_are_too_many(session, requests_mock):
    for hop in range(6):
        requests_mock.get(f"{CDN}/r{hop}", status_code=307, headers={"Location": f"/r{hop + 1}"})
    requests_mock.get(f"{CDN}/r6", content=b"never")
    with pytest.raises(MediaFetchError, match="redirects"):
        fetch(session, f"{CDN}/r0")
    assert requests_mock.call_count == 6


def test_redirect_loop_fails(session, requests_mock):
    requests_mock.get(f"{CDN}/a", status_code=302, headers={"Location": f"{CDN}/b"})
    requests_mock.get(f"{CDN}/b", status_code=302, headers={"Location": f"{CDN}/a"})
    with pytest.raises(MediaFetchError) as caught:
        fetch(session, f"{CDN}/a")
    assert not isinstance(caught.value, BlockedAddress)


@pytest.mark.parametrize(
    "url", ["ftp://cdn.example.com/x", "file:///etc/passwd", "cdn.example.com/x", "gopher://cdn.example.com/"]
)
def test_only_http_and_https(session, requests_mock, url):
    with pytest.raises(MediaFetchError, match="refusing"):
        fetch(session, url)


def test_redirect_to_another_scheme_is_refused(session, requests_mock):
    requests_mock.get(f"{CDN}/a", status_code=302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(MediaFetchError, match="refusing"):
        fetch(session, f"{CDN}/a", allow_private=True)


def test_unresolvable_host(session):
    with pytest.raises(MediaFetchError, match="cannot resolve"):
        fetch(session, "https://nowhere.example.com/x")


# --- content type -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, declared, expected",
    [
        (png_bytes(), "text/html", "image/png"),
        (gif_bytes(), "image/png", "image/gif"),
        (PDF, "application/octet-stream", "application/pdf"),
        (docx_bytes(), "application/zip", DOCX),
    ],
)
def test_the_bytes_win_over_a_wrong_declared_type(session, requests_mock, data, declared, expected):
    requests_mock.get(f"{CDN}/blob", content=data, headers={"Content-Type": declared})
    got = fetch(session, f"{CDN}/blob")
    assert got.content_type == expected and got.data == data


@pytest.mark.parametrize(
    "data, declared, filename, expected",
    [
        (b"plain words", "Text/Plain; charset=UTF-8", None, "text/plain"),
        (b"plain words", "application/octet-stream", "Hợp đồng.docx", DOCX),
        (b"plain words", None, "notes.txt", "text/plain"),
        (b"\x00\x01\x02", None, None, "application/octet-stream"),
        (b"\x00\x01\x02", "binary/octet-stream", "no-extension", "application/octet-stream"),
        (b"", "image/png", None, "application/octet-stream"),  # a picture only from its bytes
        (b"not a picture", "image/png", "a.png", "application/octet-stream"),
        (b"no pdf header", "application/pdf", "a.pdf", "application/octet-stream"),
        (b"plain words", "text/csv", "a.csv", "text/csv"),
        (b"<html>", "text/html", "page.html", "application/octet-stream"),
        (b"<svg/>", None, "a.svg", "application/octet-stream"),
        (b"<html>", "application/octet-stream", "page.htm", "application/octet-stream"),
    ],
)
def test_sniff_fallbacks(data, declared, filename, expected):
    assert sniff(data, declared, filename) == expected


@pytest.mark.parametrize("declared", HOSTILE_TYPES)
@pytest.mark.parametrize("name", ["blob", "photo.png", "page.html", "notes.txt"])
def test_a_partner_type_that_could_run_is_never_kept(session, requests_mock, declared, name):
    requests_mock.get(f"{CDN}/{name}", content=SCRIPT_PAGE, headers={"Content-Type": declared})
    got = fetch(session, f"{CDN}/{name}")
    # Only a name that says text may make it text, which a browser shows and never runs.
    assert got.content_type == ("text/plain" if name == "notes.txt" else "application/octet-stream")
    assert got.data == SCRIPT_PAGE and got.filename == name


@pytest.mark.parametrize("declared", HOSTILE_TYPES)
def test_real_picture_bytes_win_over_a_hostile_type(session, requests_mock, declared):
    requests_mock.get(f"{CDN}/blob", content=png_bytes(), headers={"Content-Type": declared})
    assert fetch(session, f"{CDN}/blob").content_type == "image/png"


# --- filenames --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "disposition, expected",
    [
        ('attachment; filename="report.pdf"', "report.pdf"),
        ("attachment; filename=report.pdf", "report.pdf"),
        ("attachment; filename=\"Bao gia.pdf\"; filename*=UTF-8''B%C3%A1o%20gi%C3%A1.pdf", "Báo giá.pdf"),
        ("attachment; filename*=utf-8'vi'H%E1%BB%A3p%20%C4%91%E1%BB%93ng.pdf", "Hợp đồng.pdf"),
        ('attachment; filename="' + "Báo giá.pdf".encode().decode("latin-1") + '"', "Báo giá.pdf"),
        ('inline; filename="a\\"b.pdf"', 'a"b.pdf'),
    ],
)
def test_filename_from_content_disposition(session, requests_mock, disposition, expected):
    requests_mock.get(f"{CDN}/dl/12345", content=PDF, headers={"Content-Disposition": disposition})
    assert fetch(session, f"{CDN}/dl/12345?sig=x").filename == expected


def test_filename_from_the_url_path(session, requests_mock):
    requests_mock.get(f"{CDN}/files/B%C3%A1o%20gi%C3%A1.pdf", content=PDF)
    assert fetch(session, f"{CDN}/files/B%C3%A1o%20gi%C3%A1.pdf?token=abc").filename == "Báo giá.pdf"


def test_filename_from_the_final_url_after_redirects(session, requests_mock):
    requests_mock.get(f"{CDN}/s/xyz", status_code=302, headers={"Location": "/store/invoice.pdf"})
    requests_mock.get(f"{CDN}/store/invoice.pdf", content=PDF)
    assert fetch(session, f"{CDN}/s/xyz").filename == "invoice.pdf"


def test_hint_wins_and_is_reduced_to_a_name(session, requests_mock):
    requests_mock.get(f"{CDN}/dl/1", content=PDF, headers={"Content-Disposition": 'attachment; filename="other.pdf"'})
    assert fetch(session, f"{CDN}/dl/1", filename_hint="Hợp đồng.pdf").filename == "Hợp đồng.pdf"
    assert fetch(session, f"{CDN}/dl/1", filename_hint="../../etc/pa\nss").filename == "pass.pdf"


@pytest.mark.parametrize(
    "path, hint, data, expected",
    [
        ("/img/8f3a9c", None, png_bytes(), "8f3a9c.png"),
        ("/", None, gif_bytes(), "file.gif"),
        ("/x", "report v1.2", PDF, "report v1.2.pdf"),
        ("/x", "photo.jpg", png_bytes(), "photo.jpg"),
        ("/x", "blob", b"\x00\x01\x02", "blob"),
        ("/x", "Hợp đồng", docx_bytes(), "Hợp đồng.docx"),
    ],
)
def test_extension_is_added_when_missing(session, requests_mock, path, hint, data, expected):
    requests_mock.get(f"{CDN}{path}", content=data)
    assert fetch(session, f"{CDN}{path}?q=1", filename_hint=hint).filename == expected


# --- failures never leak tokens ---------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 404, 410, 500, 503])
def test_non_2xx_fails_with_the_status_but_not_the_query(session, requests_mock, status):
    requests_mock.get(f"{CDN}/media/a.jpg", status_code=status, text="nope")
    with pytest.raises(MediaFetchError) as caught:
        fetch(session, f"{CDN}/media/a.jpg?token=SECRET123&sig=abc")
    assert caught.value.status == status
    assert str(status) in str(caught.value) and "/media/a.jpg" in str(caught.value)
    assert "SECRET123" not in str(caught.value) and "?" not in str(caught.value)


def test_status_after_a_redirect_names_the_failing_hop(session, requests_mock):
    requests_mock.get(f"{CDN}/a?t=SECRET", status_code=302, headers={"Location": "/gone?t=SECRET"})
    requests_mock.get(f"{CDN}/gone", status_code=404)
    with pytest.raises(MediaFetchError, match="404 from https://cdn.example.com/gone$"):
        fetch(session, f"{CDN}/a?t=SECRET")


def test_redirect_without_location_is_an_error(session, requests_mock):
    requests_mock.get(f"{CDN}/a", status_code=302)
    with pytest.raises(MediaFetchError) as caught:
        fetch(session, f"{CDN}/a")
    assert caught.value.status == 302


def test_transport_errors_become_media_errors_without_the_url(session, requests_mock):
    requests_mock.get(f"{CDN}/a", exc=requests.ConnectTimeout(f"timed out: {CDN}/a?token=SECRET"))
    with pytest.raises(MediaFetchError) as caught:
        fetch(session, f"{CDN}/a?token=SECRET")
    assert "ConnectTimeout" in str(caught.value) and "SECRET" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
