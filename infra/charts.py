"""Helm charts the platform baseline installs, each pinned to one version.

Pins live here (not in stack files) so dev and prod run the same charts unless a stack overrides one
deliberately through `eks-platform:platform.charts`; a bump is a reviewed one-line change.
No pulumi import: config validation reads the catalogue too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Chart:
    name: str
    repo: str
    version: str
    namespace: str


CHARTS: dict[str, Chart] = {chart.name: chart for chart in (
    Chart("cluster-autoscaler", "https://kubernetes.github.io/autoscaler", "9.46.6", "kube-system"),
    Chart("metrics-server", "https://kubernetes-sigs.github.io/metrics-server/", "3.12.2", "kube-system"),
    Chart("kube-prometheus-stack", "https://prometheus-community.github.io/helm-charts", "75.15.1", "monitoring"),
    Chart("prometheus-cloudwatch-exporter", "https://prometheus-community.github.io/helm-charts", "0.27.0",
          "monitoring"),
    Chart("aws-for-fluent-bit", "https://aws.github.io/eks-charts", "0.1.34", "logging"),
    # Traffic edge (docs/traffic-edge.md). aws-load-balancer-controller 3.7.0 = controller v3.7.0 (chart and app
    # versions are equal since 3.0.0): eks-charts release v0.0.253, 2026-11-24, the newest on 2026-12-05
    # (github.com/aws/eks-charts/releases). external-dns 1.21.1: the newest chart listed on Artifact Hub
    # (artifacthub.io/packages/helm/external-dns/external-dns, published 2026-04-30), checked 2026-12-05.
    Chart("aws-load-balancer-controller", "https://aws.github.io/eks-charts", "3.7.0", "kube-system"),
    Chart("external-dns", "https://kubernetes-sigs.github.io/external-dns/", "1.21.1", "kube-system"),
)}

# The autoscaler must match the control plane's minor version; its image tag follows the cluster, not the chart.
# One tag per minor of the EKS calendar (infra/eks_calendar.py; config refuses a version without one): the latest
# registry.k8s.io/autoscaling/cluster-autoscaler patch per minor as promoted in kubernetes/k8s.io #8815 (1.32.5) and
# #9676 (1.33.5, 1.34.4, 1.35.1, 1.36.0; 2026-07-02), checked 2026-12-05.
AUTOSCALER_IMAGES: dict[int, str] = {29: "v1.29.5", 30: "v1.30.4", 31: "v1.31.2", 32: "v1.32.5", 33: "v1.33.5",
                                     34: "v1.34.4", 35: "v1.35.1", 36: "v1.36.0"}


def chart_version(name: str, overrides: dict[str, str]) -> str:
    """The version to install: the stack's override if it sets one, else the pin above."""
    return overrides.get(name) or CHARTS[name].version

# Where the status engine finds what these charts run (kept beside the pins so both sides agree).
MONITORING_NAMESPACE = "monitoring"
PROMETHEUS_STACK_NAME = "kps"  # kube-prometheus-stack fullnameOverride: short, stable object names
ALERTMANAGER_SERVICE = f"{PROMETHEUS_STACK_NAME}-alertmanager"
ALERTMANAGER_PORT = 9093
AUTOSCALER_NAME = "cluster-autoscaler"  # cluster-autoscaler fullnameOverride, service account and status ConfigMap prefix
AUTOSCALER_NAMESPACE = CHARTS[AUTOSCALER_NAME].namespace
AUTOSCALER_STATUS_CONFIGMAP = "cluster-autoscaler-status"  # the autoscaler's --status-config-map-name default
EDGE_CONTROLLER = "aws-load-balancer-controller"  # fullnameOverride and service account of the controller
# The controller's IAM policy as its release publishes it (docs/install/iam_policy.json): its IRSA role carries
# exactly this, which the policy pack checks (infra/policy/rules/edge.py).
EDGE_CONTROLLER_POLICY = Path(__file__).resolve().parent / "components" / "data" / (
    "aws-load-balancer-controller-iam-policy.json")
EDGE_DNS = "external-dns"                          # fullnameOverride and service account of ExternalDNS
INGRESS_CLASS = "alb"                              # the one IngressClass the platform installs (Pulumi declares it)
INGRESS_CONTROLLER = "ingress.k8s.aws/alb"         # the controller name that class names
