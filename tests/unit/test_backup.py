"""The backup file and its refusals (the whole round trip through a running bridge is
tests/e2e/test_backup_restore.py)."""

from __future__ import annotations

import dataclasses
import gzip
import json

import pytest

from app.backup import BackupError, backup, restore
from app.bridge.keys import HEARTBEAT
from app.media.store import LocalMediaStore


def test_every_bridge_key_comes_back_with_its_ttl_and_nothing_else(redis, settings, tmp_path):
    redis.set("zfb:seen:zalo:e1", "1", ex=600)
    redis.rpush("zfb:lane:in:u1", b"\x00item-1", "item-2")
    redis.hset("zfb:zu:u1", mapping={"fc_user": "f1"})
    redis.set(HEARTBEAT, "1", ex=60)
    redis.set("rq:queue:bridge", "not ours")
    manifest = backup(redis, settings, tmp_path / "b")
    assert manifest["redis_keys"] == 3 and manifest["media"] == {"store": "local", "files": 0}
    with gzip.open(tmp_path / "b" / "redis.jsonl.gz", "rt") as f:
        ttls = sorted(json.loads(line)["ttl_ms"] for line in f)
    assert ttls[:2] == [0, 0] and 599_000 < ttls[2] <= 600_000
    redis.flushall()
    assert restore(redis, settings, tmp_path / "b")["redis_keys"] == 3
    assert redis.lrange("zfb:lane:in:u1", 0, -1) == [b"\x00item-1", b"item-2"]
    assert redis.hgetall("zfb:zu:u1") == {b"fc_user": b"f1"}
    assert 590 < redis.ttl("zfb:seen:zalo:e1") <= 600 and redis.ttl("zfb:zu:u1") == -1
    assert redis.get(HEARTBEAT) is None and redis.get("rq:queue:bridge") is None


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
