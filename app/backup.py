"""`flask --app app bridge backup OUT_DIR` / `restore IN_DIR`: the bridge's Redis keys and local media.

Redis: every `zfb:` key (lanes, mappings, the sealed token pair, dedupe and effect records, dead
letters, connections) with DUMP and its TTL, read by one Lua script so the copy is one moment of
the bridge, written to `redis.jsonl.gz`. DUMP/RESTORE are plain commands that managed Redis
services allow, where BGSAVE's dump.rdb is out of reach; RQ's own keys are left out, because
the lanes are the truth and the starter queues new jobs for them. A DUMP payload restores into
the same or a newer Redis version only.

Media: the local store's folder is copied file by file; a bucket is left to the bucket's own
tools (versioning, `aws s3 sync`), which copy objects without passing them through the bridge.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import time
from pathlib import Path

from app.bridge.keys import HEARTBEAT, ROOT, WEB_STARTED
from app.bridge.scripts import LuaScript

SNAPSHOT = LuaScript("snapshot")
FORMAT = "zalo-freshchat-bridge-backup"
VERSION = 1
REDIS_FILE, MEDIA_DIR, MANIFEST = "redis.jsonl.gz", "media", "manifest.json"
# Moments, not data: a restored heartbeat would tell /readyz that a worker is alive before one
# is, and every web process (the restore command's own app too) stamps its start.
SKIPPED = {HEARTBEAT.encode(), WEB_STARTED.encode()}
RESTORE_BATCH = 500


class BackupError(Exception):
    """Said to the operator as it is; nothing has been changed when it is raised."""


def backup(redis, settings, out_dir: Path) -> dict:
    """Write the backup into `out_dir` (created; must be empty) and answer its manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise BackupError(f"{out_dir} is not empty: back up into a new folder")
    keys = _write_redis(redis, out_dir / REDIS_FILE)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": time.time(),
        "redis_keys": keys,
        "media": _backup_media(settings, out_dir / MEDIA_DIR),
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def restore(redis, settings, in_dir: Path, replace: bool = False) -> dict:
    """Put a backup back: refused into a Redis that already holds bridge data unless `replace`."""
    manifest = _read_manifest(in_dir)
    existing = [k for k in redis.scan_iter(match=ROOT + "*", count=1000) if k not in SKIPPED]
    if existing and not replace:
        raise BackupError(
            f"Redis already holds {len(existing)} bridge keys: restore into an empty Redis, "
            "or pass --replace to overwrite the keys the backup holds"
        )
    keys = _restore_redis(redis, in_dir / REDIS_FILE)
    media = _restore_media(settings, in_dir / MEDIA_DIR, manifest["media"])
    return {"redis_keys": keys, "media": media}


def _write_redis(redis, path: Path) -> int:
    flat = SNAPSHOT(redis, pattern=ROOT + "*")
    count = 0
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="ascii") as out:
        for i in range(0, len(flat), 3):
            name, ttl_ms, payload = flat[i : i + 3]
            if name in SKIPPED or payload is None:
                continue
            record = {"key": _b64(name), "ttl_ms": max(0, int(ttl_ms)), "dump": _b64(payload)}
            out.write(json.dumps(record) + "\n")
            count += 1
    tmp.replace(path)
    return count


def _restore_redis(redis, path: Path) -> int:
    """RESTORE with the TTL each key had left when the backup was taken (REPLACE: a key the
    backup holds wins over the one in Redis)."""
    count = 0
    pipe = redis.pipeline(transaction=False)
    with gzip.open(path, "rt", encoding="ascii") as records:
        for line in records:
            record = json.loads(line)
            pipe.restore(_raw(record["key"]), record["ttl_ms"], _raw(record["dump"]), replace=True)
            count += 1
            if count % RESTORE_BATCH == 0:
                pipe.execute()
    pipe.execute()
    return count


def _backup_media(settings, target: Path) -> dict:
    if settings.media_bucket:
        return {"store": "s3", "bucket": settings.media_bucket, "files": 0}
    source = Path(settings.media_dir)
    files = _copy_tree(source, target) if source.is_dir() else 0
    return {"store": "local", "files": files}


def _restore_media(settings, source: Path, recorded: dict) -> dict:
    if recorded["store"] != "local":
        return {"store": recorded["store"], "files": 0, "note": "media lives in the bucket: not copied"}
    if settings.media_bucket:
        raise BackupError("the backup holds local media but MEDIA_BUCKET is set: copy media/ into the bucket")
    files = _copy_tree(source, Path(settings.media_dir)) if source.is_dir() else 0
    return {"store": "local", "files": files}


def _copy_tree(source: Path, target: Path) -> int:
    """Copy every stored file (bytes and sidecars; never the store's half-written temp files)."""
    count = 0
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith(".tmp-"):
            continue
        dest = target / path.relative_to(source)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
        count += 1
    return count


def _read_manifest(in_dir: Path) -> dict:
    try:
        manifest = json.loads((in_dir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{in_dir} holds no readable {MANIFEST} ({type(exc).__name__})") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BackupError(f"{in_dir}/{MANIFEST} is not a backup of this bridge (version {VERSION})")
    if not (in_dir / REDIS_FILE).is_file():
        raise BackupError(f"{in_dir} has no {REDIS_FILE}")
    return manifest


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _raw(value: str) -> bytes:
    return base64.b64decode(value)
