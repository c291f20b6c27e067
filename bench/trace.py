"""One Zalo text and one agent reply traced through the code: the numbers of docs/architecture.md.

    python -m bench.trace [--tree] [--json]

In one process, against a real Redis (sandbox/redis_server.py) with the partners mocked
(requests-mock): each message is posted, signed, through the Flask test client, then the
starter queues a drain job and an RQ SimpleWorker runs it in this process (burst mode), as the
worker's children do. `sys.setprofile` sees every Python call meanwhile. A first round of both
messages is not traced: imports, the worker context's clients and the Lua scripts' loading are
paid once per process, not per message. So the traced round is a warm worker and a known user,
the path of almost every message.

What is counted, per message (project code = the files under app/, workers/, config/):
- files: the project files in which a function ran;
- Lua: the scripts run (`LuaScript` calls, app/bridge/scripts.py), in order;
- cross-file calls: calls into project code whose nearest project caller on the stack is in
  another file (a call from Flask, RQ, requests or this script into project code has no
  project caller: it is an entry, not counted);
- reading steps: READING_RULE below, applied to the call tree (`--tree` prints that tree);
- functions (`--json` only): every project function that ran, to see which features' code the
  plain path crosses.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests
import requests_mock
from redis import Redis
from rq import Queue, SimpleWorker

from app import create_app
from sandbox.helpers import (
    FC_API,
    ZALO_API,
    fc_headers,
    load_fixture,
    make_settings,
    partners_answer_probes,
    zalo_body,
    zalo_headers,
)
from sandbox.redis_server import RedisServer
from workers.context import WorkerContext, set_worker_context
from workers.starter import QUEUE_NAME, Starter

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ("app", "workers", "config")
USER = "246845883529197922"  # the Zalo user and FreshChat conversation of the fixtures
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
FC_MESSAGES = f"{FC_API}/conversations/{CONV}/messages"
ZALO_CS = f"{ZALO_API}/v3.0/oa/message/cs"
MAX_DEPTH = 2  # steps below an entry (READING_RULE)
IO_LIBRARIES = tuple(str(Path(lib.__file__).parent) + "/" for lib in (redis, requests))
CACHES_SECONDS = 2.5  # the connection registry and the Zalo token pair are re-read after 2 s

READING_RULE = f"""\
1. The entries are steps: the functions Flask's route, the starter and the RQ job call. Flask's
   per-request hooks (session, request id, answer counters, headers) are not: they are read
   once for the whole web app.
2. Read with a function, not steps: its helpers in its own file; its local functions and
   lambdas, wherever they are called from (a callback runs code already read); dunder methods
   (constructors; `LuaScript.__call__`, whose script is counted under Lua).
3. A function entered by a call from another file is a step, one level below the step whose
   code called it, when: it is at most {MAX_DEPTH} levels below an entry; it or something it calls
   makes a round trip to Redis or calls a partner (a pure function - key names, checks, schemas,
   a text's parts - is read by its name where it is called, and so is one that only adds
   commands to a pipeline: they are read where the pipeline is sent); it was not read already.
