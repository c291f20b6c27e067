"""The media store contract, run against the local store and S3 (moto)."""

from __future__ import annotations

import json
import os
from urllib.parse import quote

import boto3
import pytest
import requests
from botocore.config import Config
from moto import mock_aws

from app.media.store import (
    LocalMediaStore,
    S3MediaStore,
    StoredObject,
    build_media_store,
    content_disposition,
    served_content_type,
)
from config.settings import Settings
from tests.media.hostile import HOSTILE_TYPES, SCRIPT_PAGE

BUCKET = "bridge-media-test"
SIGV4 = Config(signature_version="s3v4")  # as build_media_store configures it
VN_NAME = "Báo giá tháng 11.pdf"
ALL_BYTES = bytes(range(256)) * 64
BAD_KEYS = [
    "../outside",
    "a/../../outside",
    "/etc/passwd",
    "a//b",
    "a/./b",
    "./a",
    "a/..",
    ".hidden",
    "a b",
    "a\\b",
    "ả/b",
    "a/b?c",
    "",
    "x" * 600,
    "a/b.meta.json",
]


@pytest.fixture(scope="module")
def moto_s3():
    """moto's S3 in-process, started once for the module (0.3 s a start); fake credentials so
    boto3 never looks for real ones."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        with mock_aws():
            yield boto3.client("s3", region_name="us-east-1", config=SIGV4)


@pytest.fixture
def aws(moto_s3):
    """An empty bucket for each test."""
    moto_s3.create_bucket(Bucket=BUCKET)
    yield moto_s3
    for page in moto_s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            moto_s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
    moto_s3.delete_bucket(Bucket=BUCKET)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalMediaStore(str(tmp_path / "media"))
    return S3MediaStore(request.getfixturevalue("aws"), BUCKET)


def test_put_then_get_returns_exact_bytes_type_and_name(store):
    store.put("zalo/96d3cdf3af150460909/0", ALL_BYTES, content_type="application/pdf", filename=VN_NAME)
    assert store.get("zalo/96d3cdf3af150460909/0") == StoredObject(ALL_BYTES, "application/pdf", VN_NAME)


def test_missing_key_is_absent(store):
    assert store.exists("zalo/nothing/0") is False
    assert store.get("zalo/nothing/0") is None


def test_exists_after_put(store):
    store.put("fc/3f2a-77/text", b"hi", content_type="text/plain; charset=utf-8", filename="m.txt")
    assert store.exists("fc/3f2a-77/text") is True
    assert store.exists("fc/3f2a-77/other") is False


def test_put_overwrites(store):
    store.put("zalo/m1/0", b"old", content_type="image/png", filename="a.png")
    store.put("zalo/m1/0", b"new bytes", content_type="image/jpeg", filename="b.jpg")
    assert store.get("zalo/m1/0") == StoredObject(b"new bytes", "image/jpeg", "b.jpg")


def test_keys_do_not_clobber_each_other(store):
    for index in range(3):
        store.put(f"zalo/m1/{index}", f"part {index}".encode(), content_type="text/plain", filename=f"{index}.txt")
    assert [store.get(f"zalo/m1/{i}").data for i in range(3)] == [b"part 0", b"part 1", b"part 2"]


def test_delete_revokes_and_is_idempotent(store):
    store.put("zalo/m2/0", b"secret", content_type="image/png", filename="x.png")
    store.delete("zalo/m2/0")
    assert store.exists("zalo/m2/0") is False
    assert store.get("zalo/m2/0") is None
    store.delete("zalo/m2/0")


def test_empty_object_round_trips(store):
    store.put("zalo/m3/0", b"", content_type="text/plain", filename="empty.txt")
    assert store.get("zalo/m3/0") == StoredObject(b"", "text/plain; charset=utf-8", "empty.txt")  # as served


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_rejected_everywhere(store, key):
    with pytest.raises(ValueError):
        store.put(key, b"x", content_type="text/plain", filename="x.txt")
    for call in (store.get, store.exists, store.delete, store.redirect_url):
        with pytest.raises(ValueError):
            call(key)


@pytest.mark.parametrize("key", ["../outside", "a/../../outside", "/tmp/abs-media-test"])
def test_local_store_never_writes_outside_its_root(tmp_path, key):
    root = tmp_path / "root"
    with pytest.raises(ValueError):
        LocalMediaStore(str(root)).put(key, b"x", content_type="text/plain", filename="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not os.path.exists("/tmp/abs-media-test")


def test_local_store_refuses_a_symlink_out_of_its_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (root / "zalo").symlink_to(outside)
    with pytest.raises(ValueError):
        LocalMediaStore(str(root)).put("zalo/m/0", b"x", content_type="text/plain", filename="x")
    assert list(outside.iterdir()) == []


def test_local_store_keeps_a_sidecar_and_no_temp_files(tmp_path):
    LocalMediaStore(str(tmp_path)).put("zalo/m/0", b"abc", content_type="application/pdf", filename=VN_NAME)
    folder = tmp_path / "zalo" / "m"
    assert sorted(p.name for p in folder.iterdir()) == ["0", "0.meta.json"]
    assert (folder / "0").read_bytes() == b"abc"
    meta = json.loads((folder / "0.meta.json").read_text("utf-8"))
    assert meta == {"content_type": "application/pdf", "filename": VN_NAME}
    LocalMediaStore(str(tmp_path)).delete("zalo/m/0")
    assert list(folder.iterdir()) == []


def test_local_store_failed_write_keeps_the_old_object(tmp_path, monkeypatch):
    store = LocalMediaStore(str(tmp_path))
    store.put("zalo/m/0", b"old", content_type="image/png", filename="a.png")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError):
        store.put("zalo/m/0", b"new", content_type="image/jpeg", filename="b.jpg")
    assert store.get("zalo/m/0") == StoredObject(b"old", "image/png", "a.png")
    assert sorted(p.name for p in (tmp_path / "zalo" / "m").iterdir()) == ["0", "0.meta.json"]


def test_local_store_has_no_redirect(tmp_path):
    store = LocalMediaStore(str(tmp_path))
    store.put("zalo/m/0", b"abc", content_type="image/png", filename="a.png")
    assert store.redirect_url("zalo/m/0") is None


def test_s3_keeps_filename_percent_encoded_in_metadata(aws):
    S3MediaStore(aws, BUCKET).put("zalo/m/0", b"%PDF", content_type="application/pdf", filename=VN_NAME)
    head = aws.head_object(Bucket=BUCKET, Key="zalo/m/0")
    assert head["ContentType"] == "application/pdf"
    assert head["Metadata"] == {"filename": quote(VN_NAME, safe="")}


def test_s3_redirect_url_serves_the_bytes_with_type_and_disposition(aws):
    store = S3MediaStore(aws, BUCKET)
    store.put("zalo/m/0", ALL_BYTES, content_type="application/pdf", filename=VN_NAME)
    url = store.redirect_url("zalo/m/0")
    assert "X-Amz-Expires=3600" in url
    got = requests.get(url, timeout=5)
    assert got.status_code == 200 and got.content == ALL_BYTES
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["Content-Disposition"] == content_disposition("application/pdf", VN_NAME)


def test_s3_redirect_url_adds_charset_to_text(aws):
    store = S3MediaStore(aws, BUCKET)
    store.put("fc/m/text", "chào 👋".encode(), content_type="text/plain", filename="m.txt")
    got = requests.get(store.redirect_url("fc/m/text"), timeout=5)
    assert got.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert got.text == "chào 👋"


def test_s3_redirect_url_is_none_for_a_missing_object(aws):
    assert S3MediaStore(aws, BUCKET).redirect_url("zalo/gone/0") is None


@pytest.mark.parametrize(
    "content_type, expected",
    [
        ("image/png", "inline"),
        ("image/jpeg", "inline"),
        ("text/plain; charset=utf-8", "inline"),
        ("application/pdf", "inline"),
        ("image/svg+xml", "attachment"),
        ("text/html", "attachment"),
        ("application/zip", "attachment"),
        ("video/mp4", "attachment"),
        ("image/png,text/html", "attachment"),
        ("image/png, image/png", "attachment"),
        ("IMAGE/PNG", "inline"),
        ("image/png; x=1", "inline"),
        ("image/heic", "attachment"),
        ("", "attachment"),
    ],
)
def test_content_disposition_kind(content_type, expected):
    assert content_disposition(content_type, "a.bin").split(";")[0] == expected


def test_content_disposition_names():
    assert content_disposition("application/pdf", VN_NAME) == (
        "inline; filename=\"Bao gia thang 11.pdf\"; filename*=UTF-8''B%C3%A1o%20gi%C3%A1%20th%C3%A1ng%2011.pdf"
    )
    assert 'filename="Don hang.docx"' in content_disposition("application/zip", "Đơn hàng.docx")
    assert 'filename="Hop dong.pdf"' in content_disposition("application/pdf", "Hợp đồng.pdf")
    assert 'filename="anh"' in content_disposition("image/png", "ảnh")
    assert 'filename="file"' in content_disposition("image/png", "👋")
    header = content_disposition("image/png", 'a"b\\c\r\nSet-Cookie: x.png')
    assert "\r" not in header and "\n" not in header
    assert 'filename="abcSet-Cookie: x.png"' in header


@pytest.mark.parametrize(
    "stored, served",
    [
        ("text/plain", "text/plain; charset=utf-8"),
        ("Text/Plain", "text/plain; charset=utf-8"),
        ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
        ("text/plain; charset=windows-1258", "text/plain; charset=utf-8"),  # stored as UTF-8
        ("text/csv", "text/csv"),
        ("image/png", "image/png"),
        (" Image/PNG ; q=1", "image/png"),
        ("application/zip", "application/zip"),
        ("", "application/octet-stream"),
        ("image/png\x00", "application/octet-stream"),
        ("image/png text/html", "application/octet-stream"),
        ("image/png\r\ntext/html", "application/octet-stream"),
        ("image/png;text/html,text/html", "application/octet-stream"),
        ("video/mp4, text/html", "application/octet-stream"),
        ("application/javascript", "application/octet-stream"),
        ("application/xml", "application/octet-stream"),
        ("multipart/x-mixed-replace; boundary=a", "application/octet-stream"),
    ],
)
def test_served_content_type(stored, served):
    assert served_content_type(stored) == served


@pytest.mark.parametrize("declared", HOSTILE_TYPES)
def test_a_type_that_could_run_is_never_served(declared):
    assert served_content_type(declared) == "application/octet-stream"
    assert content_disposition(declared, "x.png").startswith("attachment; ")


@pytest.mark.parametrize("declared", HOSTILE_TYPES)
def test_a_store_never_keeps_a_type_that_could_run(store, declared):
    store.put("zalo/m/0", SCRIPT_PAGE, content_type=declared, filename="x.png")
    assert store.get("zalo/m/0") == StoredObject(SCRIPT_PAGE, "application/octet-stream", "x.png")


def test_s3_object_carries_the_chosen_type_and_a_download_disposition(aws):
    """What S3 can store of the answer (no CSP: S3 keeps no such header); a direct GET of the
    object, not through our presigned link, gets it too."""
    S3MediaStore(aws, BUCKET).put("zalo/m/0", SCRIPT_PAGE, content_type="image/png,text/html", filename="a.html")
    head = aws.head_object(Bucket=BUCKET, Key="zalo/m/0")
    assert head["ContentType"] == "application/octet-stream"
    assert head["ContentDisposition"] == "attachment; filename=\"a.html\"; filename*=UTF-8''a.html"


@pytest.mark.parametrize("declared", HOSTILE_TYPES)
def test_s3_object_stored_before_the_rule_is_redirected_with_a_safe_type(aws, declared):
    """An object stored with a partner's raw type (as before this rule): the link says what to serve."""
    aws.put_object(Bucket=BUCKET, Key="zalo/old/0", Body=SCRIPT_PAGE, ContentType=declared)
    got = requests.get(S3MediaStore(aws, BUCKET).redirect_url("zalo/old/0"), timeout=5)
    assert got.content == SCRIPT_PAGE
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["Content-Disposition"].startswith("attachment; ")


