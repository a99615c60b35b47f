"""Alert rules, the dashboard and the metric catalogue, kept as plain files and read from here.

Operators edit YAML/JSON that promtool and Grafana understand; the platform component ships them
as PrometheusRules and a dashboard ConfigMap, and tests check them. No pulumi import.
"""
from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

HERE = Path(__file__).resolve().parent
RULES = HERE / "rules"
DASHBOARDS = HERE / "dashboards"
RUNBOOKS = HERE / "runbooks.md"
RUNBOOK_TOKEN = "@RUNBOOKS@"
REGION_TOKEN = "@REGION@"


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def rule_files() -> dict[str, dict[str, Any]]:
    """Rule file stem -> its `groups:` document, exactly as promtool would read it."""
    return {path.stem: _yaml(path) for path in sorted(RULES.glob("*.yaml"))}


def rules_with_runbooks(document: dict[str, Any], runbook_base: str) -> dict[str, Any]:
    """The document with each runbook link pointing into the runbook page the stack publishes."""
    text = json.dumps(document).replace(RUNBOOK_TOKEN, runbook_base.rstrip("#"))
    return json.loads(text)


def dashboards() -> dict[str, dict[str, Any]]:
    """Dashboard file name -> parsed Grafana dashboard JSON."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def cloudwatch_exporter_config(region: str) -> str:
    """The exporter's config file text for one region."""
    return (HERE / "cloudwatch-exporter.yaml").read_text().replace(REGION_TOKEN, region)


def _snake(name: str) -> str:
    """CloudWatch exporter's camel-to-snake conversion (ProbeLatency -> probe_latency)."""
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def cloudwatch_metrics() -> set[str]:
    """Prometheus names the CloudWatch exporter produces: <namespace>_<metric>_<statistic>, snake case."""
    config = _yaml(HERE / "cloudwatch-exporter.yaml")
    names: set[str] = set()
    for metric in config["metrics"]:
        base = re.sub(r"[^a-zA-Z0-9_]", "_", f"{metric['aws_namespace'].lower()}_{_snake(metric['aws_metric_name'])}")
        names.update(f"{base}_{statistic.lower()}" for statistic in metric["aws_statistics"])
    return names


@cache
def exported_metrics() -> frozenset[str]:
    """Every raw metric rules and dashboards may use: the catalogue plus the CloudWatch exporter's."""
    catalogue = _yaml(HERE / "metrics.yaml")
    return frozenset({name for names in catalogue.values() for name in names} | cloudwatch_metrics())


def recording_rules() -> set[str]:
    return {rule["record"] for document in rule_files().values() for group in document["groups"]
            for rule in group["rules"] if "record" in rule}


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of the runbook page's headings."""
    anchors = set()
    for line in RUNBOOKS.read_text().splitlines():
        if line.startswith("## "):
            anchors.add(re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-"))
    return anchors