4. In call order, each (file, function) once. Both messages are traced after an untraced first
   round, once the 2 s caches (connection registry, Zalo token pair) expired: runs agree."""


@dataclass(eq=False)
class Call:
    file: str
    func: str
    caller: Call | None
    code: object = field(default=None, repr=False)
    children: list[Call] = field(default_factory=list)
    io: bool = False  # it called redis-py or requests itself (the rule before issue 3)
    sent: bool = False  # it made a round trip itself: a Redis send, or a partner call

    def touches_io(self, rule: str = "sent") -> bool:
        return getattr(self, rule) or any(child.touches_io(rule) for child in self.children)

    @property
    def crosses(self) -> bool:
        return self.caller is not None and self.caller.file != self.file


class Tracer:
    """Records every call into project code, with its nearest project caller."""

    def __init__(self):
        self.frames: dict[int, tuple[object, Call]] = {}  # id(frame) -> (frame kept alive, its call)
        self.roots: list[Call] = []
        self.lua: list[str] = []
        self._files: dict[str, str | None] = {}

    def __enter__(self) -> Tracer:
        sys.setprofile(self._on_event)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(None)

    def _project_file(self, path: str) -> str | None:
        """The path under ROOT of a project file, else None."""
        if path not in self._files:
            try:
                rel = Path(path).resolve().relative_to(ROOT)
            except ValueError:
                rel = None
            self._files[path] = str(rel) if rel and rel.parts[0] in PROJECT and rel.suffix == ".py" else None
        return self._files[path]

    def _on_event(self, frame, event: str, arg) -> None:
        if event != "call" or id(frame) in self.frames:  # a generator resumed is not a new call
            return
        file = self._project_file(frame.f_code.co_filename)
        if file is None:
            if frame.f_code.co_filename.startswith(IO_LIBRARIES):
                caller = self._nearest_project_call(frame.f_back)
                if caller is not None:
                    caller.io = True
                    caller.sent = caller.sent or _is_send(frame.f_code)
            return
        caller = self._nearest_project_call(frame.f_back)
        call = Call(file, frame.f_code.co_qualname, caller, frame.f_code)
        self.frames[id(frame)] = (frame, call)
        (caller.children if caller else self.roots).append(call)
        if file == "app/bridge/scripts.py" and frame.f_code.co_name == "__call__":
            self.lua.append(frame.f_locals["self"].name)

    def _nearest_project_call(self, frame) -> Call | None:
        while frame is not None:
            known = self.frames.get(id(frame))
            if known is not None and known[0] is frame:
                return known[1]
            frame = frame.f_back
        return None

    def calls(self) -> list[Call]:
        found, stack = [], list(reversed(self.roots))
        while stack:
            call = stack.pop()
            found.append(call)
            stack.extend(reversed(call.children))
        return found


def _is_send(code) -> bool:
    """A round trip: redis-py sending (a command, a pipeline, a script), or any partner call."""
    return code.co_name == "send_packed_command" or code.co_filename.startswith(IO_LIBRARIES[1])


def _outer(func: str) -> str:
    """A local function or lambda is read with the function it is written in."""
    return func.split(".<locals>.")[0]


def _is_dunder(func: str) -> bool:
    name = _outer(func).rsplit(".", 1)[-1]
    return name.startswith("__") and name.endswith("__")


def reading_steps(tracer: Tracer, hooks: set, depth_limit: int = MAX_DEPTH, rule: str = "sent") -> list[Call]:
    """READING_RULE: the steps, in the order a reader meets them."""
    steps: list[Call] = []
    read: dict[tuple[str, str], int] = {}  # (file, function) -> depth of the step it is read in

    def walk(call: Call, depth: int | None) -> None:
        key = (call.file, _outer(call.func))
        if key in read:
            depth = read[key]  # already read (a helper of a step, a callback into one): that step's depth
        elif call.caller is not None and (not call.crosses or _is_dunder(call.func)):
            if depth is not None:
                read[key] = depth  # a helper in the caller's file, or a dunder: read with the caller's step
        elif not call.touches_io(rule):
            depth = None  # pure: read by its name where it is called
        elif depth is not None and depth < depth_limit:
            depth = read[key] = depth + 1
            steps.append(call)
        else:
            depth = None  # deeper than the limit: neither it nor what it calls is a step
        for child in call.children:
            walk(child, depth)

    for root in tracer.roots:
        walk(root, None if root.code in hooks else -1)
    return steps


@dataclass
class Measure:
    name: str
    files: list[str]
    lua: list[str]
    cross_file_calls: int
    first_entered: list[tuple[str, str]]
    steps: list[tuple[str, str]]
    sent: list[str]  # the POSTs the mocked partners received meanwhile: one, the message delivered
    steps_before: list[tuple[str, str]]  # by the rule before issue 3: any call into redis-py is Redis
    functions: list[str] = field(default_factory=list)  # every project function that ran, "file:function"

    def report(self) -> str:
        lines = [
            f"== {self.name}",
            f"files: {len(self.files)}  lua: {len(self.lua)} runs of {len(set(self.lua))} scripts  "
            f"cross-file calls: {self.cross_file_calls}  "
            f"reading steps: {len(self.steps)} (by the rule before issue 3, any call into redis-py: "
            f"{len(self.steps_before)})",
            "partners received: " + ", ".join(self.sent),
            "lua scripts: " + " ".join(self.lua),
            "files crossed: " + " ".join(self.files),
            "reading steps:",
            *(f"  {i:2} {file}:{func}" for i, (file, func) in enumerate(self.steps, 1)),
            "first entered by a cross-file call (file:function, in order):",
            *(f"     {file}:{func}" for file, func in self.first_entered),
        ]
        return "\n".join(lines)


def measure(name: str, tracer: Tracer, hooks: set, sent: list[str]) -> Measure:
    calls = tracer.calls()
    first: list[tuple[str, str]] = []
    for call in calls:
        if (call.crosses or call.caller is None) and (call.file, call.func) not in first:
            first.append((call.file, call.func))
    return Measure(
        name=name,
        files=sorted({call.file for call in calls}),
        lua=tracer.lua,
        cross_file_calls=sum(call.crosses for call in calls),
        first_entered=first,
        steps=[(c.file, c.func) for c in reading_steps(tracer, hooks)],
        sent=sent,
        steps_before=[(c.file, c.func) for c in reading_steps(tracer, hooks, rule="io")],
        functions=sorted({f"{call.file}:{call.func}" for call in calls}),
    )


def print_tree(tracer: Tracer) -> None:
    def show(call: Call, depth: int) -> None:
        mark = "->" if call.crosses or call.caller is None else "  "
        print(f"{'  ' * depth}{mark} {call.file}:{call.func}")
        for child in call.children:
            show(child, depth + 1)

    for root in tracer.roots:
        show(root, 0)


@dataclass
class Webhook:
    """A signed webhook, signed before the trace starts (signing is the partner's work)."""

    path: str
    body: bytes
    headers: dict


def zalo_text(n: int) -> Webhook:
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    event["message"]["msg_id"] = f"trace{n}{int(time.time() * 1000)}"
    event["timestamp"] = str(int(time.time() * 1000))
    body = zalo_body(event)
    return Webhook("/webhooks/zalo", body, zalo_headers(body, event))


def agent_reply(n: int) -> Webhook:
    event = load_fixture("freshchat", "webhooks", "message_create__agent_text.json")
    event["data"]["message"]["id"] = f"trace-{n}-{int(time.time() * 1000)}"
    body = json.dumps(event, separators=(",", ":")).encode()
    return Webhook("/webhooks/freshchat", body, fc_headers(body))


def partners(mock: requests_mock.Mocker) -> None:
    """What the two messages ask of the partners; anything else is requests-mock's error."""
    agent = load_fixture("freshchat", "answers", "agent.json")
    mock.post(FC_MESSAGES, json={"id": "fc-msg-1"})
    mock.put(f"{FC_API}/users/{FC_USER}", json={"id": FC_USER})  # "last seen", at most hourly
    mock.get(f"{FC_API}/agents/{agent['id']}", json=agent)  # the agent's name, read once
    # Inside the user's free window Zalo names the quota that paid: the reply quota.
    mock.post(ZALO_CS, json=load_fixture("zalo", "answers", "message_cs__reply_quota.json"))
    partners_answer_probes(mock)


def request_hooks(app) -> set:
    """The code Flask runs around every request whatever its route (the session, request ids,
    answer counters, headers): read once for the web app, not a step of a message."""
    found = [app.session_interface.open_session, app.session_interface.save_session]
    for registry in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs):
        found += [hook for hooks in registry.values() for hook in hooks]
    return {inspect.unwrap(hook).__code__ for hook in found}


