"""Redis round trips and commands per relayed message (issue 3 point 1), webhook + worker.

    python -m bench.redis_cost [--messages N] [--list]

In one process, like bench/trace.py: against a real Redis (sandbox/redis_server.py), partners
mocked, a known user with an open conversation. Each message is posted signed through the
Flask test client (the webhook), then the worker does what a drain job that is already running
does when a message arrives: its `BLPOP` on the doorbell returns, it claims the lane, drains
it and looks once more for a due lane (`drain_due`'s loop, minus the wait that would block).
The starter's once-a-second look and RQ's per-job bookkeeping are paid per slice, not per
message, and are left out here; bench/relay.py's run counts them (commands per message there).

Counted per message, for a Zalo text (Zalo -> FreshChat) and an agent text (FreshChat -> Zalo):
- round trips: every send on a redis-py connection (a pipeline or a script is one, as is a
  single command), counted by wrapping `Connection.send_packed_command`;
- commands: Redis's own `INFO stats` `total_commands_processed` delta (Lua scripts' inner
  calls included), less the INFO calls themselves.
`--list` prints each round trip of the last message with the project function that made it;
`--cpu` measures the worker's CPU per message instead (process time over its turns, nothing
counted meanwhile; partners mocked, so this is the bridge's own share of a message).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter

import requests_mock
from redis.connection import Connection

from app.bridge import keys
from bench.trace import MESSAGES, ROOT, Bridge, partners
from sandbox.redis_server import RedisServer
from workers.drain import Drainer, next_lane

MESSAGES_PER_KIND = 50
SKIP = ("app/bridge/scripts.py",)  # a script's round trip is named after its caller


class RoundTrips:
    """Counts sends on every redis-py connection of this process, and who made each."""

    def __init__(self):
        self.count = 0
        self.made_by: list[str] = []
        self._original = Connection.send_packed_command

    def __enter__(self) -> RoundTrips:
        counter = self

        def send(conn, command, check_health=True):
            counter.count += 1
            counter.made_by.append(_who(command))
            return counter._original(conn, command, check_health)

        Connection.send_packed_command = send
        return self

    def __exit__(self, *exc) -> None:
        Connection.send_packed_command = self._original


def _who(command) -> str:
    """The innermost project function on the stack, and the first command sent."""
    first = command[0] if isinstance(command, list) else command
    name = bytes(first).split(b"\r\n")[2].decode(errors="replace") if first else "?"
    frame = sys._getframe(2)
    while frame is not None:
        rel = frame.f_code.co_filename.removeprefix(f"{ROOT}/")
        if rel.startswith(("app/", "workers/")) and not rel.endswith(SKIP):
            return f"{name:8} {rel}:{frame.f_code.co_qualname}"
        frame = frame.f_back
    return f"{name:8} (library)"


def commands(redis) -> int:
    return int(redis.info("stats")["total_commands_processed"])


def worker_turn(bridge: Bridge, drainer: Drainer) -> None:
    """What a running drain job does for one message (workers/drain.py `drain_due`)."""
    ctx = drainer.ctx
    rung = ctx.redis.blpop([keys.WAKE], timeout=0.01)  # the doorbell the webhook rang
    claimed = next_lane(ctx.lanes, rung)
    if claimed is None:
        raise RuntimeError("nothing due after the webhook")
    drainer.drain_held(*claimed)
    if next_lane(ctx.lanes, None) is not None:  # the job's next look finds nothing
        raise RuntimeError("a lane still due")


def measure(bridge: Bridge, drainer: Drainer, make, n: int) -> dict:
    webhook_trips = worker_trips = webhook_cmds = worker_cmds = 0
    each: list[int] = []  # the worker's round trips of each message
    each_cmds: list[int] = []  # and its commands
    made_by: dict[str, list[str]] = {}
    for i in range(n):
        signed = make(1000 + i)
        before = commands(bridge.redis)
        with RoundTrips() as trips:
            bridge.post(signed)
        middle = commands(bridge.redis)
        webhook_trips += trips.count
        made_by["webhook"] = trips.made_by
        with RoundTrips() as trips:
            worker_turn(bridge, drainer)
        after = commands(bridge.redis)
        worker_trips += trips.count
        each.append(trips.count)
        made_by["worker"] = trips.made_by
        webhook_cmds += middle - before - 1  # less the INFO itself
        worker_cmds += after - middle - 1
        each_cmds.append(after - middle - 1)
    return {
        "webhook_round_trips": webhook_trips / n,
        "worker_round_trips": worker_trips / n,
        "worker_round_trips_fewest": min(each),  # a message that found every cache fresh
        "round_trips": (webhook_trips + worker_trips) / n,
        "webhook_commands": webhook_cmds / n,
        "worker_commands": worker_cmds / n,
        "worker_commands_fewest": min(each_cmds),
        "commands": (webhook_cmds + worker_cmds) / n,
        "round_trips_of_last": made_by,
    }


def cpu(bridge: Bridge, drainer: Drainer, make, n: int) -> dict:
    """The worker's CPU per message (this process's user + system time over its turns), with
    nothing counted meanwhile: the path's own cost, partners mocked by requests-mock."""
    spent = 0.0
    for i in range(n):
        bridge.post(make(5000 + i))
        before = time.process_time()
        worker_turn(bridge, drainer)
        spent += time.process_time() - before
    return {"worker_cpu_ms": 1000 * spent / n}


def run(n: int = MESSAGES_PER_KIND, measure_cpu: bool = False) -> list[tuple[str, dict]]:
    server = RedisServer(appendonly=False).start()
    try:
        with tempfile.TemporaryDirectory() as media, requests_mock.Mocker() as mock:
            partners(mock)
            bridge = Bridge(server.url, media)
            for _, webhook in MESSAGES:  # warm up: imports, clients, scripts loaded, caches
                bridge.post(webhook(0))
                bridge.work()
            from workers.context import worker_context

            drainer = Drainer(worker_context())
            if measure_cpu:
                return [(name, cpu(bridge, drainer, webhook, n)) for name, webhook in MESSAGES]
            return [(name, measure(bridge, drainer, webhook, n)) for name, webhook in MESSAGES]
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=MESSAGES_PER_KIND, help="messages of each kind")
    parser.add_argument("--list", action="store_true", help="each round trip of the last message")
    parser.add_argument("--cpu", action="store_true", help="the worker's CPU per message instead (nothing counted)")
    args = parser.parse_args()
    started = time.monotonic()
    if args.cpu:
        for name, m in run(args.messages, measure_cpu=True):
            print(f"== {name}: worker CPU {m['worker_cpu_ms']:.2f} ms per message ({args.messages} messages)")
        return
    for name, m in run(args.messages):
        print(f"== {name} (per message, {args.messages} messages)")
        print(
            f"round trips: {m['round_trips']:.2f} (webhook {m['webhook_round_trips']:.2f}, "
            f"worker {m['worker_round_trips']:.2f})"
        )
        print(
            f"commands:    {m['commands']:.2f} (webhook {m['webhook_commands']:.2f}, worker {m['worker_commands']:.2f})"
        )
        if args.list:
            for side, made in m["round_trips_of_last"].items():
                for who, times in Counter(made).items():
                    print(f"  {side:7} x{times}  {who}")
    print(f"({time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
