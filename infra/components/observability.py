"""Metrics, alerts and the dashboard: kube-prometheus-stack plus the repo's rules and dashboard files.

The rule and dashboard files under infra/observability are the source of truth (editable, testable with
a PromQL parser); this component only ships them. NAT metrics come from CloudWatch through the exporter.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import observability as files
from infra.charts import PROMETHEUS_STACK_NAME
from infra.components.addons import install_chart, irsa_annotation, service_account_role
from infra.config import StackConfig

CLOUDWATCH_SERVICE_ACCOUNT = "cloudwatch-exporter"
RULE_LABELS = {"app.kubernetes.io/part-of": "eks-platform"}
# Scrape targets among the example services: api serves /metrics on its Service; worker on its health
# port (no Service); the scheduler's CronJob runs are watched through kube-state-metrics instead.
SERVICE_MONITORS = {"api": "http"}
POD_MONITORS = {"worker": "health"}
# Node labels kube-state-metrics exports, so dashboards can group nodes by AZ and node group.
NODE_LABELS = "nodes=[topology.kubernetes.io/zone,eks.amazonaws.com/nodegroup,pool,generation]"


@dataclass(frozen=True)
class ObservabilityArgs:
    config: StackConfig
    namespace: str
    app_namespaces: list[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    priority_class: str
    tags: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)


def alertmanager_config(slack_secret: str | None) -> dict:
    """Critical alerts repeat hourly, warnings every 4 h; a critical alert silences its own warning twin.

    With a Slack webhook Secret every alert goes there (the URL is read from the mounted Secret, so it
    never sits in Helm values or Pulumi state); without one, alerts stay in Alertmanager's UI.
    """
    receiver = "slack" if slack_secret else "null"
    receivers: list[dict] = [{"name": "null"}]
    if slack_secret:
        receivers.append({"name": "slack", "slack_configs": [{
            "api_url_file": f"/etc/alertmanager/secrets/{slack_secret}/url", "send_resolved": True,
            "title": '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} ({{ .CommonLabels.severity }})',
            "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ .Annotations.runbook_url }}\n{{ end }}"}]})
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {"receiver": receiver, "group_by": ["alertname", "namespace"], "group_wait": "30s",
                  "group_interval": "5m", "repeat_interval": "4h", "routes": [
                      # kube-prometheus-stack's always-firing heartbeat and its inhibition helper
                      {"receiver": "null", "matchers": ['alertname = "Watchdog"']},
                      {"receiver": "null", "matchers": ['alertname = "InfoInhibitor"']},
                      {"receiver": receiver, "matchers": ['severity = "critical"'], "repeat_interval": "1h"}]},
        "inhibit_rules": [{"source_matchers": ['severity = "critical"'],
                           "target_matchers": ['severity =~ "warning|info"'], "equal": ["namespace", "alertname"]}],
        "receivers": receivers,
    }


def _volume(gib: int) -> dict:
    return {"volumeClaimTemplate": {"spec": {"storageClassName": "gp3", "accessModes": ["ReadWriteOnce"],
                                             "resources": {"requests": {"storage": f"{gib}Gi"}}}}}


class Observability(pulumi.ComponentResource):
    """Prometheus, Alertmanager and Grafana sized from config, with the platform's rules and dashboard."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:platform:Observability", name, None, opts)
        self.args = args
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self, depends_on=args.depends_on)
        self.stack = install_chart(f"{name}-kube-prometheus-stack", "kube-prometheus-stack", cfg.platform.charts,
                                   self._stack_values(), child, namespace=args.namespace)
        # Custom resources need the chart's CRDs first.
        after_stack = pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, self.stack])
        self.rules = [self._rule(name, stem, document, after_stack) for stem, document in files.rule_files().items()]
        self._monitors(name, after_stack)
        self.dashboards = [
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{file_name.removesuffix('.json')}",
                metadata={"name": f"dashboard-{file_name.removesuffix('.json')}", "namespace": args.namespace,
                          "labels": {"grafana_dashboard": "1", **RULE_LABELS}},
                data={file_name: json.dumps(dashboard, indent=1)}, opts=child)
            for file_name, dashboard in files.dashboards().items()]
        self.cloudwatch_exporter = self._cloudwatch_exporter(name, child)
        self.register_outputs({})

    def _stack_values(self) -> dict:
        monitoring = self.args.config.platform.monitoring
        priority = self.args.priority_class
        return {
            "fullnameOverride": PROMETHEUS_STACK_NAME,
            "crds": {"enabled": True},
            "defaultRules": {"create": True},
            # The EKS control plane's scheduler, controller-manager and etcd are not scrapable.
            "kubeControllerManager": {"enabled": False}, "kubeScheduler": {"enabled": False},
            "kubeEtcd": {"enabled": False}, "kubeProxy": {"enabled": False},
            "prometheus": {"prometheusSpec": {
                "retention": monitoring.retention,
                "retentionSize": monitoring.retention_size,
                "replicas": monitoring.prometheus_replicas,
                "priorityClassName": priority,
                "storageSpec": _volume(monitoring.storage_gib),
                # Pick up every PrometheusRule / ServiceMonitor / PodMonitor, not only this release's.
                "ruleSelectorNilUsesHelmValues": False,
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
            }},
            "alertmanager": {
                "alertmanagerSpec": {"priorityClassName": priority,
                                     "storage": _volume(monitoring.alertmanager_storage_gib),
                                     "secrets": [monitoring.slack_webhook_secret] if monitoring.slack_webhook_secret
                                     else []},
                "config": alertmanager_config(monitoring.slack_webhook_secret),
            },
            "grafana": {
                # Empty: the chart generates a random admin password into its Secret (never the default).
                "adminPassword": "",
                "priorityClassName": priority,
                "persistence": {"enabled": True, "type": "pvc", "storageClassName": "gp3",
                                "size": f"{monitoring.grafana_storage_gib}Gi"},
                "sidecar": {"dashboards": {"enabled": True, "label": "grafana_dashboard", "labelValue": "1",
                                           "searchNamespace": "ALL"}},
                "defaultDashboardsTimezone": "utc",
            },
            "kube-state-metrics": {"metricLabelsAllowlist": [NODE_LABELS], "priorityClassName": priority},
            "prometheus-node-exporter": {"priorityClassName": "system-node-critical"},
        }

    def _rule(self, name: str, stem: str, document: dict, opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
        runbooks = self.args.config.platform.monitoring.runbook_url
        return k8s.apiextensions.CustomResource(
            f"{name}-rules-{stem}", api_version="monitoring.coreos.com/v1", kind="PrometheusRule",
            metadata={"name": stem, "namespace": self.args.namespace, "labels": RULE_LABELS},
            spec=files.rules_with_runbooks(document, runbooks), opts=opts)

    def _monitors(self, name: str, opts: pulumi.ResourceOptions) -> None:
        for namespace in self.args.app_namespaces:
            for service, port in SERVICE_MONITORS.items():
                k8s.apiextensions.CustomResource(
                    f"{name}-servicemonitor-{namespace}-{service}", api_version="monitoring.coreos.com/v1",
                    kind="ServiceMonitor", metadata={"name": service, "namespace": namespace, "labels": RULE_LABELS},
                    spec={"selector": {"matchLabels": {"app.kubernetes.io/name": service}},
                          "endpoints": [{"port": port, "path": "/metrics", "interval": "30s"}]},
                    opts=opts)
            for workload, port in POD_MONITORS.items():
                k8s.apiextensions.CustomResource(
                    f"{name}-podmonitor-{namespace}-{workload}", api_version="monitoring.coreos.com/v1",
                    kind="PodMonitor", metadata={"name": workload, "namespace": namespace, "labels": RULE_LABELS},
                    spec={"selector": {"matchLabels": {"app.kubernetes.io/name": workload}},
                          "jobLabel": "app.kubernetes.io/name",
                          "podMetricsEndpoints": [{"port": port, "path": "/metrics", "interval": "30s"}]},
                    opts=opts)

    def _cloudwatch_exporter(self, name: str, opts: pulumi.ResourceOptions) -> k8s.helm.v3.Release:
        """CloudWatch -> Prometheus for the NAT failover metrics; read-only CloudWatch access via IRSA."""
        cfg = self.args.config
        # CloudWatch read APIs have no resource-level permissions, hence "*" on read-only actions.
        policy = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Resource": "*",
            "Action": ["cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics", "cloudwatch:ListMetrics"]}]})
        role = service_account_role(f"{name}-cloudwatch-exporter", self.args.oidc_provider_arn,
                                    self.args.oidc_provider_url, self.args.namespace, CLOUDWATCH_SERVICE_ACCOUNT,
                                    policy, self.args.tags, self)
        return install_chart(f"{name}-cloudwatch-exporter", "prometheus-cloudwatch-exporter", cfg.platform.charts, {
            "fullnameOverride": CLOUDWATCH_SERVICE_ACCOUNT,
            "serviceAccount": {"create": True, "name": CLOUDWATCH_SERVICE_ACCOUNT,
                               "annotations": irsa_annotation(role)},
            "config": files.cloudwatch_exporter_config(cfg.region),
            "serviceMonitor": {"enabled": True, "interval": "60s"},
            "priorityClassName": self.args.priority_class,
        }, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[self.stack])),
            namespace=self.args.namespace)
