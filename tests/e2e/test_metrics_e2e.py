"""GET /metrics with real processes: two gunicorn processes answer the webhooks, a worker
process relays them, and one scrape (whichever process takes it) adds everything up."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from sandbox.procs import wait_until

TOKEN = "e2e-metrics-token-long-enough-0123"


def scrape(bridge) -> dict[tuple[str, frozenset], float]:
    resp = requests.get(bridge.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    resp.raise_for_status()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def test_two_web_processes_and_a_worker_add_up(make_bridge, sims, tmp_path):
    _, zalo, fc = sims
    base = tmp_path / "metrics"
    bridge = make_bridge(workers=1, METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(base), WEB_CONCURRENCY="2")
    hook = bridge.url + "/webhooks/zalo"
    sent = 0

    def both_web_processes_counted() -> bool:
        nonlocal sent
        assert zalo.send_text(hook, f"5151{sent:012d}", f"tin {sent}")["statuses"] == [200]
        sent += 1
        return sent >= 6 and len(list(base.glob("*/counter_*.db"))) == 2  # one file per process

    wait_until(both_web_processes_counted, timeout=20, interval=0, what="webhooks answered by both processes")
    webhooks = ("bridge_webhooks_total", frozenset({"connection": "default", "direction": "in", "code": "200"}.items()))
    relayed = ("bridge_messages_relayed_total", frozenset({"connection": "default", "direction": "in"}.items()))
    wait_until(lambda: scrape(bridge).get(relayed) == sent, timeout=20, what="every message relayed")
    for _ in range(4):  # each scrape may be taken by either process: all see the same sums
        got = scrape(bridge)
        assert (got[webhooks], got[relayed]) == (sent, sent)
    count = ("bridge_relay_latency_seconds_count", frozenset({"connection": "default", "direction": "in"}.items()))
    assert got[count] == sent


def test_a_web_host_without_a_metrics_directory_still_counts_its_webhooks(make_bridge, sims):
    """PROMETHEUS_MULTIPROC_DIR unset (the default): gunicorn's master makes the directory, and
    its processes count into it, not each in its own memory."""
    _, zalo, _ = sims
    bridge = make_bridge(workers=1, METRICS_TOKEN=TOKEN)
    for i in range(3):
        zalo.send_text(bridge.url + "/webhooks/zalo", f"5252{i:012d}", f"tin {i}")
    webhooks = ("bridge_webhooks_total", frozenset({"connection": "default", "direction": "in", "code": "200"}.items()))
    assert scrape(bridge).get(webhooks) == 3
