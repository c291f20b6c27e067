"""Fault injection shared by the partner simulators, plus the webhook poster they share.

Each simulator owns a `FaultInjector`. Before every partner route it asks `check(endpoint)`,
where `endpoint` is the Flask endpoint name (`message_cs`, `upload_image`, `message_create`,
...; `*` matches all). Rules are set from Python or over HTTP (`POST /_sim/faults` with a
rule or `{"rules": [...]}`, `DELETE /_sim/faults` to clear, `GET /_sim/faults` to read):

    {"endpoint": "message_cs", "next": 2, "outcome": "http500"}         fail the next 2 calls
    {"endpoint": "*", "fraction": 0.3, "outcomes": ["http429", -32], "seed": 7}
    {"endpoint": "message_cs", "next": 1, "outcome": "http429", "retry_after": 3}
    {"endpoint": "message_cs", "next": 1, "outcome": "timeout", "seconds": 2}
    {"endpoint": "*", "down_until": 1767225600.0}                       503 until that epoch
    {"endpoint": "*", "latency_ms": 40}                                 every call is slower

Outcomes: `httpNNN` or a bare status (any status; 429 carries `Retry-After`), `timeout` (sleep `seconds`, then
504, nothing processed), `slow` (sleep `seconds`, then process normally: the partner did the
work but the caller may have given up) and partner error codes (negative ints, Zalo only),
which the simulator answers as HTTP 200 `{"error": code, ...}`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import requests
from flask import Flask, jsonify, make_response, request

ANY = "*"
RULE_KEYS = {
    "endpoint",
    "next",
    "outcome",
    "fraction",
    "outcomes",
    "seed",
    "retry_after",
    "seconds",
    "down_until",
    "latency_ms",
}
WEBHOOK_TIMEOUT = 10.0


@dataclass(frozen=True)
class Fault:
    """What one failing call answers."""

    outcome: str | int
    retry_after: int = 1
    seconds: float = 5.0

    @property
    def code(self) -> int | None:
        """The partner error code, for outcomes given as a negative int."""
        return self.outcome if isinstance(self.outcome, int) else None

    @property
    def status(self) -> int:
        if self.code is not None:
            return 200  # Zalo reports application errors inside an HTTP 200
        if self.outcome == "down":
            return 503
        if self.outcome == "timeout":
            return 504
        return int(str(self.outcome)[4:])


@dataclass
class Rule:
    endpoint: str
    outcomes: list
    remaining: int | None = None
    fraction: float = 0.0
    retry_after: int = 1
    seconds: float = 5.0
    rng: random.Random = field(default_factory=random.Random)

    def fires(self) -> bool:
        """Count-based rules fail the next N calls; fraction rules draw from their own seeded RNG."""
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True
        return self.rng.random() < self.fraction

    def fault(self) -> Fault:
        outcome = self.outcomes[0] if len(self.outcomes) == 1 else self.rng.choice(self.outcomes)
        return Fault(outcome, self.retry_after, self.seconds)

    def describe(self) -> dict:
        return {
            "endpoint": self.endpoint,
            "outcomes": self.outcomes,
            "remaining": self.remaining,
            "fraction": self.fraction,
            "retry_after": self.retry_after,
            "seconds": self.seconds,
        }


class FaultInjector:
    """Rules, outages, latency and per-endpoint call counts for one simulator (thread-safe)."""

    def __init__(self, *, allow_codes: bool = True, sleep=time.sleep, clock=time.time):
        self.allow_codes = allow_codes
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._down: dict[str, float] = {}
        self._latency: dict[str, int] = {}
        self._calls: Counter = Counter()

    # -- configuration ------------------------------------------------------------------

    def fail_next(
        self, endpoint: str, n: int, outcome="http500", *, retry_after: int = 1, seconds: float = 5.0
    ) -> None:
        rule = Rule(
            endpoint, [self._outcome(outcome)], remaining=int(n), retry_after=int(retry_after), seconds=float(seconds)
        )
        with self._lock:
            self._rules.append(rule)

    def fail_fraction(
        self,
        endpoint: str,
        p: float,
        outcomes=("http500",),
        *,
        seed: int = 0,
        retry_after: int = 1,
        seconds: float = 5.0,
    ) -> None:
        if not 0.0 <= float(p) <= 1.0 or not outcomes:
            raise ValueError("fraction must be within 0..1 and outcomes must not be empty")
        rule = Rule(
            endpoint,
            [self._outcome(o) for o in outcomes],
            fraction=float(p),
            retry_after=int(retry_after),
            seconds=float(seconds),
            rng=random.Random(seed),
        )
        with self._lock:
            self._rules.append(rule)

    def down_until(self, endpoint: str, epoch: float) -> None:
        with self._lock:
            self._down[endpoint] = float(epoch)

    def latency(self, endpoint: str, ms: int) -> None:
        with self._lock:
            self._latency[endpoint] = int(ms)

    def clear(self, endpoint: str | None = None) -> None:
        """Drop every rule (or those of one endpoint); call counts are kept."""
        with self._lock:
            if endpoint is None:
                self._rules, self._down, self._latency = [], {}, {}
                return
            self._rules = [r for r in self._rules if r.endpoint != endpoint]
            self._down.pop(endpoint, None)
            self._latency.pop(endpoint, None)

    def reset(self) -> None:
        self.clear()
        with self._lock:
            self._calls.clear()

    def configure(self, spec: dict) -> None:
        """Apply one rule in the JSON form described in the module docstring."""
        unknown = set(spec) - RULE_KEYS
        if unknown:
            raise ValueError(f"unknown rule keys: {sorted(unknown)}")
        endpoint = str(spec.get("endpoint", ANY))
        opts = {k: spec[k] for k in ("retry_after", "seconds") if k in spec}
        if "latency_ms" in spec:
            self.latency(endpoint, spec["latency_ms"])
        if "down_until" in spec:
            self.down_until(endpoint, spec["down_until"])
        if "next" in spec:
            self.fail_next(endpoint, spec["next"], spec.get("outcome", "http500"), **opts)
        if "fraction" in spec:
            outcomes = spec.get("outcomes") or [spec.get("outcome", "http500")]
            self.fail_fraction(endpoint, spec["fraction"], outcomes, seed=int(spec.get("seed", 0)), **opts)

    def _outcome(self, outcome):
        """Normalise `"-32"`/`-32` to an int code and check names, so typos fail loudly."""
        text = str(outcome).strip()
        if text.isdigit():
            text = "http" + text  # a bare status such as 503
        if text.lstrip("-").isdigit() and text.startswith("-"):
            if not self.allow_codes:
                raise ValueError("this partner has no negative error codes; use httpNNN")
            return int(text)
        if text in ("timeout", "slow") or (
            text.startswith("http") and text[4:].isdigit() and 100 <= int(text[4:]) <= 599
        ):
            return text
        raise ValueError(f"unknown outcome {outcome!r}")

    # -- per call -----------------------------------------------------------------------

    def check(self, endpoint: str) -> Fault | None:
        """Count the call, apply latency and return the fault to answer with, if any.

        Sleeping happens outside the lock so a slow or timing-out call never blocks others.
        """
        with self._lock:
            self._calls[endpoint] += 1
            delay = self._latency.get(endpoint, self._latency.get(ANY, 0)) / 1000.0
            fault = self._pick(endpoint)
        if delay:
            self._sleep(delay)
        if fault is not None and fault.outcome in ("timeout", "slow"):
            self._sleep(fault.seconds)
            return None if fault.outcome == "slow" else fault
        return fault

    def _pick(self, endpoint: str) -> Fault | None:
        until = max(self._down.get(endpoint, 0.0), self._down.get(ANY, 0.0))
        if self._clock() < until:
            return Fault("down")
        for rule in self._rules:
            if rule.endpoint in (endpoint, ANY) and rule.fires():
                return rule.fault()
        return None

    def calls(self, endpoint: str | None = None):
        """Calls seen by one endpoint, or a dict of all counts."""
        with self._lock:
            return self._calls[endpoint] if endpoint else dict(self._calls)

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "rules": [r.describe() for r in self._rules],
                "down_until": dict(self._down),
                "latency_ms": dict(self._latency),
                "calls": dict(self._calls),
            }


def render(fault: Fault, body) -> object:
    """A Flask response for `fault`; `body` is the partner's error document (dict or text)."""
    resp = make_response(jsonify(body) if isinstance(body, dict) else body, fault.status)
    if fault.status == 429:
        resp.headers["Retry-After"] = str(fault.retry_after)
    return resp


