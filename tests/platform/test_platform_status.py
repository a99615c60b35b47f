"""`invoke platform.status` engine against the Kubernetes emulator (official client over HTTP) and moto EKS."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from kubernetes import client
from rich.console import Console

from infra.charts import ALERTMANAGER_PORT, ALERTMANAGER_SERVICE, MONITORING_NAMESPACE
from infra.config import load_stack_config
from infra.ops.io.kube import from_kubeconfig
from infra.ops.platform.status import Scaling, collect, expected_node_groups
from infra.ops.platform.view import screen
from tests.support.fake_pulumi import seed_eks
from tests.support.identity import declare_identity

ALERTS_PATH = "/api/v2/alerts"
CA_STATUS = """\
time: 2026-11-23 12:00:00.000000000 +0000 UTC
autoscalerStatus: Running
clusterWide:
  health:
    status: Healthy
    nodeCounts:
      registered: {total: 3, ready: 2, notStarted: 0}
  scaleUp:
    status: InProgress
  scaleDown:
    status: CandidatesPresent
    candidates: 1
nodeGroups: []
"""


@pytest.fixture
def cfg():
    return load_stack_config("dev")


@pytest.fixture
def sim(kubesim):
    """The emulator with no nodes: each test registers the node groups it needs."""
    for node in kubesim.nodes():
        kubesim.remove_node(node["metadata"]["name"])
    return kubesim


@pytest.fixture
def kube(sim):
    return from_kubeconfig(sim.kubeconfig)


def sizes(desired: int = 1, max_: int = 3):
    return lambda names: {name: Scaling(desired=desired, min=1, max=max_, status="ACTIVE") for name in names}


def render(status) -> str:
    console = Console(record=True, width=220, color_system=None)
    console.print(screen(status))
    return console.export_text()


def add_dev_nodes(sim, skip: tuple[str, ...] = ()):
    for generation in ("blue", "green"):
        for zone in ("eu-west-1a", "eu-west-1b"):
            if f"{generation}-{zone[-1]}" not in skip:
                sim.add_node(pool="general", generation=generation, zone=zone)


def autoscaler_running(sim, text: str = CA_STATUS):
    core = client.CoreV1Api(sim.api_client())
    core.create_namespaced_config_map("kube-system", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="cluster-autoscaler-status"), data={"status": text}))
    return core


def alertmanager_answers(sim, alerts, status: int = 200):
    sim.script_proxy(MONITORING_NAMESPACE, ALERTMANAGER_SERVICE, port=ALERTMANAGER_PORT, path=ALERTS_PATH,
                     status=status, body=alerts)


def alert(name: str, severity: str, **labels) -> dict:
    return {"labels": {"alertname": name, "severity": severity, **labels},
            "annotations": {"summary": f"{name} summary"}, "startsAt": "2026-11-23T11:50:00Z",
            "status": {"state": "active", "silencedBy": [], "inhibitedBy": []}}


def test_expected_node_groups_follow_the_stack(cfg):
    assert expected_node_groups(cfg) == {"general-blue-a": "eu-west-1a", "general-blue-b": "eu-west-1b",
                                         "general-green-a": "eu-west-1a", "general-green-b": "eu-west-1b"}


def test_healthy_platform_on_one_screen(sim, kube, cfg):
    add_dev_nodes(sim)
    core = autoscaler_running(sim, CA_STATUS.replace("InProgress", "NoActivity"))
    core.create_namespaced_event("default", client.CoreV1Event(
        metadata=client.V1ObjectMeta(name="api-1.scaleup"), reason="TriggeredScaleUp",
        message="pod triggered scale-up: [{general-blue-a 1->2 (max: 3)}]", type="Normal",
        involved_object=client.V1ObjectReference(kind="Pod", namespace="default", name="api-1"),
        last_timestamp=datetime.now(UTC), source=client.V1EventSource(component="cluster-autoscaler")))
    alertmanager_answers(sim, [])
    status = collect(kube, cfg, sizes())
    assert status.problems == []
    assert [(g.name, g.ready, g.desired) for g in status.node_groups] == [
        ("general-blue-a", 1, 1), ("general-green-a", 1, 1), ("general-blue-b", 1, 1), ("general-green-b", 1, 1)]
    assert status.autoscaler.state == "Running" and status.autoscaler.health == "Healthy"
    assert [e.reason for e in status.autoscaler.events] == ["TriggeredScaleUp"]
    assert status.alerts == [] and status.pending == []
    assert status.healthy
    text = render(status)
    assert "Platform dev (cluster eks-dev): healthy" in text
    assert "general-green-b" in text and "1/1" in text
    assert "TriggeredScaleUp" in text and "general-blue-a 1->2" in text
    assert "Firing alerts: none" in text and "Pending pods: none" in text


def test_short_groups_pending_pods_and_alerts_are_flagged(sim, kube, cfg):
    add_dev_nodes(sim, skip=("green-b",))
    sim.set_node_ready(next(n["metadata"]["name"] for n in sim.nodes(generation="blue")
                            if n["metadata"]["labels"]["topology.kubernetes.io/zone"] == "eu-west-1b"), False)
    autoscaler_running(sim)
    alertmanager_answers(sim, [alert("PodsUnschedulable", "warning"),
                               alert("DeploymentRolloutFailed", "critical", namespace="apps-dev", deployment="api"),
                               {**alert("Silenced", "critical"), "status": {"state": "suppressed"}}])
    core = client.CoreV1Api(sim.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="apps-dev")))
    core.create_namespaced_pod("apps-dev", client.V1Pod(
        metadata=client.V1ObjectMeta(name="api-big", labels={"app.kubernetes.io/name": "api"}),
        spec=client.V1PodSpec(node_selector={"pool": "gpu"}, containers=[client.V1Container(name="api", image="api")])))
    sim.wait_for(lambda: any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                             for p in sim.pods("apps-dev") for c in p.get("status", {}).get("conditions") or []),
                 message="pod marked unschedulable")
    later = datetime.now(UTC) + timedelta(minutes=10)
    status = collect(kube, cfg, sizes(desired=1, max_=1), now=later)
    groups = {g.name: g for g in status.node_groups}
    assert groups["general-blue-b"].ready == 0 and groups["general-blue-b"].registered == 1
    assert groups["general-green-b"].registered == 0 and groups["general-green-b"].short
    assert all(g.at_max for g in status.node_groups)
    assert [(p.namespace, p.name) for p in status.pending] == [("apps-dev", "api-big")]
    assert status.pending[0].reason.startswith("Unschedulable") and status.pending[0].age_s >= 600
    assert [(a.severity, a.name, a.where) for a in status.alerts] == [
        ("critical", "DeploymentRolloutFailed", "apps-dev/api"), ("warning", "PodsUnschedulable", "")]
    assert status.autoscaler.scale_up == "InProgress" and status.autoscaler.candidates == 1
    assert not status.healthy
    text = render(status)
    assert "needs attention" in text
    assert "0/1" in text and "short of desired" in text and "at max size" in text
    assert "api-big" in text and "DeploymentRolloutFailed" in text and "Silenced" not in text
    method, namespace, service, port, path = sim.proxy.calls[-1]
    assert (method, namespace, service, port, path) == ("GET", MONITORING_NAMESPACE, ALERTMANAGER_SERVICE,
                                                        str(ALERTMANAGER_PORT), ALERTS_PATH)


def test_a_failing_source_is_a_problem_line_not_a_crash(sim, kube, cfg):
    add_dev_nodes(sim)
    alertmanager_answers(sim, {"kind": "Status", "message": "no endpoints available"}, status=503)

    def no_aws(names):
        raise RuntimeError("Unable to locate credentials")

    status = collect(kube, cfg, no_aws, retry_budget_s=1.0)
    assert status.alerts is None
    assert status.autoscaler.state.startswith("not reporting")
    assert any(p.startswith("EKS node group sizes: Unable to locate credentials") for p in status.problems)
    assert any(p.startswith("Alertmanager:") for p in status.problems)
    assert [g.desired for g in status.node_groups] == [None] * 4
    assert not status.healthy
    text = render(status)
    assert "Firing alerts: unknown" in text and "1/?" in text and "Problems reading the platform" in text


def test_without_eks_the_autoscalers_view_gives_desired_sizes(sim, kube, cfg):
    add_dev_nodes(sim)
    autoscaler_running(sim, CA_STATUS.replace("nodeGroups: []", """nodeGroups:
