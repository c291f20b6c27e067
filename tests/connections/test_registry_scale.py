"""A thousand connections on one bridge: the registry finds a connection by index, re-reads only
what changed (seen by every process within REFRESH_SECONDS), and unseals a connection's secrets
only when they are used."""

from __future__ import annotations

import subprocess
import sys

from cryptography.fernet import MultiFernet

from app.bridge.keys import CONNECTIONS_STAMPS, CONNECTIONS_VERSION
from app.connections.store import STORE, Registry
from sandbox.procs import wait_until
from tests.connections.test_connections import RECORD, registry

APP = RECORD["zalo"]["app_id"]


def oa(i: int, **zalo) -> dict:
    return dict(RECORD, id=f"oa-{i}", zalo={**RECORD["zalo"], "oa_id": f"oa{i}", **zalo})


class Decrypts:
    """Counts Fernet decryptions (every unseal goes through MultiFernet.decrypt)."""

    def __init__(self, monkeypatch):
        self.count = 0
        real = MultiFernet.decrypt

        def counted(fernet, token, *args):
            self.count += 1
            return real(fernet, token, *args)

        monkeypatch.setattr(MultiFernet, "decrypt", counted)


def test_secrets_are_not_unsealed_until_a_connections_settings_are_used(redis, settings, monkeypatch):
    reg = registry(redis, settings)
    for i in range(20):
        reg.store.put(oa(i))
    decrypts = Decrypts(monkeypatch)
    assert len(reg.all()) == 21 and reg.for_zalo(APP, "oa7").id == "oa-7"
    assert [c.id for c in reg.sharing_account(reg.get("oa-3"))][:2] == ["oa-3", "oa-0"]
    assert decrypts.count == 0  # loaded, indexed, routed: nothing opened
    conn = reg.for_zalo(APP, "oa7")
    assert conn.settings.zalo_oa_secret_key == RECORD["zalo"]["oa_secret_key"]
    assert decrypts.count == 3  # its app secret, OA secret key and FreshChat key: its own only
    assert reg.for_zalo(APP, "oa7").settings.freshchat_api_key == RECORD["freshchat"]["api_key"]
    assert decrypts.count == 3  # opened once, kept


def test_a_reload_reads_only_the_connections_that_changed(redis, settings, monkeypatch):
    reg = registry(redis, settings)
    for i in range(30):
        reg.store.put(oa(i))
    assert len(reg.all()) == 31
    before = {c.id: c for c in reg.all()}
    reg.store.put(oa(4, oa_id="oa4-new"))
    read = []
    real = redis.hmget
    monkeypatch.setattr(redis, "hmget", lambda key, ids: read.append((key, list(ids))) or real(key, ids))
    reg.forget_cache()
    after = {c.id: c for c in reg.all()}
    assert read == [(STORE, ["oa-4"])]
    assert [i for i in after if after[i] is not before[i]] == ["oa-4"]  # the others kept as they were
    read.clear()
    reg.forget_cache()
    assert reg.get("oa-5") is before["oa-5"] and read == []  # version unchanged: nothing re-read


def test_index_look_ups_follow_add_change_and_remove_at_once(redis, settings):
    reg = registry(redis, settings)
    reg.store.put(oa(1))
    assert reg.for_zalo(APP, "oa1").id == "oa-1" and reg.for_zalo(APP, "oa2") is None
    reg.store.put(oa(2))
    reg.forget_cache()
    assert reg.for_zalo(APP, "oa2").id == "oa-2"
    reg.store.put(oa(2, oa_id="oa2-moved"))  # its OA id changed
    reg.forget_cache()
    assert reg.for_zalo(APP, "oa2") is None and reg.for_zalo(APP, "oa2-moved").id == "oa-2"
    reg.store.put(oa(1, app_id="another-app"))  # its app changed
    reg.forget_cache()
    assert reg.for_zalo(APP, "oa1") is None and reg.for_zalo("another-app", "oa1").id == "oa-1"
    assert [c.id for c in reg.zalo_candidates(APP, [])] == ["oa-2"]
    reg.store.remove("oa-2")
    reg.forget_cache()
    assert reg.for_zalo(APP, "oa2-moved") is None and reg.get("oa-2") is None
    assert [c.id for c in reg.on_account("https://hcm.freshchat.com/v2")] == ["oa-1"]