def run_action(actions: dict, name: str, kwargs: dict | None = None):
    """POST /_sim/actions/<name>: call a simulator method with the JSON body (or `kwargs`) as
    keyword args."""
    kwargs = (request.get_json(silent=True) or {}) if kwargs is None else kwargs
    if name not in actions or not isinstance(kwargs, dict):
        return jsonify({"error": f"unknown action {name!r}", "actions": sorted(actions)}), 404
    try:
        result = actions[name](**kwargs)
    except (TypeError, KeyError, ValueError) as exc:
        return jsonify({"error": str(exc)}), 400
    return jsonify(result.summary() if isinstance(result, SentWebhook) else {"ok": True, "result": result})


def add_routes(app: Flask, sim, rules: list[tuple]) -> None:
    """Register a simulator's partner routes plus the controls every simulator has."""
    controls = [
        ("/_sim/state", "sim_state", lambda: jsonify(sim.state()), "GET"),
        ("/_sim/reset", "sim_reset", sim._http_reset, "POST"),
        ("/_sim/actions/<name>", "sim_action", sim._http_action, "POST"),
    ]
    for path, endpoint, view, method in rules + controls:
        app.add_url_rule(path, endpoint, view, methods=[method])


def install(app: Flask, injector, body_for) -> None:
    """Check faults before every partner route of `app`; `/_sim` routes are never faulted.

    `injector` is a FaultInjector, or a function giving the one that applies to the current
    request (Zalo's rules are per app)."""
    injector_for = injector if callable(injector) else lambda: injector

    @app.before_request
    def _inject_faults():
        name = request.endpoint
        if not name or name.startswith("sim_") or name == "static":
            return None
        fault = injector_for().check(name)
        return render(fault, body_for(fault)) if fault else None

    @app.get("/_sim/faults", endpoint="sim_faults_get")
    def _get_faults():
        return jsonify(injector_for().snapshot())

    @app.post("/_sim/faults", endpoint="sim_faults_post")
    def _post_faults():
        return _configure_from_json(injector_for(), request.get_json(silent=True))

    @app.delete("/_sim/faults", endpoint="sim_faults_delete")
    def _delete_faults():
        found = injector_for()
        found.clear(request.args.get("endpoint") or None)
        return jsonify(found.snapshot())


