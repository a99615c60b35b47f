"""The real kubectl (1.32 on PATH) against kubesim: get (tables), rollout status, cordon, drain."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from kubernetes import client

from tests.support.kube_objects import deployment, rolled_out

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")


def kubectl(kubesim, *args, timeout=180):
    return subprocess.run(["kubectl", "--kubeconfig", kubesim.kubeconfig, *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def web(kubesim):
    apps = client.AppsV1Api(kubesim.api_client())
    apps.create_namespaced_deployment("default", deployment(replicas=3))
    kubesim.wait_for(lambda: rolled_out(apps))
    return apps


def test_kubectl_get_prints_server_side_tables(kubesim, web):
    out = kubectl(kubesim, "get", "pods,deployments,nodes", "-o", "wide")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert sum(1 for line in lines if "1/1" in line and "Running" in line) == 3
    assert any(line.startswith("deployment.apps/web") and "3/3" in line for line in lines)
    assert sum(1 for line in lines if line.startswith("node/") and " Ready " in line) == 3
    as_json = kubectl(kubesim, "get", "deploy", "web", "-o", "jsonpath={.status.availableReplicas}")
    assert as_json.stdout == "3"


def test_kubectl_rollout_status_success_and_deadline(kubesim, web):
    out = kubectl(kubesim, "rollout", "status", "deployment/web", "--timeout=120s")
    assert out.returncode == 0 and 'deployment "web" successfully rolled out' in out.stdout
    kubesim.script_image("repo/app:bad", "ImagePullBackOff")
    web.patch_namespaced_deployment("web", "default", {"spec": {"progressDeadlineSeconds": 5, "template": {
        "spec": {"containers": [{"name": "app", "image": "repo/app:bad"}]}}}})
    out = kubectl(kubesim, "rollout", "status", "deployment/web", "--timeout=120s")
    assert out.returncode != 0 and 'deployment "web" exceeded its progress deadline' in out.stderr


def test_kubectl_cordon_and_uncordon(kubesim):
    node = kubesim.nodes()[0]["metadata"]["name"]
    out = kubectl(kubesim, "cordon", node)
    assert out.returncode == 0 and "cordoned" in out.stdout
    assert kubesim.store.get("nodes/" + node)["spec"]["unschedulable"] is True
    assert kubectl(kubesim, "uncordon", node).returncode == 0
    assert not kubesim.store.get("nodes/" + node)["spec"].get("unschedulable")


def test_kubectl_drain_evicts_and_skips_daemonsets(kubesim, web):
    client.AppsV1Api(kubesim.api_client()).create_namespaced_daemon_set("kube-system", {
        "metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
            "metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "repo/agent:1"}]}}}})
    node = kubesim.pods("default", app="web")[0]["spec"]["nodeName"]
    kubesim.wait_for(lambda: any(p["spec"].get("nodeName") == node for p in kubesim.pods("kube-system")))
    out = kubectl(kubesim, "drain", node, "--ignore-daemonsets", "--timeout=120s")
    assert out.returncode == 0, out.stderr
    assert "evicted" in out.stdout and "drained" in out.stdout
    assert not [p for p in kubesim.pods("default") if p["spec"].get("nodeName") == node]
    assert [p for p in kubesim.pods("kube-system") if p["spec"].get("nodeName") == node]  # daemon pod stays
    kubesim.wait_for(lambda: rolled_out(web))


def test_kubectl_drain_blocked_by_budget(kubesim, web):
    client.PolicyV1Api(kubesim.api_client()).create_namespaced_pod_disruption_budget("default", {
        "metadata": {"name": "web"}, "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}}})
    node = kubesim.pods("default", app="web")[0]["spec"]["nodeName"]
    out = kubectl(kubesim, "drain", node, "--ignore-daemonsets", "--timeout=2s")
    assert out.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget" in out.stderr
    assert kubesim.store.get("nodes/" + node)["spec"]["unschedulable"] is True


MANIFEST = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
      - name: app
        image: repo/api:1
"""


def test_kubectl_apply_set_image_and_rollout_undo_reuses_replicaset(kubesim, tmp_path):
    path = tmp_path / "api.yaml"
    path.write_text(MANIFEST)
    out = kubectl(kubesim, "apply", "--server-side", "-f", str(path))
    assert out.returncode == 0 and "serverside-applied" in out.stdout, out.stderr
    assert kubectl(kubesim, "rollout", "status", "deploy/api", "--timeout=120s").returncode == 0
    first = {r["metadata"]["name"] for r in kubesim.store.list("replicasets")[0]}
    assert kubectl(kubesim, "set", "image", "deploy/api", "app=repo/api:2").returncode == 0
    assert kubectl(kubesim, "rollout", "status", "deploy/api", "--timeout=120s").returncode == 0
    out = kubectl(kubesim, "rollout", "undo", "deploy/api")
    assert out.returncode == 0 and "rolled back" in out.stdout
    assert kubectl(kubesim, "rollout", "status", "deploy/api", "--timeout=120s").returncode == 0
    d = kubesim.store.get("deployments/default/api")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    live = [r for r in kubesim.store.list("replicasets")[0] if r["spec"]["replicas"]]
    assert {r["metadata"]["name"] for r in live} == first  # the revision-1 ReplicaSet came back
    out = kubectl(kubesim, "apply", "-f", str(path))  # client-side apply works too (validation server-side)
    assert out.returncode == 0, out.stderr


def test_kubectl_get_watch_streams_table_rows(kubesim):
    core = client.CoreV1Api(kubesim.api_client())
    watcher = subprocess.Popen(["kubectl", "--kubeconfig", kubesim.kubeconfig, "get", "pods", "-w",
                                "--request-timeout=120s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        kubesim.wait_for(lambda: kubesim.open_watches() >= 1, timeout=60, message="kubectl's watch")
        core.create_namespaced_pod("default", {"metadata": {"name": "w"}, "spec": {"containers": [
            {"name": "a", "image": "repo/app:1"}]}})
        for line in watcher.stdout:  # rows arrive as the pod changes; stop at the Running one
            lines.append(line.split())
            if lines[-1][:3] == ["w", "1/1", "Running"]:
                break
    finally:
        watcher.kill()
        watcher.communicate()
    assert lines[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[-1][:3] == ["w", "1/1", "Running"]


def test_kubectl_rollout_status_statefulset_and_daemonset(kubesim):
    apps = client.AppsV1Api(kubesim.api_client())
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "repo/x:1"}]}}
    apps.create_namespaced_stateful_set("default", {"metadata": {"name": "db"}, "spec": {
        "replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "x"}}, "template": template}})
    apps.create_namespaced_daemon_set("kube-system", {"metadata": {"name": "agent"}, "spec": {
        "selector": {"matchLabels": {"app": "x"}}, "template": template}})
    for ref, ns in (("sts/db", "default"), ("ds/agent", "kube-system")):
        assert kubectl(kubesim, "-n", ns, "set", "image", ref, "c=repo/x:2").returncode == 0
        out = kubectl(kubesim, "-n", ns, "rollout", "status", ref, "--timeout=120s")
        assert out.returncode == 0 and ("roll out complete" in out.stdout or "successfully rolled out" in out.stdout)
    images = {p["spec"]["containers"][0]["image"] for ns in ("default", "kube-system") for p in kubesim.pods(ns)
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"repo/x:2"}
