"""Alert rules and the Grafana dashboard in infra/observability: they parse, they are actionable, and
they only query metrics something actually exports (a typo fails here, not silently in production)."""
from __future__ import annotations

import re

import promql_parser
import pytest

from infra import observability as files

SEVERITIES = {"critical", "warning", "info"}
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")


def metric_names(expr: str) -> set[str]:
    """Every metric a PromQL expression selects (raises ValueError when it does not parse or type-check)."""
    nodes: list = []
    promql_parser.walk(promql_parser.parse(expr), pre_visit=nodes.append)
    return {node.name for node in nodes if isinstance(node, promql_parser.VectorSelector) and node.name}


def all_rules() -> list[tuple[str, str, dict]]:
    return [(stem, group["name"], rule) for stem, document in files.rule_files().items()
            for group in document["groups"] for rule in group["rules"]]


def alerts() -> list[dict]:
    return [rule for _, _, rule in all_rules() if "alert" in rule]


def dashboard_exprs() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for dashboard in files.dashboards().values()
            for panel in dashboard["panels"] for target in panel.get("targets", [])]


def known_metrics() -> set[str]:
    return set(files.exported_metrics()) | files.recording_rules()


def test_rule_files_exist_and_are_prometheus_rule_documents():
    documents = files.rule_files()
    assert {"api-slo", "platform"} <= set(documents)
    for stem, document in documents.items():
        assert set(document) == {"groups"}, stem
        names = [group["name"] for group in document["groups"]]
        assert len(names) == len(set(names)), f"{stem}: duplicate group names"
        for group in document["groups"]:
            assert group["rules"], f"{stem}/{group['name']} is empty"


@pytest.mark.parametrize("stem,group,rule", all_rules(), ids=lambda value: value.get("alert") or value.get("record")
                         if isinstance(value, dict) else value)
def test_every_rule_expression_parses(stem, group, rule):
    metric_names(rule["expr"])


def test_rules_use_only_fields_prometheus_knows():
    """A misspelt key (`annotation:`, `label:`) is silently ignored by Prometheus; refuse it here."""
    allowed = {"record": {"record", "expr", "labels"},
               "alert": {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}}
    for stem, group, rule in all_rules():
        kind = "alert" if "alert" in rule else "record"
        assert set(rule) <= allowed[kind], f"{stem}/{group}: unknown keys {set(rule) - allowed[kind]}"
        for key in ("for", "keep_firing_for"):
            if key in rule:
                promql_parser.parse_duration(rule[key])
    for document in files.rule_files().values():
        for group in document["groups"]:
            assert set(group) <= {"name", "interval", "rules", "limit"}, group["name"]
            if "interval" in group:
                promql_parser.parse_duration(group["interval"])


def test_parser_rejects_broken_promql():
    """The check above can fail: unbalanced parentheses and type errors are caught."""
    with pytest.raises(ValueError):
        metric_names("sum(rate(http_requests_total[5m])")
    with pytest.raises(ValueError):
        metric_names("histogram_quantile(0.95, http_request_duration_seconds_bucket[5m])")


def test_every_alert_is_actionable():
    anchors = files.runbook_anchors()
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alerts():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity missing or unknown"
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), f"{name}: no summary"
        runbook = annotations.get("runbook_url", "")
        assert runbook.startswith(f"{files.RUNBOOK_TOKEN}#"), f"{name}: runbook_url must be {files.RUNBOOK_TOKEN}#anchor"
        assert runbook.split("#", 1)[1] in anchors, f"{name}: runbooks.md has no section for {runbook}"


def test_recording_rules_follow_naming_convention_and_are_unique():
    records = [rule["record"] for _, _, rule in all_rules() if "record" in rule]
    assert len(records) == len(set(records))
    for record in records:
        assert RECORD_NAME.match(record), f"{record} is not level:metric:operations"


def test_rules_query_only_exported_or_recorded_metrics():
    known = known_metrics()
    for _, _, rule in all_rules():
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('alert') or rule.get('record')} queries {unknown}, which nothing exports"


def test_metric_check_catches_a_typo():
    assert metric_names('rate(http_request_total{job="api"}[5m])') - known_metrics() == {"http_request_total"}