def _configure_from_json(injector: FaultInjector, spec):
    rules = spec.get("rules") if isinstance(spec, dict) and "rules" in spec else [spec]
    try:
        for rule in rules:
            if not isinstance(rule, dict):
                raise ValueError("a rule is a JSON object")
            injector.configure(rule)
    except (ValueError, TypeError) as exc:
        return jsonify({"error": str(exc)}), 400
    return jsonify(injector.snapshot())


# -- webhook delivery shared by both simulators ------------------------------------------


class SentWebhook(dict):
    """The event that was sent (compares equal to it), with the exact bytes and the answers.

    `sent["statuses"]` and `sent["event"]` also work (no partner event has those top-level
    keys), so callers can treat the result as `{"event": ..., "statuses": [...]}` too.
    """

    def __init__(self, event: dict, raw: bytes, headers: list[dict], statuses: list):
        super().__init__(event)
        self.raw = raw
        self.headers = headers
        self.statuses = statuses

    def __missing__(self, key):
        if key == "statuses":
            return self.statuses
        if key == "event":
            return dict(self)
        raise KeyError(key)

    def summary(self) -> dict:
        return {"event": dict(self), "statuses": self.statuses}


def serialise(event: dict) -> bytes:
    """Serialise once: the signature covers these exact bytes (UTF-8, not ASCII-escaped)."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def post_webhook(url: str, raw: bytes, headers_for, times: int) -> tuple[list[dict], list]:
    """POST `raw` `times` times; `headers_for(i)` gives attempt i's headers. A refused
    connection is recorded as status None instead of raising, so a demo survives a down bridge."""
    sent, statuses = [], []
    with requests.Session() as session:
        # The bridge's address is given: no proxy settings read from os.environ, which the
        # simulators' echo thread would iterate while pytest sets PYTEST_CURRENT_TEST (a KeyError
        # that lost the echo).
        session.trust_env = False
        for attempt in range(max(1, int(times))):
            headers = headers_for(attempt)
            sent.append(headers)
            try:
                statuses.append(session.post(url, data=raw, headers=headers, timeout=WEBHOOK_TIMEOUT).status_code)
            except requests.RequestException:
                statuses.append(None)
    return sent, statuses
