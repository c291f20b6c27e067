"""The backup file and its refusals (the whole round trip through a running bridge is
tests/e2e/test_backup_restore.py)."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import logging
import stat

import pytest
from cryptography.fernet import Fernet

from app.bridge import keys
from app.bridge.keys import HEARTBEAT
from app.bridge.lanes import Item, Lanes
from app.media.store import LocalMediaStore
from app.operations.backup import BackupError, backup, restore, signature, signing_keys


def item(n: int) -> Item:
    return Item(id=f"zalo:e{n}", kind="zalo", payload={"text": f"hello {n}"}, received_at=1)


def records(folder) -> list[dict]:
    with gzip.open(folder / "redis.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def rewrite(folder, settings, lines: list[dict], sign: bool = True) -> None:
    """Replace the Redis file and (when `sign`) its hash in the manifest, signed as the bridge would."""
    data = gzip.compress("".join(json.dumps(r) + "\n" for r in lines).encode())
    (folder / "redis.jsonl.gz").write_bytes(data)
    if not sign:
        return
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["redis.jsonl.gz"] = hashlib.sha256(data).hexdigest()
    manifest["signature"] = signature(manifest, signing_keys(settings)[0])
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_every_bridge_key_comes_back_with_its_ttl_and_nothing_else(redis, settings, tmp_path):
    redis.set("zfb:seen:zalo:e1", "1", ex=600)
    lanes = Lanes(redis)
    lanes.accept("in:u1", item(1))
    lanes.accept("in:u1", item(2))
    redis.hset("zfb:zu:u1", mapping={"fc_user": "f1"})
    redis.set(HEARTBEAT, "1", ex=60)
    redis.set(keys.lease("in:u1"), "someone", px=30000)
    redis.set(keys.console_session("s1"), "1", ex=3600)  # a session signed out later must stay out
    redis.set(keys.signin_wait("203.0.113.7"), "1", ex=60)
    redis.set("rq:queue:bridge", "not ours")
    manifest = backup(redis, settings, tmp_path / "b")
    assert manifest["redis_keys"] == 3 and manifest["lane_items"] == 2
    assert manifest["media"] == {"store": "local", "files": 0}
    ttls = sorted(r["ttl_ms"] for r in records(tmp_path / "b") if "key" in r)
    assert ttls[0] == 0 and 599_000 < ttls[1] <= 600_000
    redis.flushall()
    assert restore(redis, settings, tmp_path / "b")["redis_keys"] == 3
    assert [Item.loads(x).id for x in redis.lrange("zfb:lane:in:u1", 0, -1)] == ["zalo:e1", "zalo:e2"]
    assert lanes.due_lanes() == ["in:u1"]  # queued again through the lanes' own append
    assert redis.hgetall("zfb:zu:u1") == {b"fc_user": b"f1"}
    assert 590 < redis.ttl("zfb:seen:zalo:e1") <= 600 and redis.ttl("zfb:zu:u1") == -1
    assert redis.get(HEARTBEAT) is None and redis.get("rq:queue:bridge") is None
    assert redis.get(keys.lease("in:u1")) is None
    assert redis.get(keys.console_session("s1")) is None and redis.get(keys.signin_wait("203.0.113.7")) is None


def test_local_media_is_copied_both_ways(redis, settings, tmp_path):
    LocalMediaStore(settings.media_dir).put("zalo/m1/0", b"photo", content_type="image/png", filename="a.png")
    assert backup(redis, settings, tmp_path / "b")["media"]["files"] == 2  # the bytes and their sidecar
    elsewhere = dataclasses.replace(settings, media_dir=str(tmp_path / "new-media"))
    restore(redis, elsewhere, tmp_path / "b")
    assert LocalMediaStore(elsewhere.media_dir).get("zalo/m1/0").data == b"photo"


def test_a_bucket_is_left_to_its_own_tools(redis, settings, tmp_path):
    in_bucket = dataclasses.replace(settings, media_bucket="bridge-media")
    assert backup(redis, in_bucket, tmp_path / "b")["media"] == {"store": "s3", "bucket": "bridge-media", "files": 0}
    assert not (tmp_path / "b" / "media").exists()


def test_refusals_change_nothing(redis, settings, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    with pytest.raises(BackupError, match="not empty"):
        backup(redis, settings, tmp_path / "used")
    redis.set("zfb:zu:u1", "kept")
    backup(redis, settings, tmp_path / "b")
    redis.set("zfb:zu:u1", "newer")
    with pytest.raises(BackupError, match="already holds 1 bridge keys"):
        restore(redis, settings, tmp_path / "b")
    assert redis.get("zfb:zu:u1") == b"newer"
    restore(redis, settings, tmp_path / "b", replace=True)
    assert redis.get("zfb:zu:u1") == b"kept"
    with pytest.raises(BackupError, match="no readable manifest.json"):
        restore(redis, settings, tmp_path / "used")


def test_only_the_owner_can_read_a_backup(redis, settings, tmp_path):
    redis.set("zfb:zu:u1", "x")
    LocalMediaStore(settings.media_dir).put("zalo/m1/0", b"photo", content_type="image/png", filename="a.png")
    backup(redis, settings, tmp_path / "b")
    found = [tmp_path / "b", *(tmp_path / "b").rglob("*")]
    modes = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in found}
    assert modes["b"] == modes["b/media"] == modes["b/media/zalo/m1"] == 0o700
    assert modes["b/manifest.json"] == modes["b/redis.jsonl.gz"] == modes["b/media/zalo/m1/0"] == 0o600
    assert {m for m in modes.values()} == {0o700, 0o600}


def test_a_changed_file_is_refused_with_an_audit_line_and_nothing_written(redis, settings, tmp_path, caplog):
    redis.set("zfb:zu:u1", "kept")
    backup(redis, settings, tmp_path / "b")
    lines = records(tmp_path / "b")
    lines[0]["ttl_ms"] = 1  # any change at all
    rewrite(tmp_path / "b", settings, lines, sign=False)
    redis.flushall()
    with caplog.at_level(logging.WARNING, logger="bridge.audit"), pytest.raises(BackupError, match="does not verify"):
        restore(redis, settings, tmp_path / "b")
    assert redis.dbsize() == 0
    (line,) = [r for r in caplog.records if r.name == "bridge.audit"]
    assert (line.getMessage(), line.reason, line.client) == ("backup_refused", "file", "command_line")


def test_a_manifest_signed_with_another_key_is_refused(redis, settings, tmp_path):
    redis.set("zfb:zu:u1", "kept")
    backup(redis, settings, tmp_path / "b")
    redis.flushall()
    other = dataclasses.replace(settings, secret_key="another-secret-key-0123456789")
    with pytest.raises(BackupError, match="does not verify"):
        restore(redis, other, tmp_path / "b")
    media = tmp_path / "b" / "media" / "evil"
    media.parent.mkdir(mode=0o700)
    media.write_bytes(b"x")  # a file the manifest does not list is never copied
    restore(redis, settings, tmp_path / "b")
    assert not (tmp_path / "media" / "evil").exists()


def test_a_signed_rq_job_or_foreign_key_is_never_written(redis, settings, tmp_path, caplog):
    """Even signed (a bug, or a stolen key): RQ's keys hold pickled code, the worker would run it."""
    redis.set("zfb:zu:u1", "kept")
    redis.hset("rq:job:evil", mapping={"data": b"\x80\x05pickled", "status": "queued"})
    redis.set("other:app", "x")
    backup(redis, settings, tmp_path / "b")
    mine, dump = records(tmp_path / "b"), base64.b64encode(redis.dump("rq:job:evil")).decode()
    for name in ("rq:job:evil", "other:app", "zfb:not-a-family", keys.lease("in:u1")):
        rewrite(
            tmp_path / "b",
            settings,
            [*mine, {"key": base64.b64encode(name.encode()).decode(), "ttl_ms": 0, "dump": dump}],
        )
        redis.flushall()
        with (
            caplog.at_level(logging.WARNING, logger="bridge.audit"),
            pytest.raises(BackupError, match="not the bridge's"),
        ):
            restore(redis, settings, tmp_path / "b")
        assert redis.dbsize() == 0, name
    assert [r.reason for r in caplog.records if r.name == "bridge.audit"] == ["key"] * 4


