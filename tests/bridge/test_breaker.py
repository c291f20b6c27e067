"""The partner-wide circuit breaker on a real Redis: who probes, what opens it, what closes it."""

from __future__ import annotations

from app.bridge import breaker as breaker_mod
from app.bridge.breaker import Breaker
from app.bridge.keys import DEFAULT_KEYS
from app.errors import PermanentError, RetryableError


class Probe:
    def __init__(self, exc: Exception | None = None):
        self.exc, self.calls = exc, 0

    def __call__(self):
        self.calls += 1
        if self.exc:
            raise self.exc


def test_a_recent_success_means_up_without_probing(redis):
    probe = Probe(RetryableError("down"))
    b = Breaker(redis, "zalo", probe)
    b.mark_ok()
    assert not b.partner_down() and probe.calls == 0


def test_a_failed_probe_opens_it_for_everyone_and_only_one_process_probes(redis):
    probe = Probe(RetryableError("HTTP 503"))
    first, second = Breaker(redis, "zalo", probe), Breaker(redis, "zalo", probe)
    assert first.partner_down() and probe.calls == 1
    assert second.partner_down() and probe.calls == 1  # the open verdict is shared
    assert 0 < second.open_for() <= breaker_mod.OPEN_SECONDS
    assert Breaker(redis, "freshchat", Probe()).open_for() == 0  # per partner


def test_a_probe_that_answers_closes_it_even_with_a_refusal(redis):
    assert not Breaker(redis, "zalo", Probe()).partner_down()
    redis.flushall()
    refusing = Probe(PermanentError("Zalo error -209"))  # reachable: the item's failure is its own
    assert not Breaker(redis, "zalo", refusing).partner_down()
    assert redis.exists(DEFAULT_KEYS.breaker_ok("zalo"))


def test_while_another_process_probes_nobody_spends_budget(redis):
    redis.set(DEFAULT_KEYS.breaker_probing("zalo"), "1", px=5000)
    probe = Probe()
    assert Breaker(redis, "zalo", probe).partner_down() and probe.calls == 0


def test_mark_ok_writes_at_most_once_a_second_per_process(redis, monkeypatch):
    b = Breaker(redis, "zalo", Probe())
    b.mark_ok()
    redis.delete(DEFAULT_KEYS.breaker_ok("zalo"))
    b.mark_ok()
    assert not redis.exists(DEFAULT_KEYS.breaker_ok("zalo"))
    monkeypatch.setattr(breaker_mod, "MARK_OK_EVERY", 0.0)
    b.mark_ok()
    assert redis.exists(DEFAULT_KEYS.breaker_ok("zalo"))