def test_a_zalo_events_candidates_are_one_look_at_the_registry(redis, settings, monkeypatch):
    """Sender and recipient are looked up in one snapshot: one version read, then none within
    REFRESH_SECONDS; the named OA's connection wins, an event naming none may be any of the app's."""
    reg = registry(redis, settings)
    for i in (1, 2):
        reg.store.put(oa(i))
    assert len(reg.all()) == 3  # a process's first read: every connection
    reads = []
    real = redis.get
    monkeypatch.setattr(redis, "get", lambda key: reads.append(key) or real(key))
    reg.forget_cache()
    assert [c.id for c in reg.zalo_candidates(APP, ["user-9", "oa2"])] == ["oa-2"]
    assert reads == [CONNECTIONS_VERSION]
    assert [c.id for c in reg.zalo_candidates(APP, ["oa1", "user-9"])] == ["oa-1"] and len(reads) == 1
    assert [c.id for c in reg.zalo_candidates(APP, [])] == ["oa-1", "oa-2"]
    assert reg.zalo_candidates(APP, ["user-9"]) == [] and len(reads) == 1


def test_every_write_stamps_the_connection_and_moves_the_version(redis, settings):
    reg = registry(redis, settings)
    reg.store.put(oa(1))
    first = redis.get(CONNECTIONS_VERSION)
    assert redis.hget(CONNECTIONS_STAMPS, "oa-1") == first
    reg.store.remove("oa-1")
    assert redis.get(CONNECTIONS_VERSION) not in (None, first) and not redis.hexists(CONNECTIONS_STAMPS, "oa-1")


# Another process (a web or worker process elsewhere) changing one connection through the store.
WRITER = """
import sys
from types import SimpleNamespace
from redis import Redis
from app.bridge.secrets_at_rest import sealer_for
from app.connections.store import ConnectionStore
from tests.connections.test_connections import RECORD
url, secret_key, encryption_key, name = sys.argv[1:]
sealer = sealer_for(SimpleNamespace(secret_key=secret_key, encryption_key=encryption_key))
store = ConnectionStore(Redis.from_url(url), None, sealer)
store.put(dict(RECORD, id="oa-1", name=name, zalo=dict(RECORD["zalo"], oa_id="oa1")))
"""


def test_a_change_in_another_process_reaches_this_registry_within_its_refresh(redis, settings):
    reg = registry(redis, settings)
    for i in range(50):
        reg.store.put(oa(i))
    assert reg.get("oa-1").name == RECORD["name"]  # loaded before the change
    argv = [settings.redis_url, settings.secret_key, settings.encryption_key, "Renamed elsewhere"]
    subprocess.run([sys.executable, "-c", WRITER, *argv], check=True, timeout=60)
    wait_until(lambda: reg.get("oa-1").name == "Renamed elsewhere", Registry.REFRESH_SECONDS + 0.5, what="the change")
    assert reg.for_zalo(APP, "oa1").name == "Renamed elsewhere"


def test_while_one_thread_asks_redis_the_others_wait_for_its_answer_not_the_old_one(redis, settings, monkeypatch):
    """A web process's threads share one registry: a stale snapshot is never answered while it
    is being refreshed (a connection stored 2 s ago must not be a 401 for the other threads)."""
    import threading

    reg = registry(redis, settings)
    assert reg.get("oa-1") is None  # loaded
    reg.store.put(oa(1))
    entered, release = threading.Event(), threading.Event()
    real = reg.store.version

    def slow_version():
        entered.set()
        release.wait(30)
        return real()

    monkeypatch.setattr(reg.store, "version", slow_version)
    reg.forget_cache()
    got = {}
    first = threading.Thread(target=lambda: got.setdefault("first", reg.get("oa-1")))
    first.start()
    assert entered.wait(30)
    second = threading.Thread(target=lambda: got.setdefault("second", reg.get("oa-1")))
    second.start()
    release.set()
    first.join(30), second.join(30)
    assert got["first"].id == "oa-1" and got["second"].id == "oa-1"
