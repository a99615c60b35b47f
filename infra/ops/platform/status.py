"""`invoke platform.status`: one screen of platform health, read from the cluster, EKS and Alertmanager.

Each source is read independently: one that fails (Alertmanager not installed yet, no AWS
credentials) becomes a line under "problems" and the rest of the screen still shows, because
the moment someone runs this is usually the moment something is broken. The API server itself is
not a source: when it cannot be reached there is no screen to show, and the task fails with one line
rather than listing every source as a problem after each has waited out its retries.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from ruamel.yaml import YAML, YAMLError

from infra.charts import (
    ALERTMANAGER_PORT,
    ALERTMANAGER_SERVICE,
    AUTOSCALER_NAMESPACE,
    AUTOSCALER_STATUS_CONFIGMAP,
    MONITORING_NAMESPACE,
)
from infra.config import StackConfig
from infra.ops import errors
from infra.ops.io.kube import Kube, KubeError, api_reason
from infra.ops.platform.edge import PublicHost

NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
ZONE_LABEL = "topology.kubernetes.io/zone"
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
# Autoscaler events worth showing: what it did and what it could not do.
AUTOSCALER_REASONS = ("TriggeredScaleUp", "NotTriggerScaleUp", "ScaleDown", "ScaleDownFailed", "FailedToScaleUpGroup")
PENDING_GRACE_S = 120  # a pod pending for less is normal scheduling, not a finding
EVENT_LIMIT = 8
RETRY_BUDGET_S = 10.0  # per call: a status screen should answer in seconds, even against a struggling API server


@dataclass(frozen=True)
class Scaling:
    """What EKS says a node group should have."""

    desired: int
    min: int
    max: int
    status: str = ""


@dataclass(frozen=True)
class NodeGroupHealth:
    name: str
    az: str
    ready: int
    registered: int
    cordoned: int
    desired: int | None = None
    min: int | None = None
    max: int | None = None
    status: str = ""

    @property
    def short(self) -> bool:
        return self.desired is not None and self.ready < self.desired

    @property
    def at_max(self) -> bool:
        return self.desired is not None and self.max is not None and self.desired >= self.max


@dataclass(frozen=True)
class AutoscalerEvent:
    reason: str
    target: str
    message: str
    last_seen: str


@dataclass(frozen=True)
class AutoscalerActivity:
    """The cluster-autoscaler status ConfigMap, summarised, plus its recent events."""

    state: str
    health: str = ""
    scale_up: str = ""
    scale_down: str = ""
    candidates: int = 0
    updated: str = ""
    events: tuple[AutoscalerEvent, ...] = ()
    targets: dict[str, Scaling] = field(default_factory=dict)  # ASG name -> what the autoscaler sees


@dataclass(frozen=True)
class PendingPod:
    namespace: str
    name: str
    age_s: int
    reason: str


@dataclass(frozen=True)
class FiringAlert:
    name: str
    severity: str
    summary: str
    since: str
    where: str


@dataclass
class PlatformStatus:
    env: str
    cluster: str
    node_groups: list[NodeGroupHealth] = field(default_factory=list)
    autoscaler: AutoscalerActivity | None = None
    pending: list[PendingPod] = field(default_factory=list)
    alerts: list[FiringAlert] | None = None
    edge: list[PublicHost] | None = None  # None: the stack has no public edge, or it could not be read
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """No source failed, every group has its desired nodes Ready, nothing stuck pending, nothing critical firing."""
        return (not self.problems and not any(group.short for group in self.node_groups)
                and not [pod for pod in self.pending if pod.age_s >= PENDING_GRACE_S]
                and not any(alert.severity == "critical" for alert in self.alerts or [])
                and not any(host.problems for host in self.edge or []))

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["healthy"] = self.healthy
        return body


def expected_node_groups(cfg: StackConfig) -> dict[str, str]:
    """Node group name -> AZ for every group the stack declares (same naming as the node group component)."""
    groups = {}
    for pool_name, pool in cfg.node_pools.items():
        for generation in pool.generations:
            for az in cfg.pool_azs(pool):
                groups[f"{pool_name}-{generation}-{az[-1]}"] = az
    return groups


def _ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_groups(kube: Kube, expected: dict[str, str], scaling: dict[str, Scaling]) -> list[NodeGroupHealth]:
    """Ready/registered/cordoned nodes per node group (declared groups shown even with no nodes)."""
    nodes = kube.request("GET", "/api/v1/nodes").get("items") or []
    counts: dict[str, dict[str, Any]] = {name: {"az": az, "ready": 0, "registered": 0, "cordoned": 0}
                                         for name, az in expected.items()}
    for node in nodes:
        labels = node["metadata"].get("labels") or {}
        name = labels.get(NODEGROUP_LABEL, "(unmanaged)")
        entry = counts.setdefault(name, {"az": labels.get(ZONE_LABEL, "?"), "ready": 0, "registered": 0,
                                         "cordoned": 0})
        entry["registered"] += 1
        entry["ready"] += _ready(node)
        entry["cordoned"] += bool((node.get("spec") or {}).get("unschedulable"))
    rows = []
    for name, entry in counts.items():
        size = scaling.get(name)
        rows.append(NodeGroupHealth(name=name, **entry, desired=size.desired if size else None,
                                    min=size.min if size else None, max=size.max if size else None,
                                    status=size.status if size else ""))
    return sorted(rows, key=lambda row: (row.az, row.name))


def _parse_status(text: str) -> dict[str, Any]:
    try:
        document = YAML(typ="safe").load(text)
    except YAMLError:
        return {}
    return document if isinstance(document, dict) else {}


def autoscaler_activity(kube: Kube) -> AutoscalerActivity:
    """From the autoscaler's own status ConfigMap (YAML since 1.30) and its recent events."""
    try:
        configmap = kube.request(
            "GET", f"/api/v1/namespaces/{AUTOSCALER_NAMESPACE}/configmaps/{AUTOSCALER_STATUS_CONFIGMAP}")
    except ApiException as error:
        if error.status != 404:
            raise
        return AutoscalerActivity(state="not reporting (no status ConfigMap: autoscaler not running?)",
                                  events=_autoscaler_events(kube))
    status = _parse_status((configmap.get("data") or {}).get("status", ""))
    wide = status.get("clusterWide") or {}
    scale_down = wide.get("scaleDown") or {}
    return AutoscalerActivity(
        state=str(status.get("autoscalerStatus") or "unknown"),
        health=str((wide.get("health") or {}).get("status") or ""),
        scale_up=str((wide.get("scaleUp") or {}).get("status") or ""),
        scale_down=str(scale_down.get("status") or ""),
        candidates=int(scale_down.get("candidates") or 0),
        updated=str(status.get("time") or (configmap["metadata"].get("annotations") or {}).get(
            "cluster-autoscaler.kubernetes.io/last-updated", "")),
        events=_autoscaler_events(kube),
        targets=_autoscaler_targets(status))


