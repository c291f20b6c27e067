"""`flask bridge backup OUT_DIR` / `restore IN_DIR`: the bridge's Redis keys and local media.

Redis: every `zfb:` key (mappings, the sealed token pair, dedupe and effect records, dead
letters, connections) with DUMP and its TTL, read by one Lua script so the copy is one moment of
the bridge, written to `redis.jsonl.gz`. DUMP/RESTORE are plain commands that managed Redis
services allow, where BGSAVE's dump.rdb is out of reach; RQ's own keys are left out, because
the lanes are the truth and the starter queues new jobs for them. A DUMP payload restores into
the same or a newer Redis version only. A lane is kept as its items (JSON data), and restore
queues each item again through the lanes' own append, which schedules the lane.

Media: the local store's folder is copied file by file; a bucket is left to the bucket's own
tools (versioning, `aws s3 sync`), which copy objects without passing them through the bridge.

A backup carries code into the worker if anything may be written back (an RQ job's `data` is
pickled), so (docs/security.md, "Backups cannot carry code"): the manifest lists the SHA-256 of
every file and is signed with HMAC-SHA256 under a key derived from ENCRYPTION_KEY (each of its
keys verifies, the first signs) or else SECRET_KEY; restore checks all of it before it changes
anything, and writes back only the key families app/bridge/keys.py names. The folder is 0700,
its files 0600: they hold the sealed token pair and every mapping.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import os
import time
from pathlib import Path, PurePosixPath

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from redis import Redis

from app.bridge import keys
from app.bridge.keys import DUE, HEARTBEAT, ROOT, WAKE, WEB_STARTED
from app.bridge.lanes import Item, Lanes
from app.bridge.scripts import LuaScript
from app.logs import audit
from config.formats import parse_keys
from config.settings import Settings

SNAPSHOT = LuaScript("snapshot")
FORMAT = "zalo-freshchat-bridge-backup"
VERSION = 2  # 1: unsigned, every key restored as dumped
REDIS_FILE, MEDIA_DIR, MANIFEST = "redis.jsonl.gz", "media", "manifest.json"
SIGN_INFO = b"zalo-freshchat-bridge backup signing v2"  # changing it orphans every backup
# Moments, not data: a restored heartbeat would tell /readyz that a worker is alive before one
# is, and every web process (the restore command's own app too) stamps its start. The due set,
# the doorbell and the leases are the scheduler's view of the lanes: restore rebuilds them.
# Console sessions and sign-in throttles are moments too: a restored session would sign back in a
# browser that signed out after the backup was taken.
SKIPPED = {HEARTBEAT.encode(), WEB_STARTED.encode(), DUE.encode(), WAKE.encode()}
LANE_PREFIX = keys.lane("").encode()
PASSING = (keys.lease("").encode(), keys.CONSOLE_PREFIX.encode())  # key prefixes never backed up
RESTORE_BATCH = 500
REMAKE = "make a new backup with this version (`bin/bridge backup DIR`) from the bridge it came from"


class BackupError(Exception):
    """Said to the operator as it is; nothing has been changed when it is raised."""


def signing_keys(settings: Settings) -> list[bytes]:
    """HKDF-SHA256 of each ENCRYPTION_KEY item (the first signs, each verifies), else of
    SECRET_KEY: whoever can restore the sealed token pair can also sign a backup, nobody else."""
    roots = parse_keys(settings.encryption_key) if settings.encryption_key else []
    if settings.secret_key:
        roots.append(settings.secret_key.encode())
    if not roots:
        raise BackupError("ENCRYPTION_KEY or SECRET_KEY must be set: a backup is signed with a key derived from it")
    return [HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SIGN_INFO).derive(r) for r in roots]


def signature(manifest: dict, key: bytes) -> str:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return "hmac-sha256:" + hmac.new(key, canonical, hashlib.sha256).hexdigest()


def backup(redis: Redis, settings: Settings, out_dir: Path) -> dict:
    """Write the backup into `out_dir` (created 0700; must be empty) and answer its manifest."""
    key = signing_keys(settings)[0]
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise BackupError(f"{out_dir} is not empty: back up into a new folder")
    out_dir.chmod(0o700)
    files: dict[str, str] = {}
    count, items = _write_redis(redis, out_dir, files)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": time.time(),
        "redis_keys": count,
        "lane_items": items,
        "media": _backup_media(settings, out_dir, files),
        "files": files,
    }
    manifest["signature"] = signature(manifest, key)
    _write_private(out_dir / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def restore(redis: Redis, settings: Settings, in_dir: Path, replace: bool = False) -> dict:
    """Put a backup back: refused into a Redis that already holds bridge data unless `replace`.
    Everything is checked first (signature, every file, every key), so a refusal changes nothing."""
    manifest = _verified_manifest(settings, in_dir)
    records = _read_records(in_dir, manifest)
    existing = [k for k in redis.scan_iter(match=ROOT + "*", count=1000) if k not in SKIPPED]
    if existing and not replace:
        raise BackupError(
            f"Redis already holds {len(existing)} bridge keys: restore into an empty Redis, "
            "or pass --replace to overwrite the keys the backup holds"
        )
    media = _check_media(settings, in_dir, manifest)
    count = _restore_redis(redis, records, replace)
    return {"redis_keys": count, "media": _restore_media(settings, in_dir, manifest, media)}


# -- writing ---------------------------------------------------------------------------------


def _write_redis(redis: Redis, out_dir: Path, files: dict) -> tuple[int, int]:
    """(keys, lane items) written to redis.jsonl.gz."""
    flat = SNAPSHOT(redis, pattern=ROOT + "*", lanes=LANE_PREFIX.decode())
    lines, items = [], 0
    for i in range(0, len(flat), 3):
        name, ttl_ms, value = flat[i : i + 3]
        if name in SKIPPED or name.startswith(PASSING) or value is None:
            continue
        if name.startswith(LANE_PREFIX):
            record = {"lane": name[len(LANE_PREFIX) :].decode(), "items": [x.decode() for x in value]}
            items += len(value)
        else:
            record = {"key": _b64(name), "ttl_ms": max(0, int(ttl_ms)), "dump": _b64(value)}
        lines.append(json.dumps(record, ensure_ascii=False))
    data = gzip.compress(("".join(line + "\n" for line in lines)).encode())
    _write_private(out_dir / REDIS_FILE, data)
    files[REDIS_FILE] = _sha256(data)
    return len(lines), items


def _backup_media(settings: Settings, out_dir: Path, files: dict) -> dict:
    if settings.media_bucket:
        return {"store": "s3", "bucket": settings.media_bucket, "files": 0}
    source, count = Path(settings.media_dir), 0
    for path in _stored_files(source):
        name = (PurePosixPath(MEDIA_DIR) / path.relative_to(source).as_posix()).as_posix()
        data = path.read_bytes()
        _write_private(out_dir / name, data)
        files[name] = _sha256(data)
        count += 1
    return {"store": "local", "files": count}


def _stored_files(source: Path) -> list[Path]:
    """Every stored file (bytes and sidecars; never the store's half-written temp files)."""
    if not source.is_dir():
        return []
    return [p for p in sorted(source.rglob("*")) if p.is_file() and not p.name.startswith(".tmp-")]


def _write_private(path: Path, data: bytes) -> None:
    """A file only its owner reads (0600), in folders only its owner opens (0700)."""
    for folder in reversed(path.parents):
        if not folder.exists():
            folder.mkdir(mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


# -- checking --------------------------------------------------------------------------------


def _refuse(in_dir: Path, reason: str, message: str) -> BackupError:
    audit("backup_refused", client="command_line", folder=str(in_dir), reason=reason)
    return BackupError(message)


def _verified_manifest(settings: Settings, in_dir: Path) -> dict:
    try:
        manifest = json.loads((in_dir / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{in_dir} holds no readable {MANIFEST} ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(in_dir, "format", f"{in_dir}/{MANIFEST} is not a backup of this bridge")
    if manifest.get("version") == 1:
        raise _refuse(in_dir, "unsigned", f"{in_dir} is an unsigned backup of an older bridge: refused; {REMAKE}")
    if manifest.get("version") != VERSION:
        raise _refuse(in_dir, "version", f"{in_dir}/{MANIFEST} is not a backup of this version (version {VERSION})")
    given = str(manifest.get("signature", ""))
    if not any(hmac.compare_digest(given, signature(manifest, k)) for k in signing_keys(settings)):
        raise _refuse(
            in_dir,
            "signature",
            f"{in_dir} does not verify: changed since it was made, or made with another "
            "SECRET_KEY/ENCRYPTION_KEY: refused",
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or REDIS_FILE not in files or not all(map(_safe_name, files)):
        raise _refuse(in_dir, "files", f"{in_dir}/{MANIFEST} lists no {REDIS_FILE} or a path outside the backup")
    return manifest


def _safe_name(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and ".." not in parts


def _read_verified(in_dir: Path, manifest: dict, name: str) -> bytes:
    try:
        data = (in_dir / name).read_bytes()
    except OSError:
        raise BackupError(f"{in_dir} has no {name}") from None
    if not hmac.compare_digest(_sha256(data), str(manifest["files"][name])):
        raise _refuse(in_dir, "file", f"{in_dir}/{name} does not verify: changed since the backup was made: refused")
    return data


def _read_records(in_dir: Path, manifest: dict) -> list[dict]:
    """Every record, checked: a lane's items must be items, any other key one of the bridge's."""
    data = _read_verified(in_dir, manifest, REDIS_FILE)
    try:
        records = [json.loads(line) for line in gzip.decompress(data).decode().splitlines() if line]
        names = [None if "lane" in r else _raw(r["key"]) for r in records]
        for record in records:
            for raw in record.get("items", []):
                Item.loads(raw)  # an item is data: nothing else is ever queued
    except (ValueError, TypeError, KeyError, AttributeError, EOFError, OSError) as exc:
        raise BackupError(f"{in_dir}/{REDIS_FILE} is not readable ({type(exc).__name__})") from None
    for name in filter(None, names):
        if name in SKIPPED or name.startswith(PASSING) or not keys.is_bridge_key(name.decode("latin-1")):
            shown = name[:60].decode("utf-8", "replace")
            raise _refuse(
                in_dir, "key", f"{in_dir} holds a key that is not the bridge's to restore ({shown!r}): refused"
            )
    return records


def _check_media(settings: Settings, in_dir: Path, manifest: dict) -> dict[str, bytes]:
    names = [n for n in manifest["files"] if n != REDIS_FILE]
    if manifest["media"].get("store") == "local" and names and settings.media_bucket:
        raise BackupError("the backup holds local media but MEDIA_BUCKET is set: copy media/ into the bucket")
    return {n: _read_verified(in_dir, manifest, n) for n in names if PurePosixPath(n).parts[0] == MEDIA_DIR}


# -- restoring -------------------------------------------------------------------------------


def _restore_redis(redis: Redis, records: list[dict], replace: bool) -> int:
    """RESTORE with the TTL each key had left when the backup was taken (REPLACE: a key the
    backup holds wins over the one in Redis); a lane's items are queued again as new."""
    lanes, pipe = Lanes(redis), redis.pipeline(transaction=False)
    for count, record in enumerate(records, start=1):
        if "lane" in record:
            continue
        pipe.restore(_raw(record["key"]), record["ttl_ms"], _raw(record["dump"]), replace=True)
        if count % RESTORE_BATCH == 0:
            pipe.execute()
    pipe.execute()
    for record in records:
        if "lane" in record:
            if replace:
                redis.delete(keys.lane(record["lane"]))
            for raw in record["items"]:
                lanes.accept(record["lane"], Item.loads(raw))
    return len(records)


def _restore_media(settings: Settings, in_dir: Path, manifest: dict, media: dict[str, bytes]) -> dict:
    recorded = manifest["media"]
    if recorded["store"] != "local":
        return {"store": recorded["store"], "files": 0, "note": "media lives in the bucket: not copied"}
    target = Path(settings.media_dir)
    for name, data in media.items():
        dest = target.joinpath(*PurePosixPath(name).parts[1:])
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return {"store": "local", "files": len(media)}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _raw(value: str) -> bytes:
    return base64.b64decode(value)