class Bridge:
    """The web app and one worker's pieces, in this process."""

    def __init__(self, redis_url: str, media_dir: str):
        settings = make_settings(redis_url, media_dir=media_dir)
        self.redis = Redis.from_url(redis_url)
        app = create_app(settings)
        self.web = app.test_client()
        self.hooks = request_hooks(app)
        ctx = WorkerContext(settings, self.redis)
        set_worker_context(ctx)
        ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)  # a user the bridge knows
        ctx.mapping.link_conversation(USER, CONV)
        self.queue = Queue(QUEUE_NAME, connection=self.redis)
        self.starter = Starter(self.redis, ctx.lanes, workers=1, queue=self.queue)
        self.worker = SimpleWorker([self.queue], connection=self.redis)

    def post(self, webhook: Webhook) -> None:
        answer = self.web.post(webhook.path, data=webhook.body, headers=webhook.headers)
        if answer.status_code != 200:
            raise RuntimeError(f"{webhook.path} answered {answer.status_code}: {answer.get_data(as_text=True)}")

    def work(self) -> None:
        """The starter's one look, then the drain job it queued, run by an RQ SimpleWorker here."""
        self.starter.run_once(block_seconds=1.0)
        self.worker.work(burst=True, logging_level="WARNING", with_scheduler=False)


# Each message: its name and its signed webhook.
MESSAGES = [("one Zalo text, Zalo -> FreshChat", zalo_text), ("one agent reply, FreshChat -> Zalo", agent_reply)]


def trace(tree: bool = False) -> list[Measure]:
    server = RedisServer(appendonly=False).start()
    try:
        with tempfile.TemporaryDirectory() as media, requests_mock.Mocker() as mock:
            partners(mock)
            bridge = Bridge(server.url, media)
            for _, webhook in MESSAGES:  # the warm-up round, not traced
                bridge.post(webhook(0))
                bridge.work()
            measures = []
            for name, webhook in MESSAGES:
                time.sleep(CACHES_SECONDS)  # the same state for every run: those caches expired
                signed, before = webhook(1), len(mock.request_history)
                with Tracer() as tracer:
                    bridge.post(signed)
                    bridge.work()
                sent = [f"POST {r.url}" for r in mock.request_history[before:] if r.method == "POST"]
                measures.append(measure(name, tracer, bridge.hooks, sent))
                if tree:
                    print(f"== call tree: {name}")
                    print_tree(tracer)
            return measures
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="store_true", help="print each message's call tree of project code")
    parser.add_argument("--json", action="store_true", help="the numbers as JSON")
    args = parser.parse_args()
    measures = trace(tree=args.tree)
    if args.json:
        print(json.dumps([m.__dict__ for m in measures], indent=1))
        return
    print("Reading steps, the rule:\n" + READING_RULE + "\n")
    for m in measures:
        print(m.report() + "\n")


if __name__ == "__main__":
    main()
