"""Process supervision for the worker: RQ SimpleWorker children plus the starter.

rq's own WorkerPool was tried for the children and does not fit: it always starts RQ's
scheduler in every worker (Redis polling the bridge does not need), and its parent loop checks
children once a second with no room for the starter, which must react to a webhook within
milliseconds (docs/delivery.md, "Lanes"). So this module forks SimpleWorkers itself and runs
the starter, the heartbeat and the Zalo token keep-alive in the parent.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from rq import Queue, SimpleWorker

from app.bridge.keys import HEARTBEAT
from app.bridge.lanes import Lanes
from app.bridge.outage import RedisOutage
from app.extensions import connect_redis
from app.logs import configure_logging
from app.operations.startup import ConnectionTests, warn_about_settings
from config import ConfigError, load_settings
from workers.catchup import Triggers
from workers.context import WorkerContext, set_worker_context
from workers.starter import QUEUE_NAME, Starter

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("worker.supervisor")
GRACE_SECONDS = 30.0  # after SIGTERM, how long children may take to finish; then SIGKILL
# How often the starter loop checks the Zalo pairs' age (one HGETALL each) and tests again the
# connections whose last test failed.
TOKEN_CHECK_SECONDS = 300.0


def _load():
    try:
        settings = load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings)
    return settings


REDIS_GONE = 3  # a child's exit status when Redis went away: the parent says it once, not each child


class BridgeWorker(SimpleWorker):
    """A SimpleWorker for which every stop signal means a warm shutdown.

    RQ turns a second SIGTERM or SIGINT more than a second after the first into a cold
    shutdown, which raises SystemExit inside the job: a reply Zalo accepted is then never
    recorded and is sent again, and the lane waits out its lease. Here the second one is
    common, not a request for haste: a process manager signals the whole group (systemd,
    honcho, Ctrl-C) and the supervisor then forwards SIGTERM to its children again. The cold
    shutdown is the supervisor's SIGKILL after GRACE_SECONDS."""

    def request_force_stop(self, signum, frame) -> None:
        log.debug("worker.stop_signal_repeated", extra={"signal": signum})