- name: eks-general-blue-a-6ac7e1f0-1b2c-3d4e-5f60-718293a4b5c6
  health:
    status: Healthy
    cloudProviderTarget: 2
    minSize: 1
    maxSize: 3
"""))
    alertmanager_answers(sim, [])

    def no_aws(names):
        raise RuntimeError("Unable to locate credentials")

    status = collect(kube, cfg, no_aws, retry_budget_s=1.0)
    groups = {g.name: g for g in status.node_groups}
    assert (groups["general-blue-a"].desired, groups["general-blue-a"].max) == (2, 3)
    assert groups["general-blue-a"].short and groups["general-blue-a"].status == "autoscaler: Healthy"
    assert groups["general-blue-b"].desired is None
    assert status.problems == ["EKS node group sizes: Unable to locate credentials"]


def test_transient_api_errors_are_retried(sim, kube, cfg):
    add_dev_nodes(sim)
    alertmanager_answers(sim, [])
    sim.inject_fault(method="GET", path_regex=r"^/api/v1/nodes", status=503, times=2)
    status = collect(kube, cfg, sizes())
    assert status.problems == []
    assert sum(g.ready for g in status.node_groups) == 4
    assert [s for m, p, s in sim.requests if p.startswith("/api/v1/nodes")][:3] == [503, 503, 200]


def test_status_task_prints_json_and_strict_exits_1(sim, aws, cfg, capsys):
    from invoke import Context
    from invoke.exceptions import Exit

    from infra.cli.platform import platform_status

    seed_eks(cfg)  # desired sizes come from EKS (moto), as the stack file declares them
    declare_identity(sim, "dev")
    boto3.client("eks", region_name=cfg.region).delete_nodegroup(clusterName=cfg.cluster.name,
                                                                 nodegroupName="general-blue-b")
    add_dev_nodes(sim, skip=("green-a",))
    alertmanager_answers(sim, [])
    platform_status(Context(), env="dev", kubeconfig=sim.kubeconfig, json_=True)
    body = json.loads(capsys.readouterr().out)
    assert body["healthy"] is False and body["problems"] == []
    pool = cfg.node_pools["general"]
    groups = {g["name"]: g for g in body["node_groups"]}
    assert (groups["general-green-a"]["ready"], groups["general-green-a"]["desired"]) == (0, pool.desired_size)
    assert (groups["general-blue-a"]["min"], groups["general-blue-a"]["max"]) == (pool.min_size, pool.max_size)
    assert groups["general-blue-b"]["desired"] is None  # declared, not (or no longer) in EKS
    with pytest.raises(Exit) as caught:
        platform_status(Context(), env="dev", kubeconfig=sim.kubeconfig, strict=True)
    assert caught.value.code == 1
    assert "general-green-a" in capsys.readouterr().out


def test_status_task_rejects_unknown_env():
    from invoke import Context
    from invoke.exceptions import Exit

    from infra.cli.platform import platform_status

    with pytest.raises(Exit) as caught:
        platform_status(Context(), env="staging")
    assert caught.value.code == 2 and "dev, prod" in str(caught.value.message)
