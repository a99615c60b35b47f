"""One retry layer for the lifecycle engines' Kubernetes calls: Kube.call, with nothing under it (urllib3) or over it.

Against kubesim with a fault that keeps answering 503 (or a 429 with Retry-After, which urllib3 would honour
if it retried), each engine call is retried by Kube.call alone: the server sees exactly one request per
attempt, and the attempts form one sequence (2, 3, ... in the wait notices), where a second layer would
multiply the requests or restart the count. A PodDisruptionBudget's refusal is no failure to retry: it
reaches the drain engine at once, one request per eviction attempt.
"""
from __future__ import annotations

import re

import pytest
from kubernetes.client.exceptions import ApiException

from infra.ops.io.kube import from_kubeconfig
from infra.ops.io.retry import listening
from infra.ops.lifecycle.checkpoint import Checkpoint
from infra.ops.lifecycle.drain import Drain, DrainBlocked, DrainPolicy
from infra.ops.lifecycle.health import unready_nodes
from infra.ops.lifecycle.upgrade import live_objects
from tests.support import node_world as world

# engine call -> (method, path pattern the fault answers, the call)
CALLS = {
    "drain": ("GET", r"^/api/v1/nodes\?", lambda kube: Drain(kube).nodes("pool=general")),
    "checkpoint": ("GET", r"^/api/v1/namespaces/kube-system/configmaps/eks-platform-migrate-general",
                   lambda kube: Checkpoint(kube, "migrate-general").load()),
    "health": ("GET", r"^/api/v1/nodes\?", unready_nodes),
    "upgrade": ("GET", r"^/apis/apps/v1/deployments", live_objects),
}


@pytest.fixture
def sim(kubesim_factory):
    cluster = kubesim_factory(nodes=False)
    cluster.add_nodes("general", "blue", zones=("eu-west-1a",), per_zone=1)
    return cluster


def _kube(sim, budget_s: float = 1.0):
    kube = from_kubeconfig(sim.kubeconfig)  # as the CLI builds it
    kube.retry_budget_s = budget_s
    return kube


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (429, 1)], ids=["503", "429-retry-after"])
@pytest.mark.parametrize("name", CALLS)
def test_one_request_per_attempt(sim, name, status, retry_after):
    method, path, call = CALLS[name]
    kube = _kube(sim)
    fault = sim.inject_fault(method, path, status=status, times=None, retry_after=retry_after)
    notices: list[str | None] = []
    with listening(notices.append), pytest.raises(ApiException) as failed:
        call(kube)
    sim.clear_faults()
    assert failed.value.status == status
    attempts = [int(n) for notice in notices if notice for n in re.findall(r"\(attempt (\d+),", notice)]
    sent = [entry for entry in sim.requests if entry[0] == method and re.search(path, entry[1])]
    assert len(sent) == fault.hits >= 2, "retried at least once"
    assert attempts == list(range(2, len(sent) + 1)), "one sequence of attempts, one request each"


def test_a_transient_fault_is_ridden_out_within_the_budget(sim):
    kube = _kube(sim, budget_s=30.0)
    sim.inject_fault("GET", CALLS["drain"][1], status=503, times=2)
    assert [n.metadata.name for n in Drain(kube).nodes("pool=general")] == [n["metadata"]["name"]
                                                                            for n in sim.nodes()]
    assert [status for method, path, status in sim.requests if path.startswith("/api/v1/nodes?")] == [503, 503, 200]


def test_a_budget_refusal_comes_back_to_the_drain_at_once(sim):
    kube = _kube(sim, budget_s=30.0)
    world.namespace(kube.api)
    world.deployment(kube.api, "pinned", 1)
    world.wait_running(sim, 1)
    fault = sim.inject_fault("POST", r"/eviction$", status=429, times=None,
                             message="Cannot evict pod as it would violate the pod's disruption budget.")
    drain = Drain(kube, DrainPolicy(pdb_timeout=0.5, backoff=0.1, backoff_max=0.1))
    notices: list[str | None] = []
    with listening(notices.append), pytest.raises(DrainBlocked, match="PodDisruptionBudget refused eviction"):
        drain.drain([node["metadata"]["name"] for node in sim.nodes()])
    assert fault.hits >= 2, "the drain engine asked again, at its own pace"
    assert [notice for notice in notices if notice] == [], "Kube.call never retried a budget's refusal"