def _autoscaler_targets(status: dict[str, Any]) -> dict[str, Scaling]:
    targets = {}
    for group in status.get("nodeGroups") or []:
        health = group.get("health") or {}
        if "name" in group and "cloudProviderTarget" in health:
            targets[str(group["name"])] = Scaling(
                desired=int(health["cloudProviderTarget"]), min=int(health.get("minSize", 0)),
                max=int(health.get("maxSize", 0)), status=f"autoscaler: {health.get('status', '?')}")
    return targets


def sizes_from_autoscaler(expected: list[str], targets: dict[str, Scaling]) -> dict[str, Scaling]:
    """Fallback when EKS cannot be read: EKS names a managed group's ASG `eks-<node group>-<uuid>`."""
    return {name: size for name in expected for asg, size in targets.items() if asg.startswith(f"eks-{name}-")}


def _autoscaler_events(kube: Kube) -> tuple[AutoscalerEvent, ...]:
    events = []
    for reason in AUTOSCALER_REASONS:
        found = kube.request("GET", "/api/v1/events", query=[("fieldSelector", f"reason={reason}")])
        for event in found.get("items") or []:
            target = event.get("involvedObject") or {}
            events.append(AutoscalerEvent(
                reason=reason, target=f"{target.get('kind', '?')} {target.get('namespace') or ''}/"
                                      f"{target.get('name', '?')}".replace(" /", " "),
                message=str(event.get("message") or "").strip(),
                last_seen=str(event.get("lastTimestamp") or event.get("eventTime") or
                              event["metadata"].get("creationTimestamp") or "")))
    events.sort(key=lambda event: event.last_seen, reverse=True)
    return tuple(events[:EVENT_LIMIT])


def _age_s(timestamp: str | None, now: datetime) -> int:
    if not timestamp:
        return 0
    created = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return max(0, int((now - created).total_seconds()))


def pending_pods(kube: Kube, now: datetime) -> list[PendingPod]:
    """Pods not yet running, oldest first, with the scheduler's reason when it gave one."""
    found = kube.request("GET", "/api/v1/pods", query=[("fieldSelector", "status.phase=Pending")])
    pods = []
    for pod in found.get("items") or []:
        conditions = (pod.get("status") or {}).get("conditions") or []
        scheduled: dict[str, Any] = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
        if scheduled.get("status") == "False":
            reason = f"{scheduled.get('reason', 'Unschedulable')}: {scheduled.get('message', '')}".strip(": ")
        else:
            waiting = [status.get("state", {}).get("waiting", {}).get("reason")
                       for status in (pod.get("status") or {}).get("containerStatuses") or []]
            reason = ", ".join(r for r in waiting if r) or "starting"
        meta = pod["metadata"]
        pods.append(PendingPod(namespace=meta.get("namespace", ""), name=meta["name"],
                               age_s=_age_s(meta.get("creationTimestamp"), now), reason=reason))
    return sorted(pods, key=lambda pod: -pod.age_s)


