"""kubesim eviction: PodDisruptionBudget status and the pods/eviction subresource (429 when exhausted)."""
from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.kube_objects import deployment, rolled_out


@pytest.fixture
def api(kubesim):
    c = kubesim.api_client()
    return client.CoreV1Api(c), client.AppsV1Api(c), client.PolicyV1Api(c)


def _evict(core, name, ns="default"):
    return core.create_namespaced_pod_eviction(name, ns, client.V1Eviction(
        metadata=client.V1ObjectMeta(name=name, namespace=ns)))


def _pdb(policy, **spec):
    return policy.create_namespaced_pod_disruption_budget("default", {
        "metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}})


def _pdb_status(policy):
    return policy.read_namespaced_pod_disruption_budget("web", "default").status


def test_pdb_status_tracks_healthy_pods(kubesim, api):
    core, apps, policy = api
    apps.create_namespaced_deployment("default", deployment(replicas=3))
    _pdb(policy, maxUnavailable=1)
    kubesim.wait_for(lambda: rolled_out(apps))
    st = kubesim.wait_for(lambda: (lambda s: s and s.current_healthy == 3 and s)(_pdb_status(policy)))
    assert (st.desired_healthy, st.expected_pods, st.disruptions_allowed) == (2, 3, 1)
    assert st.observed_generation == 1
    assert next(c for c in st.conditions if c.type == "DisruptionAllowed").status == "True"


def test_eviction_honours_budget_then_recovers(kubesim, api):
    core, apps, policy = api
    apps.create_namespaced_deployment("default", deployment(replicas=3))
    _pdb(policy, minAvailable=2)
    kubesim.wait_for(lambda: rolled_out(apps))
    kubesim.wait_for(lambda: _pdb_status(policy).disruptions_allowed == 1)
    first, second = [p["metadata"]["name"] for p in kubesim.pods("default", app="web")][:2]
    kubesim.script_image("repo/app:1", "Ready", delay=20)  # the replacement takes 20 simulated seconds
    _evict(core, first)
    assert core.read_namespaced_pod(first, "default").metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as e:
        _evict(core, second)
    body = json.loads(e.value.body)
    assert e.value.status == 429 and body["reason"] == "TooManyRequests"
    assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert body["details"]["causes"][0]["reason"] == "DisruptionBudget"
    assert "needs 2 healthy pods" in body["details"]["causes"][0]["message"]
    # the replacement becomes Ready, the budget allows one more disruption again
    kubesim.wait_for(lambda: _pdb_status(policy).disruptions_allowed == 1)
    _evict(core, second)
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/" + second) is None)


def test_eviction_without_budget_deletes_and_missing_pod_is_404(kubesim, api):
    core, _, _ = api
    core.create_namespaced_pod("default", {"metadata": {"name": "solo"}, "spec": {
        "containers": [{"name": "c", "image": "repo/app:1"}]}})
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/solo")["status"].get("phase") == "Running")
    _evict(core, "solo")
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/solo") is None)
    with pytest.raises(ApiException) as e:
        _evict(core, "solo")
    assert e.value.status == 404


def test_unready_pods_can_be_evicted_while_budget_is_healthy(kubesim, api):
    core, apps, policy = api
    kubesim.script_image("repo/app:stuck", "NeverReady")
    apps.create_namespaced_deployment("default", deployment(replicas=3))
    kubesim.wait_for(lambda: rolled_out(apps))
    _pdb(policy, minAvailable=3)
    kubesim.wait_for(lambda: _pdb_status(policy).current_healthy == 3)
    core.create_namespaced_pod("default", {"metadata": {"name": "stuck", "labels": {"app": "web"}}, "spec": {
        "containers": [{"name": "c", "image": "repo/app:stuck"}]}})
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/stuck")["status"].get("phase") == "Running")
    _evict(core, "stuck")  # IfHealthyBudget: not Ready and the budget is met -> allowed
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/stuck") is None)
    healthy = kubesim.pods("default", app="web")[0]["metadata"]["name"]
    with pytest.raises(ApiException) as e:
        _evict(core, healthy)
    assert e.value.status == 429