def test_build_media_store_local_without_bucket(tmp_path):
    store = build_media_store(Settings(secret_key="k" * 32, media_dir=str(tmp_path / "m")))
    assert isinstance(store, LocalMediaStore)
    store.put("zalo/m/0", b"x", content_type="text/plain", filename="x.txt")
    assert (tmp_path / "m" / "zalo" / "m" / "0").read_bytes() == b"x"


def test_build_media_store_s3_with_bucket(aws):
    store = build_media_store(Settings(secret_key="k" * 32, media_bucket=BUCKET))
    assert isinstance(store, S3MediaStore)
    store.put("zalo/m/0", b"via settings", content_type="text/plain", filename="x.txt")
    assert aws.get_object(Bucket=BUCKET, Key="zalo/m/0")["Body"].read() == b"via settings"
    url = store.redirect_url("zalo/m/0")
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=3600" in url
    assert requests.get(url, timeout=5).content == b"via settings"


def test_build_media_store_uses_the_custom_endpoint(aws):
    settings = Settings(secret_key="k" * 32, media_bucket=BUCKET, s3_endpoint_url="http://minio.internal:9000")
    store = build_media_store(settings)
    assert store.client.meta.endpoint_url == "http://minio.internal:9000"
    # Path-style: MinIO and friends rarely have wildcard DNS for bucket subdomains.
    url = store.client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": "k"})
    assert url.startswith(f"http://minio.internal:9000/{BUCKET}/k?")