def test_a_lane_item_that_is_not_an_item_is_refused(redis, settings, tmp_path):
    Lanes(redis).accept("in:u1", item(1))
    backup(redis, settings, tmp_path / "b")
    rewrite(tmp_path / "b", settings, [{"lane": "in:u1", "items": ['{"func": "os.system"}']}])
    redis.flushall()
    with pytest.raises(BackupError, match="not readable"):
        restore(redis, settings, tmp_path / "b")
    assert redis.dbsize() == 0


def test_an_unsigned_backup_of_an_older_bridge_says_how_to_make_a_new_one(redis, settings, tmp_path):
    backup(redis, settings, tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    old = {"format": manifest["format"], "version": 1, "created_at": 1.0, "redis_keys": 0, "media": manifest["media"]}
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(old))
    with pytest.raises(BackupError, match=r"unsigned backup of an older bridge: refused; make a new backup"):
        restore(redis, settings, tmp_path / "b")


def test_every_encryption_key_verifies_and_the_first_signs(redis, settings, tmp_path):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = dataclasses.replace(settings, encryption_key=old_key)
    redis.set("zfb:zu:u1", "kept")
    backup(redis, before, tmp_path / "b")
    redis.flushall()
    rotated = dataclasses.replace(settings, encryption_key=f"{new_key},{old_key}")
    assert restore(redis, rotated, tmp_path / "b")["redis_keys"] == 1
    redis.flushall()
    with pytest.raises(BackupError, match="does not verify"):
        restore(redis, dataclasses.replace(settings, encryption_key=new_key, secret_key="x" * 32), tmp_path / "b")


def test_every_key_the_bridge_names_is_a_family_restore_knows():
    """A key builder added to keys.py is restorable at once; nothing else is."""
    import inspect

    built = [keys.DUE, keys.WAKE, keys.VERIFIER_OWNERS, keys.CONNECTIONS]
    for _, fn in inspect.getmembers(keys, inspect.isfunction):
        if fn.__module__ == keys.__name__ and not fn.__name__.startswith("_"):
            value = fn(*["x"] * len(inspect.signature(fn).parameters))
            built += [value] if isinstance(value, str) and value.startswith(keys.ROOT) else []
    for k in (keys.Keys(), keys.Keys("c1")):
        for name, member in inspect.getmembers(keys.Keys):
            if isinstance(member, property):
                built.append(getattr(k, name))
            elif inspect.isfunction(member) and not name.startswith("_") and name != "media":
                built.append(member(k, *["x"] * (len(inspect.signature(member).parameters) - 1)))
    assert len(built) > 60 and all(keys.is_bridge_key(b) for b in built)
    assert not any(keys.is_bridge_key(k) for k in ("rq:job:1", "rq:queue:bridge", "zfb:nope", "zfbx:lane:1"))
