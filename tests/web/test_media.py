"""GET /media/<signed> over both stores, and the link signing it relies on."""

from __future__ import annotations

import json
from urllib.parse import quote

import boto3
import pytest
import requests
from botocore.config import Config
from flask import Flask
from moto import mock_aws

from app.media.links import media_url, sign_key, unsign_key
from app.media.store import LocalMediaStore, S3MediaStore
from app.web.media import bp
from config.settings import Settings
from tests.media.hostile import HOSTILE_TYPES, SCRIPT_PAGE

SECRET = "k" * 32
BUCKET = "bridge-media-test"
BASE = "https://bridge.example.com"
VN_NAME = "Báo giá tháng 11.pdf"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
LONG_TEXT = ("Xin chào, đây là tin nhắn rất dài từ nhân viên hỗ trợ 🙏🏽 Cảm ơn quý khách! 🇻🇳\n" * 1000)[:50_000]


def make_app(tmp_path, store) -> Flask:
    app = Flask(__name__)
    app.config["SETTINGS"] = Settings(secret_key=SECRET, media_dir=str(tmp_path), public_base_url=BASE)
    app.extensions["media_store"] = store
    app.register_blueprint(bp)
    return app


def path_for(key: str) -> str:
    return f"/media/{sign_key(SECRET, key)}"


@pytest.fixture
def local(tmp_path):
    return LocalMediaStore(str(tmp_path / "media"))


@pytest.fixture
def client(tmp_path, local):
    return make_app(tmp_path, local).test_client()


