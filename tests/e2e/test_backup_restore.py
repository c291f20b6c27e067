"""Backup and restore with the real commands: a bridge filled through its webhooks (a user
mapping, a rotated token pair, queued items both ways, a dead letter, a media copy) is backed up,
its Redis and media folder wiped, restored, and it carries on as if nothing had happened."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys

import requests

from app.bridge.keys import DEFAULT_KEYS, WEB_STARTED
from sandbox.procs import ROOT, wait_until
from tests.e2e.test_delivery import END, end_of_run
from tests.sandbox import png_bytes

USER = "8200000000000000001"


def flask(bridge, *args) -> subprocess.CompletedProcess:
    env = {**bridge.env, "FLASK_APP": "app"}
    return subprocess.run(
        [sys.executable, "-m", "flask", "bridge", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def conversations(fc) -> list[dict]:
    """The user's FreshChat conversations (one, once the first message is in)."""
    users = [u for u in fc.state()["users"] if u["reference_id"].endswith(":" + USER)]
    return [c for u in users for c in fc.conversations_of(u["id"])]


def user_parts(fc) -> list[dict]:
    return [
        p for c in conversations(fc) for m in c["messages"] if m["actor_type"] == "user" for p in m["message_parts"]
    ]


def user_texts(fc) -> list[str]:
    return [p["text"]["content"] for p in user_parts(fc) if "text" in p]


def zalo_texts(zalo) -> list[str]:
    return [m["message"].get("text", "") for m in zalo.messages_to(USER)]


def test_backup_wipe_restore_and_the_bridge_resumes(make_bridge, sims, redis, tmp_path):
    _, zalo, fc = sims
    bridge = make_bridge(RETRY_HORIZON_SECONDS="2")
    zhook, fhook = bridge.url + "/webhooks/zalo", bridge.url + "/webhooks/freshchat"
    photo = png_bytes(120)
    zalo.send_image(zhook, USER, "photo.png", photo, "image/png")
    wait_until(lambda: [p for p in user_parts(fc) if "image" in p], timeout=20, what="the photo in FreshChat")
    link = next(p["image"]["url"] for p in user_parts(fc) if "image" in p)
    conversation = conversations(fc)[0]["conversation_id"]
    # The pair rotates once, so only Redis knows the pair that works from now on.
    zalo.expire_access_token()
    fc.send_agent_message(fhook, conversation, "before the backup")
    wait_until(lambda: "before the backup" in zalo_texts(zalo), timeout=20, what="the reply after a refresh")
    assert zalo.refresh_count == 1
    zalo.faults.fail_fraction("message_cs", 1.0, ["http500"])
    fc.send_agent_message(fhook, conversation, "this one dies")
    wait_until(lambda: redis.zcard(DEFAULT_KEYS.dead_order) == 1, timeout=30, what="a dead letter")
    zalo.faults.clear()
    # The worker stops: what arrives now waits in its lanes.
    bridge.kill("worker0", signal.SIGTERM)
    assert zalo.send_text(zhook, USER, "queued in").statuses == [200]
    assert fc.send_agent_message(fhook, conversation, "queued out").statuses == [200]

    out = flask(bridge, "backup", str(tmp_path / "backup"))
    assert out.returncode == 0, out.stderr
    assert "media files" in out.stdout
    bridge.stop()
    redis.flushall()
    shutil.rmtree(bridge.env["MEDIA_DIR"])

    done = flask(bridge, "restore", str(tmp_path / "backup"))
    assert done.returncode == 0, done.stderr
    again = flask(bridge, "restore", str(tmp_path / "backup"))
    assert again.returncode == 1 and "already holds" in again.stderr  # never over live data by accident

    bridge.start_all(workers=1)
    wait_until(lambda: "queued in" in user_texts(fc), timeout=30, what="the queued Zalo message")
    wait_until(lambda: "queued out" in zalo_texts(zalo), timeout=30, what="the queued agent reply")
    wait_until(lambda: redis.zcard(DEFAULT_KEYS.dead_order) == 1, timeout=5, what="the restored dead letter")
    end_of_run(bridge, zalo, fc, {USER: conversation})  # a second copy lands first
    assert user_texts(fc).count("queued in") == 1 and zalo_texts(zalo).count("queued out") == 1
    assert len(fc.state()["users"]) == 1 and len(conversations(fc)) == 1  # the mapping was reused
    (reply, end) = [m for m in zalo.messages_to(USER) if m["message"].get("text") in ("queued out", END)]
    assert reply["access_token"] == end["access_token"] == zalo.access_token  # the restored pair
    assert zalo.refresh_count == 1
    assert requests.get(link, timeout=5).content == photo


def test_a_changed_backup_is_refused_in_one_line_and_nothing_is_restored(make_bridge, redis, tmp_path):
    """The queued item is swapped for an RQ job (pickled code) and its hash fixed in the
    manifest: without the signing key the manifest no longer verifies."""
    import base64
    import gzip
    import hashlib
    import json

    bridge = make_bridge()
    redis.set("zfb:zu:u1", "kept")
    assert flask(bridge, "backup", str(tmp_path / "b")).returncode == 0
    bridge.stop()
    redis.hset("rq:job:evil", mapping={"data": b"\x80\x05pickled", "status": "queued"})
    evil = {
        "key": base64.b64encode(b"rq:job:evil").decode(),
        "ttl_ms": 0,
        "dump": base64.b64encode(redis.dump("rq:job:evil")).decode(),
    }
    redis.flushall()
    data = gzip.compress((json.dumps(evil) + "\n").encode())
    (tmp_path / "b" / "redis.jsonl.gz").write_bytes(data)
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    manifest["files"]["redis.jsonl.gz"] = hashlib.sha256(data).hexdigest()
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(manifest))

    done = flask(bridge, "restore", str(tmp_path / "b"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"Error: {tmp_path / 'b'} does not verify" in done.stderr
    assert "backup_refused" in done.stderr  # the audit line
    assert set(redis.keys("*")) <= {WEB_STARTED.encode()}  # the command's own app stamps its start