def firing_alerts(kube: Kube) -> list[FiringAlert]:
    """Active (not silenced or inhibited) alerts, through the API server's service proxy to Alertmanager."""
    path = (f"/api/v1/namespaces/{MONITORING_NAMESPACE}/services/{ALERTMANAGER_SERVICE}:{ALERTMANAGER_PORT}"
            f"/proxy/api/v2/alerts")
    found: Any = kube.request("GET", path, query=[("active", "true"), ("silenced", "false"), ("inhibited", "false")])
    if isinstance(found, (str, bytes)):
        found = json.loads(found)
    alerts = []
    for alert in found or []:
        if (alert.get("status") or {}).get("state", "active") != "active":
            continue
        labels, annotations = alert.get("labels") or {}, alert.get("annotations") or {}
        where = "/".join(labels[key] for key in ("namespace", "deployment", "pod", "node_group") if labels.get(key))
        alerts.append(FiringAlert(name=labels.get("alertname", "?"), severity=labels.get("severity", "none"),
                                  summary=annotations.get("summary", ""), since=alert.get("startsAt", ""),
                                  where=where))
    return sorted(alerts, key=lambda alert: (SEVERITY_ORDER.get(alert.severity, 9), alert.name))


def _failure(source: str, error: Exception) -> str:
    return f"{source}: {api_reason(error) if isinstance(error, ApiException) else errors.reason(error)}"


def _server_unreachable(error: Exception) -> bool:
    """No HTTP answer at all (refused, timed out, reset): the API server is down, not one source."""
    import urllib3

    return isinstance(error, urllib3.exceptions.HTTPError)


def collect(kube: Kube, cfg: StackConfig, scaling: Callable[[list[str]], dict[str, Scaling]],
            now: datetime | None = None, retry_budget_s: float = RETRY_BUDGET_S,
            edge: Callable[[], list[PublicHost]] | None = None) -> PlatformStatus:
    """Read every source once; a failing source is recorded as a problem, never aborts the screen."""
    now = now or datetime.now(UTC)
    kube = dataclasses.replace(kube, retry_budget_s=min(kube.retry_budget_s, retry_budget_s), _typed={})
    status = PlatformStatus(env=cfg.env, cluster=cfg.cluster.name)
    expected = expected_node_groups(cfg)
    sizes: dict[str, Scaling] = {}

    def read_node_groups() -> list[NodeGroupHealth]:
        fallback = sizes_from_autoscaler(list(expected), status.autoscaler.targets if status.autoscaler else {})
        return node_groups(kube, expected, {**fallback, **sizes})

    try:
        sizes = scaling(list(expected))
    except Exception as error:  # noqa: BLE001 - any AWS failure degrades to the autoscaler's view, or unknown
        status.problems.append(_failure("EKS node group sizes", error))
    readers: list[tuple[str, Callable[[], Any], str]] = [
        ("autoscaler", lambda: autoscaler_activity(kube), "autoscaler"),
        ("nodes", read_node_groups, "node_groups"),
        ("pending pods", lambda: pending_pods(kube, now), "pending"),
        ("Alertmanager", lambda: firing_alerts(kube), "alerts"),
        *([("public edge", edge, "edge")] if edge is not None else []),
    ]
    for source, read, attribute in readers:
        try:
            setattr(status, attribute, read())
        except Exception as error:  # noqa: BLE001 - reported on screen, the other sources still show
            if _server_unreachable(error):
                raise KubeError(f"{errors.reason(error)} (while reading {source})") from None
            status.problems.append(_failure(source, error))
    return status


def eks_scaling(region: str, cluster: str) -> Callable[[list[str]], dict[str, Scaling]]:
    """Desired/min/max of each node group from EKS (boto3: endpoint from AWS_ENDPOINT_URL, standard retries)."""
    def read(names: list[str]) -> dict[str, Scaling]:
        from botocore.exceptions import ClientError

        from infra.ops.io import aws

        eks = aws.client("eks", region)
        sizes = {}
        for name in names:
            try:
                group = eks.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    continue  # declared but not created yet: shown without a desired size
                raise
            config = group.get("scalingConfig") or {}
            sizes[name] = Scaling(desired=int(config.get("desiredSize", 0)), min=int(config.get("minSize", 0)),
                                  max=int(config.get("maxSize", 0)), status=group.get("status", ""))
        return sizes
    return read