@pytest.fixture
def s3_store(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1", config=Config(signature_version="s3v4"))
        s3.create_bucket(Bucket=BUCKET)
        yield S3MediaStore(s3, BUCKET)


# --- local store ---------------------------------------------------------------------------


def test_local_image_is_served_inline_with_exact_bytes(client, local):
    local.put("zalo/96d3cdf3af150460909/0", PNG, content_type="image/png", filename="ảnh.png")
    got = client.get(path_for("zalo/96d3cdf3af150460909/0"))
    assert got.status_code == 200 and got.data == PNG
    assert got.headers["Content-Type"] == "image/png"
    assert got.headers["Content-Disposition"] == ("inline; filename=\"anh.png\"; filename*=UTF-8''%E1%BA%A3nh.png")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"] == "sandbox; default-src 'none'; frame-ancestors 'none'"
    assert got.headers["Cache-Control"] == "private, max-age=3600"
    assert got.headers["Content-Length"] == str(len(PNG))


def test_local_pdf_with_vietnamese_name(client, local):
    local.put("zalo/m/1", b"%PDF-1.4 body", content_type="application/pdf", filename=VN_NAME)
    got = client.get(path_for("zalo/m/1"))
    assert got.data == b"%PDF-1.4 body"
    disposition = got.headers["Content-Disposition"]
    assert disposition.startswith('inline; filename="Bao gia thang 11.pdf"; ')
    assert disposition.endswith("filename*=UTF-8''" + quote(VN_NAME, safe=""))


@pytest.mark.parametrize(
    "content_type, served",
    [
        ("application/zip", "application/zip"),
        ("text/html", "application/octet-stream"),
        ("image/svg+xml", "application/octet-stream"),
        ("application/octet-stream", "application/octet-stream"),
    ],
)
def test_other_types_are_downloads(client, local, content_type, served):
    local.put("zalo/m/2", b"<svg onload=alert(1)>", content_type=content_type, filename="x")
    got = client.get(path_for("zalo/m/2"))
    assert got.headers["Content-Type"] == served
    assert got.headers["Content-Disposition"].startswith("attachment; ")
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Content-Security-Policy"] == "sandbox; default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize("declared", HOSTILE_TYPES + ["image/png"])
def test_local_object_stored_before_the_rule_is_served_with_a_safe_type(client, local, declared):
    """A sidecar written with a partner's raw type (as before this rule): the route decides again."""
    local.put("zalo/old/0", SCRIPT_PAGE, content_type="application/zip", filename="x.png")
    sidecar = local.root / "zalo" / "old" / "0.meta.json"
    sidecar.write_text(json.dumps({"content_type": declared, "filename": "x.png"}))
    got = client.get(path_for("zalo/old/0"))
    assert got.data == SCRIPT_PAGE
    if declared == "image/png":  # a single known type: a browser shows it as a picture, or nothing
        assert (got.headers["Content-Type"], got.headers["Content-Disposition"][:7]) == ("image/png", "inline;")
    else:
        assert got.headers["Content-Type"] == "application/octet-stream"
        assert got.headers["Content-Disposition"].startswith("attachment; ")
    assert got.headers["Content-Security-Policy"] == "sandbox; default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize("stored_type", ["text/plain", "text/plain; charset=utf-8"])
def test_long_vietnamese_text_round_trips_byte_exact(client, local, stored_type):
    assert len(LONG_TEXT) == 50_000
    local.put(
        "fc/4b1e6a0c-2f41-4d7e-9c55-0e6f3b0a9d11/0",
        LONG_TEXT.encode("utf-8"),
        content_type=stored_type,
        filename="message-4b1e6a0c.txt",
    )
    got = client.get(path_for("fc/4b1e6a0c-2f41-4d7e-9c55-0e6f3b0a9d11/0"))
    assert got.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert got.headers["Content-Disposition"].startswith("inline; ")
    assert got.headers["Content-Security-Policy"] == "sandbox; default-src 'none'; frame-ancestors 'none'"
    assert got.data == LONG_TEXT.encode("utf-8")
    assert got.get_data(as_text=True) == LONG_TEXT


def test_local_range_request(client, local):
    local.put("zalo/m/3", PNG, content_type="image/png", filename="a.png")
    got = client.get(path_for("zalo/m/3"), headers={"Range": "bytes=0-7"})
    assert got.status_code == 206 and got.data == PNG[:8]


def test_deleted_object_answers_404(client, local):
    local.put("zalo/m/4", PNG, content_type="image/png", filename="a.png")
    assert client.get(path_for("zalo/m/4")).status_code == 200
    local.delete("zalo/m/4")
    got = client.get(path_for("zalo/m/4"))
    assert got.status_code == 404 and got.get_json() == {"error": "not found"}


def test_never_stored_key_answers_404(client):
    got = client.get(path_for("zalo/never/0"))
    assert got.status_code == 404 and got.get_json() == {"error": "not found"}


def test_signed_but_invalid_key_answers_404(client):
    assert client.get(path_for("../../etc/passwd")).status_code == 404


@pytest.mark.parametrize(
    "mangle",
    [
        lambda s: s[:-1] + ("A" if s[-1] != "A" else "B"),  # signature changed
        lambda s: sign_key(SECRET, "zalo/other/0").split(".")[0] + "." + s.split(".")[1],  # payload swapped
        lambda s: s.split(".")[0],  # signature dropped
        lambda s: "not-a-link",
        lambda s: "ảnh.png",
        lambda s: sign_key("another-secret-of-32-characters!", "zalo/m/5"),
    ],
)
def test_tampered_links_answer_404(client, local, mangle):
    local.put("zalo/m/5", PNG, content_type="image/png", filename="a.png")
    local.put("zalo/other/0", PNG, content_type="image/png", filename="b.png")
    good = sign_key(SECRET, "zalo/m/5")
    assert client.get(f"/media/{good}").status_code == 200
    got = client.get(f"/media/{mangle(good)}")
    assert got.status_code == 404 and got.get_json() == {"error": "not found"}


# --- S3 store -------------------------------------------------------------------------------


def test_s3_redirects_to_a_presigned_url_that_serves_the_bytes(tmp_path, s3_store):
    s3_store.put("zalo/m/0", PNG, content_type="image/png", filename=VN_NAME)
    got = make_app(tmp_path, s3_store).test_client().get(path_for("zalo/m/0"))
    assert got.status_code == 302
    location = got.headers["Location"]
    assert "X-Amz-Signature=" in location
    followed = requests.get(location, timeout=5)
    assert followed.status_code == 200 and followed.content == PNG
    assert followed.headers["Content-Type"] == "image/png"
    assert followed.headers["Content-Disposition"].endswith(quote(VN_NAME, safe=""))


def test_s3_long_text_round_trips_through_the_redirect(tmp_path, s3_store):
    s3_store.put("fc/m/0", LONG_TEXT.encode("utf-8"), content_type="text/plain", filename="message.txt")
    got = make_app(tmp_path, s3_store).test_client().get(path_for("fc/m/0"))
    followed = requests.get(got.headers["Location"], timeout=5)
    assert followed.content == LONG_TEXT.encode("utf-8")
    assert followed.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_s3_missing_and_deleted_objects_answer_404(tmp_path, s3_store):
    client = make_app(tmp_path, s3_store).test_client()
    assert client.get(path_for("zalo/never/0")).status_code == 404
    s3_store.put("zalo/m/1", PNG, content_type="image/png", filename="a.png")
    assert client.get(path_for("zalo/m/1")).status_code == 302
    s3_store.delete("zalo/m/1")
    got = client.get(path_for("zalo/m/1"))
    assert got.status_code == 404 and got.get_json() == {"error": "not found"}


def test_s3_tampered_link_answers_404(tmp_path, s3_store):
    s3_store.put("zalo/m/2", PNG, content_type="image/png", filename="a.png")
    signed = sign_key(SECRET, "zalo/m/2")
    client = make_app(tmp_path, s3_store).test_client()
    assert client.get(f"/media/{signed[:-2]}xx").status_code == 404


# --- links ------------------------------------------------------------------------------------


def test_sign_round_trip_and_url_safety():
    key = "zalo/96d3cdf3af150460909/0"
    signed = sign_key(SECRET, key)
    assert unsign_key(SECRET, signed) == key
    assert set(signed) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


@pytest.mark.parametrize("signed", ["", ".", "abc.def", "ảnh", "\x00", "e30.invalid", "\ud800.x"])
def test_unsign_rejects_garbage(signed):
    assert unsign_key(SECRET, signed) is None


def test_unsign_rejects_non_string_payloads():
    from itsdangerous import URLSafeSerializer

    forged = URLSafeSerializer(SECRET, salt="media-link").dumps({"key": "zalo/m/0"})
    assert unsign_key(SECRET, forged) is None


def test_unsign_rejects_a_signed_payload_that_is_not_json():
    from itsdangerous import URLSafeSerializer

    signer = URLSafeSerializer(SECRET, salt="media-link").make_signer()
    assert unsign_key(SECRET, signer.sign(b"@@not-base64@@").decode()) is None


def test_signature_is_salted():
    from itsdangerous import URLSafeSerializer

    unsalted = URLSafeSerializer(SECRET).dumps("zalo/m/0")
    assert unsign_key(SECRET, unsalted) is None


def test_media_url(tmp_path):
    settings = Settings(secret_key=SECRET, media_dir=str(tmp_path), public_base_url=BASE)
    url = media_url(settings, "fc/x/text")
    assert url == f"{BASE}/media/{sign_key(SECRET, 'fc/x/text')}"
    assert unsign_key(SECRET, url.rsplit("/", 1)[1]) == "fc/x/text"