def run_rq_worker(settings: Settings, index: int) -> None:
    """Child: one SimpleWorker (jobs run in-process, keeping HTTP keep-alive pools warm)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when children stop
    redis = connect_redis(settings)
    try:
        set_worker_context(WorkerContext(settings, redis))
        name = f"bridge-{os.uname().nodename}-{os.getpid()}-{index}"
        worker = BridgeWorker([Queue(QUEUE_NAME, connection=redis)], connection=redis, name=name)
        worker.work(logging_level="WARNING", with_scheduler=False)
    except RedisError:
        os._exit(REDIS_GONE)  # the parent's outage line names the Redis; no traceback per child


class Supervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.children: dict[int, BaseProcess] = {}  # the fork context's processes
        self.stopping = False
        self.ctx = multiprocessing.get_context("fork")
        self.outage = RedisOutage(log, settings.redis_url)

    def spawn(self, index: int) -> None:
        proc = self.ctx.Process(target=run_rq_worker, args=(self.settings, index), daemon=False)
        proc.start()
        self.children[index] = proc

    def reap(self) -> None:
        """Respawn dead children (a crash, an OOM kill, or Redis going away). While Redis is
        away the starter loop waits out the outage first, so children are not respawned in a
        tight loop; a child that left because of it is not a crash worth a line."""
        if self.outage.ongoing:
            return
        for index, proc in list(self.children.items()):
            if not proc.is_alive() and not self.stopping:
                if proc.exitcode != REDIS_GONE:
                    log.warning("worker.child_died", extra={"index": index, "exitcode": proc.exitcode})
                self.spawn(index)

    def stop(self, *_args) -> None:
        self.stopping = True

    def shutdown(self) -> None:
        for proc in self.children.values():
            if proc.is_alive() and proc.pid is not None:  # alive: started, so it has a pid
                os.kill(proc.pid, signal.SIGTERM)  # RQ's warm shutdown: finish the current job
        deadline = time.monotonic() + GRACE_SECONDS
        for proc in self.children.values():
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()


def run_starter(supervisor: Supervisor) -> None:
    settings = supervisor.settings
    redis = connect_redis(settings)
    starter = Starter(redis, Lanes(redis, lease_ms=settings.lease_seconds * 1000), settings.worker_concurrency)
    tokens = _TokenCheck(redis, settings)
    catch_up = Triggers(redis, settings)
    token_check_at = time.monotonic()
    missed = "start"  # why Zalo's history may hold messages no webhook brought: catch up
    while not supervisor.stopping:
        try:
            redis.set(HEARTBEAT, time.time(), ex=60)
            if supervisor.outage.recovered():
                missed = missed or "redis"  # webhooks were answered 503 meanwhile; Zalo may give up
            if missed:
                catch_up.everyone(missed)
                missed = ""
            starter.run_once(block_seconds=1.0)
            catch_up.check_quiet()
            catch_up.check_web_restart()
            if time.monotonic() >= token_check_at:
                token_check_at = time.monotonic() + TOKEN_CHECK_SECONDS  # a failing check waits too
                tokens.keep_alive()  # an idle OA's refresh token would otherwise run out
        except RedisError as exc:
            if supervisor.stopping:
                break  # Ctrl-C stops Redis too: its going away now is no outage to report
            _sleep_unless_stopping(supervisor, supervisor.outage.failed(exc))  # nothing is lost: work stays in Redis
        supervisor.reap()


def _sleep_unless_stopping(supervisor: Supervisor, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not supervisor.stopping and time.monotonic() < deadline:
        time.sleep(0.1)


class _TokenCheck:
    """Keeps every enabled connection's Zalo pair alive, one connection's trouble apart from
    the others', and tests again the connections whose last test failed (app/operations/startup.py)."""

    def __init__(self, redis, settings: Settings):
        self.ctx = WorkerContext(settings, redis)
        self.retest_at = time.monotonic() + TOKEN_CHECK_SECONDS  # the start-up test runs meanwhile

    def keep_alive(self) -> None:
        if not self.ctx.settings.sandbox and time.monotonic() >= self.retest_at:
            self.retest_at = time.monotonic() + TOKEN_CHECK_SECONDS
            ConnectionTests(self.ctx).run(only_failed=True)
        for connection in self.ctx.connections.all():
            if not connection.enabled:
                continue
            try:
                self.ctx.for_connection(connection.id).tokens.keep_alive()
            except RedisError:
                raise  # the starter loop waits for Redis
            except Exception:  # a bad stored connection must not stop the others' rotation
                log.exception("worker.keepalive_failed", extra={"connection": connection.id})


def test_connections_at_start(settings: Settings) -> threading.Thread | None:
    """Try every connection's credentials once, beside the starter (a slow partner must not
    delay the first delivery). The simulators of sandbox mode need no test."""
    if settings.sandbox:
        return None

    def run() -> None:
        try:
            ConnectionTests(WorkerContext(settings, connect_redis(settings))).run()
        except RedisError:
            pass  # the starter loop says Redis is away; the token check tests again later

    thread = threading.Thread(target=run, name="connection-tests", daemon=True)
    thread.start()
    return thread


def main() -> int:
    settings = _load()
    warn_about_settings(settings, log)
    supervisor = Supervisor(settings)
    signal.signal(signal.SIGTERM, supervisor.stop)
    signal.signal(signal.SIGINT, supervisor.stop)
    for index in range(settings.worker_concurrency):
        supervisor.spawn(index)
    log.info("worker.started", extra={"concurrency": settings.worker_concurrency, "sandbox": settings.sandbox})
    test_connections_at_start(settings)
    try:
        run_starter(supervisor)
    finally:
        supervisor.shutdown()
    return 0