def test_api_slos_have_multiwindow_burn_rate_alerts():
    """Availability 99.5 % (budget 0.005) and latency 95 % < 500 ms (budget 0.05), fast and slow burns."""
    by_name = {rule["alert"]: rule for rule in alerts()}
    windows = {"5m", "30m", "1h", "2h", "6h", "1d", "3d"}
    for slo, ratio, budget in (("Availability", "slo:api_errors", "0.005"),
                               ("Latency", "slo:api_slow_requests", "0.05")):
        fast, slow = by_name[f"API{slo}BudgetBurnFast"], by_name[f"API{slo}BudgetBurnSlow"]
        assert fast["labels"]["severity"] == "critical" and slow["labels"]["severity"] == "warning"
        for rule, pairs in ((fast, [("14.4", "1h", "5m"), ("6", "6h", "30m")]),
                            (slow, [("3", "1d", "2h"), ("1", "3d", "6h")])):
            expr = " ".join(rule["expr"].split())
            for factor, long, short in pairs:
                assert f"{ratio}:ratio_rate{long} > ({factor} * {budget}) and {ratio}:ratio_rate{short}" in expr
    recorded = files.recording_rules()
    for ratio in ("slo:api_errors", "slo:api_slow_requests"):
        assert {f"{ratio}:ratio_rate{window}" for window in windows} <= recorded
    latency = next(rule for _, _, rule in all_rules() if rule.get("record") == "slo:api_slow_requests:ratio_rate5m")
    assert 'le="0.5"' in latency["expr"]


def test_required_platform_alerts_exist():
    names = {rule["alert"] for rule in alerts()}
    assert {"DeploymentRolloutFailed", "PodCrashLooping", "PersistentVolumeFillingUp", "NodeGroupAtMaxSize",
            "NATFailover", "NATNoHealthyInstance"} <= names
    crash = next(rule for rule in alerts() if rule["alert"] == "PodCrashLooping")
    assert 'reason="CrashLoopBackOff"' in crash["expr"]


def test_cloudwatch_exporter_names_follow_the_exporter_convention():
    assert {"eksplatform_nat_failovers_sum", "eksplatform_nat_healthy_instances_minimum",
            "eksplatform_nat_probe_latency_average"} <= files.cloudwatch_metrics()
    from ruamel.yaml import YAML

    assert YAML(typ="safe").load(files.cloudwatch_exporter_config("eu-west-1"))["region"] == "eu-west-1"


def test_dashboard_is_valid_grafana_json():
    dashboards = files.dashboards()
    assert "platform-overview.json" in dashboards
    for name, dashboard in dashboards.items():
        assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 30, name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        variables = {variable["name"] for variable in dashboard["templating"]["list"]}
        for panel in dashboard["panels"]:
            assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
            assert panel["targets"], f"{panel['title']} has no query"
            uid = panel["datasource"]["uid"]
            assert uid.startswith("${") and uid[2:-1] in variables, f"{panel['title']}: unknown datasource {uid}"
            refs = [target["refId"] for target in panel["targets"]]
            assert len(refs) == len(set(refs))
        cells = set()
        for panel in dashboard["panels"]:
            box = panel["gridPos"]
            assert box["x"] + box["w"] <= 24, f"{panel['title']} is wider than the 24-column grid"
            area = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
            assert not cells & area, f"{panel['title']} overlaps another panel"
            cells |= area


@pytest.mark.parametrize("title,expr", dashboard_exprs(), ids=[title for title, _ in dashboard_exprs()])
def test_dashboard_queries_parse_and_use_known_metrics(title, expr):
    unknown = metric_names(expr) - known_metrics()
    assert not unknown, f"panel {title!r} queries {unknown}, which neither an exporter nor a rule provides"


def test_runbook_links_resolve_against_the_configured_page():
    document = files.rule_files()["platform"]
    shipped = files.rules_with_runbooks(document, "https://example.com/runbooks.md")
    urls = [rule["annotations"]["runbook_url"] for group in shipped["groups"] for rule in group["rules"]
            if "alert" in rule]
    assert urls and all(url.startswith("https://example.com/runbooks.md#") for url in urls)
    assert files.RUNBOOK_TOKEN not in str(shipped)
