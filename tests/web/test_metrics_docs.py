"""docs/grafana-dashboard.json and docs/alerts.yml parse, and name only series /metrics has."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.web.test_metrics import AUTH, settings  # noqa: F401 - the fixture with METRICS_TOKEN set

DOCS = Path(__file__).resolve().parents[2] / "docs"
SERIES = re.compile(r"\bbridge_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
ALERTS = {
    "BridgeZaloTokenDead",
    "BridgeZaloTokenExpiring",
    "BridgeDeadLettersRising",
    "BridgeQueueAgeHigh",
    "BridgeNoWebhooks",
    "BridgeWebhooks5xx",
    "BridgeRedisReplicasShort",
}


@pytest.fixture
def exposed(client) -> set[str]:
    """Every series name /metrics declares (a family without samples yet still declares it)."""
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    return {f.name + suffix for f in text_string_to_metric_families(text) for suffix in SUFFIXES[f.type]}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    return exprs + [v["query"]["query"] for v in dashboard["templating"]["list"]]


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load((DOCS / "alerts.yml").read_text())["groups"] for rule in group["rules"]]


def test_the_alert_rules_cover_what_an_operator_must_hear_about():
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= ALERTS
    assert all(r["expr"] and r["labels"]["severity"] in ("warning", "critical") for r in rules)


def test_every_series_the_dashboard_and_the_alerts_name_is_exposed(exposed):
    named = {name for expr in dashboard_exprs() + [r["expr"] for r in alert_rules()] for name in SERIES.findall(expr)}
    assert len(named) >= 15
    assert named - exposed == set()


def test_the_dashboard_shows_every_family(exposed):
    shown = {name for expr in dashboard_exprs() for name in SERIES.findall(expr)}
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in exposed}
    assert families - {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in shown} == set()
