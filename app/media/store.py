"""Where copied media lives: local files for one box, S3 (or compatible) for many."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

# The type served, stored and given to S3 (app/media/types.py): a stored or declared type goes
# through it on every write and every read, so objects stored before the rule are safe too.
from app.media.types import is_inline
from app.media.types import served_type as served_content_type
from config.settings import Settings

# Segments may not start with "." so "." / ".." / hidden and temp files are never addressable.
KEY_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
KEY_MAX = 512
META_SUFFIX = ".meta.json"
PRESIGN_SECONDS = 3600


@dataclass(frozen=True)
class StoredObject:
    data: bytes
    content_type: str
    filename: str


def check_key(key: str) -> str:
    """The key itself, or ValueError when it could name a path outside the store."""
    if not isinstance(key, str) or len(key) > KEY_MAX or not KEY_RE.fullmatch(key):
        raise ValueError(f"invalid media key {key!r:.80}")
    if key.endswith(META_SUFFIX):
        raise ValueError("media keys may not end in .meta.json (reserved for sidecars)")
    return key


def ascii_filename(filename: str) -> str:
    """A plain-ASCII stand-in for clients that ignore filename* ("Báo giá" -> "Bao gia")."""
    folded = unicodedata.normalize("NFKD", filename.replace("đ", "d").replace("Đ", "D"))
    kept = "".join(c for c in folded if c.isascii() and c.isprintable() and c not in '"\\')
    return kept.strip() or "file"


def content_disposition(content_type: str, filename: str) -> str:
    """RFC 6266 header with an ASCII fallback and the exact UTF-8 name (RFC 5987)."""
    disposition = "inline" if is_inline(content_type) else "attachment"
    return f"{disposition}; filename=\"{ascii_filename(filename)}\"; filename*=UTF-8''{quote(filename, safe='')}"


class LocalMediaStore:
    """Files under `root`: `<key>` holds the bytes, `<key>.meta.json` type and name."""

    def __init__(self, root: str):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = self.root.joinpath(*check_key(key).split("/"))
        # A symlink inside the root must not lead the store somewhere else.
        if not path.resolve().is_relative_to(self.root):
            raise ValueError(f"media key {key!r} leaves the store")
        return path

    @staticmethod
    def _meta(path: Path) -> Path:
        return path.with_name(path.name + META_SUFFIX)

    def put(self, key: str, data: bytes, *, content_type: str, filename: str) -> None:
        path = self._path(key)
        meta = {"content_type": served_content_type(content_type), "filename": filename}
        # Bytes first, sidecar last: the sidecar is what makes the object exist.
        _write_atomic(path, bytes(data))
        _write_atomic(self._meta(path), json.dumps(meta, ensure_ascii=False).encode("utf-8"))

    def exists(self, key: str) -> bool:
        path = self._path(key)
        return self._meta(path).is_file() and path.is_file()

    def get(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            meta = json.loads(self._meta(path).read_text("utf-8"))
            data = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return StoredObject(data, meta["content_type"], meta["filename"])

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._meta(path).unlink(missing_ok=True)
        path.unlink(missing_ok=True)

    def redirect_url(self, key: str) -> str | None:
        check_key(key)
        return None

    def delete_under(self, folder: str) -> int:
        """Delete every object in `folder` (a key prefix ending in "/"); how many there were."""
        top = self._path(folder.rstrip("/"))
        if not top.is_dir():
            return 0
        count = sum(1 for meta in top.rglob("*" + META_SUFFIX) if meta.is_file())  # one sidecar per object
        shutil.rmtree(top)  # never follows a link inside, and `_path` kept `top` inside the root
        return count


def _write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class S3MediaStore:
    """One object per key; the filename rides in metadata, percent-encoded (S3 wants ASCII)."""

    def __init__(self, client, bucket: str, presigner=None):
        self.client = client
        self.bucket = bucket
        # Links are signed for the address users reach (S3_PUBLIC_ENDPOINT_URL), which may not be
        # the one this process talks to (a MinIO on a private network behind a proxy).
        self.presigner = presigner or client

    def put(self, key: str, data: bytes, *, content_type: str, filename: str) -> None:
        # S3 keeps only standard headers (no CSP); these are what a direct GET of the object gets.
        content_type = served_content_type(content_type)
        self.client.put_object(
            Bucket=self.bucket,
            Key=check_key(key),
            Body=bytes(data),
            ContentType=content_type,
            ContentDisposition=content_disposition(content_type, filename),
            Metadata={"filename": quote(filename, safe="")},
        )

    def _head(self, key: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=check_key(key))
        except self.client.exceptions.ClientError as exc:
            if _is_missing(exc):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def get(self, key: str) -> StoredObject | None:
        try:
            found = self.client.get_object(Bucket=self.bucket, Key=check_key(key))
        except self.client.exceptions.ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        with found["Body"] as body:
            data = body.read()
        return StoredObject(data, found.get("ContentType", ""), _filename(found))

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=check_key(key))

    def delete_under(self, folder: str) -> int:
        """Delete every object whose key starts with `folder` (ending in "/"); how many."""
        check_key(folder.rstrip("/"))
        deleted = 0
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
        for page in pages:
            found = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if found:  # a page holds at most 1000 keys, as many as one delete_objects takes
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": found, "Quiet": True})
                deleted += len(found)
        return deleted

    def redirect_url(self, key: str) -> str | None:
        """A fresh 1-hour GET link, or None when the object is gone (the route then 404s)."""
        head = self._head(key)
        if head is None:
            return None
        content_type = served_content_type(head.get("ContentType"))  # also for objects stored before
        params = {
            "Bucket": self.bucket,
            "Key": key,
            "ResponseContentType": content_type,
            "ResponseContentDisposition": content_disposition(content_type, _filename(head)),
        }
        return self.presigner.generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGN_SECONDS)


def _is_missing(exc) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def _filename(response: dict) -> str:
    return unquote(response.get("Metadata", {}).get("filename", "")) or "file"


def build_media_store(settings: Settings):
    """S3 when MEDIA_BUCKET is set (credentials from the usual AWS_* variables), else local."""
    if not settings.media_bucket:
        return LocalMediaStore(settings.media_dir)
    # Imported only with a bucket: boto3 takes longer to import than the rest of a process's
    # start-up (1.9 s of 2 s measured on this 2-core machine, loaded), and most bridges store locally.
    import boto3
    from botocore.config import Config

    # SigV4 presigning works in every region and on MinIO/R2; custom endpoints want paths.
    config = Config(
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=settings.http_timeout_seconds,
        s3={"addressing_style": "path"} if settings.s3_endpoint_url else None,
    )
    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None, config=config)
    presigner = None
    if settings.s3_public_endpoint_url:
        presigner = boto3.client("s3", endpoint_url=settings.s3_public_endpoint_url, config=config)
    return S3MediaStore(client, settings.media_bucket, presigner)
