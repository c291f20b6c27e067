"""Fuzzing both webhooks with hypothesis: events from the fixtures, mutated, signed or not.

Whatever arrives: no answer is a 5xx; nothing is queued unless the event is signed and valid;
and every item that is queued is processed by the real worker code (lanes in the real Redis,
Zalo and FreshChat mocked) without an exception the worker does not expect.

Bounded: a fixed number of examples, derandomized (the same inputs on every run, so the
suite is never flaky), no deadline; the whole file runs in well under a minute.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests_mock
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app import create_app
from app.bridge.keys import DUE
from app.errors import PermanentError, RetryableError
from sandbox.helpers import FC_API, FIXTURES, PNG, ZALO_API, fc_headers, partners_answer_probes, zalo_headers
from workers.drain import Drainer, handlers

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ZALO_FIXTURES = sorted(FIXTURES.glob("zalo/webhooks/*.json"))
FC_FIXTURES = sorted(FIXTURES.glob("freshchat/webhooks/*.json"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def paths(value, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from paths(child, (*prefix, key))


@st.composite
def mutated(draw, files) -> dict:
    """A fixture with up to three of its values replaced by arbitrary JSON, or removed."""
    event = json.loads(draw(st.sampled_from(files)).read_text())
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from([p for p in paths(event) if p]))
        parent = event
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return event


def fresh(event: dict, provider: str) -> dict:
    """A signed time inside the replay window, unless the mutation replaced it."""
    if provider == "zalo" and isinstance(event.get("timestamp"), str) and event["timestamp"].isdigit():
        event["timestamp"] = str(int(time.time() * 1000))
    if provider == "freshchat" and isinstance(event.get("action_time"), str) and event["action_time"][:2] == "20":
        event["action_time"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return event


@pytest.fixture
def bridge(settings, redis, ctx, public_dns):
    """The web app, and a worker over the same Redis with every partner answering success."""
    app = create_app(settings).test_client()
    with requests_mock.Mocker() as m:
        partners_answer_probes(m)
        m.get(re.compile(r"https?://(?!openapi\.zalo\.me|acme\.freshchat\.com).*"), content=PNG)  # media
        m.get(f"{ZALO_API}/v3.0/oa/user/detail", json={"error": 0, "data": {"display_name": "Fuzz"}})
        m.post(re.compile(f"{ZALO_API}/v2.0/oa/upload/.*"), json={"error": 0, "data": {"attachment_id": "a1"}})
        m.post(f"{ZALO_API}/v3.0/oa/message/cs", json={"error": 0, "data": {"message_id": "z1"}})
        m.get(f"{FC_API}/users", json={"users": []})
        m.get(re.compile(f"{FC_API}/users/.*"), json={"id": "u1", "reference_id": "zalo:246845883529197922"})
        m.post(f"{FC_API}/users", json={"id": "u1"})
        m.put(re.compile(f"{FC_API}/users/.*"), text="")  # a shared form, a property update
        m.post(f"{FC_API}/conversations", json={"conversation_id": "c1", "messages": [{"id": "f0"}]})
        m.post(re.compile(f"{FC_API}/conversations/.*/messages"), json={"id": "f1"})
        m.put(re.compile(f"{FC_API}/conversations/.*"), json={})
        yield app, redis, ctx


def post(app, provider: str, event: dict, signed: bool):
    raw = json.dumps(event, ensure_ascii=False).encode()
    if provider == "zalo":
        headers = zalo_headers(raw, event) if signed and "timestamp" in event else {"X-ZEvent-Signature": "mac=0"}
    else:
        headers = fc_headers(raw) if signed else {"X-Freshchat-Signature": "AAAA"}
    return app.post(f"/webhooks/{provider}", data=raw, headers={**headers, "Content-Type": "application/json"})


def drain_everything(ctx, redis) -> list[str]:
    """Process every queued item with the real handlers; the exceptions they did not expect."""
    real, unexpected = handlers(), []

    def watched(kind):
        def run(ctx_, item, progress):
            try:
                real[kind](ctx_, item, progress)
            except (RetryableError, PermanentError):
                raise
            except Exception as exc:
                unexpected.append(f"{type(exc).__name__}: {exc} in {json.dumps(item.payload)[:300]}")
                raise

        return run

    drainer = Drainer(ctx, {kind: watched(kind) for kind in real})
    for lane in [m.decode() for m in redis.zrange(DUE, 0, -1)]:
        drainer.drain(lane)
    return unexpected


def check(bridge, provider: str, payload: dict, signed: bool) -> None:
    app, redis, ctx = bridge
    redis.flushall()
    resp = post(app, provider, fresh(payload, provider), signed)
    assert resp.status_code < 500, resp.get_data(as_text=True)
    queued = redis.zcard(DUE)
    event(f"{resp.status_code} {'queued' if queued else 'not queued'}")  # --hypothesis-show-statistics
    if resp.status_code != 200 or not signed:
        assert queued == 0, f"{resp.status_code} but queued"
    assert drain_everything(ctx, redis) == []


@FUZZ
@given(event=mutated(ZALO_FIXTURES), signed=st.booleans())
def test_zalo_webhook_survives_mutated_events(bridge, event, signed):
    check(bridge, "zalo", event, signed)


@FUZZ
@given(event=mutated(FC_FIXTURES), signed=st.booleans())
def test_freshchat_webhook_survives_mutated_events(bridge, event, signed):
    check(bridge, "freshchat", event, signed)


@settings(FUZZ, max_examples=60)
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
@pytest.mark.parametrize("provider", ["zalo", "freshchat"])
def test_arbitrary_bodies_are_never_a_5xx(client, provider, body):
    resp = client.post(f"/webhooks/{provider}", data=body, headers={"Content-Type": "application/json"})
    assert resp.status_code < 500