def test_links_are_signed_for_the_public_endpoint_when_it_differs(aws):
    """In docker-compose MinIO is `minio:9000` to the bridge but a public URL to users' browsers."""
    settings = Settings(
        secret_key="k" * 32,
        media_bucket=BUCKET,
        s3_endpoint_url="http://minio:9000",
        s3_public_endpoint_url="https://media.example.com",
    )
    store = build_media_store(settings)
    assert store.client.meta.endpoint_url == "http://minio:9000"
    store.client = aws  # moto answers the head request; only the presigner's address matters here
    aws.put_object(Bucket=BUCKET, Key="zalo/m/0", Body=b"x", ContentType="image/png")
    assert store.redirect_url("zalo/m/0").startswith(f"https://media.example.com/{BUCKET}/zalo/m/0?")


def test_delete_under_removes_a_folder_and_counts_it_leaving_its_neighbours(store):
    for key in ("u/abc/zalo/m1/0", "u/abc/fc/m2/0", "u/abcd/zalo/m3/0", "zalo/m4/0"):
        store.put(key, b"x", content_type="image/png", filename="a.png")
    assert store.delete_under("u/abc/") == 2
    assert not store.exists("u/abc/zalo/m1/0") and not store.exists("u/abc/fc/m2/0")
    assert store.exists("u/abcd/zalo/m3/0") and store.exists("zalo/m4/0")  # a longer name is another folder
    assert store.delete_under("u/abc/") == 0 and store.delete_under("zalo/never/") == 0
    with pytest.raises(ValueError):
        store.delete_under("../")
