"""Drain engine on the kubesim emulator: evictions only, budgets honoured, DaemonSets left, zone-bound pods."""
from __future__ import annotations

import pytest

from infra.ops.io.kube import from_kubeconfig
from infra.ops.lifecycle.drain import Drain, DrainBlocked, DrainPolicy
from tests.support import node_world as world

AZS = ("eu-west-1a", "eu-west-1b")


@pytest.fixture
def sim(kubesim_factory):
    cluster = kubesim_factory(nodes=False)
    cluster.add_nodes("general", "blue", zones=AZS, per_zone=2)
    world.namespace(cluster.api_client())
    return cluster


def _names(cluster, generation, zone=None):
    return sorted(n["metadata"]["name"] for n in cluster.nodes(generation=generation)
                  if zone is None or n["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone)


def test_cordon_then_drain_moves_pods_by_eviction_and_keeps_daemonsets(sim):
    api = sim.api_client()
    world.deployment(api, "api", 12, max_unavailable=2)
    world.daemonset(api, "logs")
    world.wait_running(sim, 12 + 4)
    sim.add_nodes("general", "green", zones=AZS, per_zone=2)
    drain = Drain(from_kubeconfig(sim.kubeconfig), DrainPolicy(parallelism=8, backoff=0.05))
    old = _names(sim, "blue")
    drain.cordon(old)
    with world.BudgetWatch(sim, {"api": 10}) as watch:
        report = drain.drain(old)
        world.wait_running(sim, 12 + 8)
    assert len(report.evicted) == 12 and len(report.skipped) == 4
    assert all("DaemonSet pod" in skipped for skipped in report.skipped)
    api_pods = [p for p in world.running(sim) if p["metadata"]["labels"]["app"] == "api"]
    assert len(api_pods) == 12 and not {p["spec"]["nodeName"] for p in api_pods} & set(old)
    assert all(n["spec"].get("unschedulable") for n in sim.nodes(generation="blue"))
    assert watch.samples > 10 and watch.violations == []
    posts = [path for method, path, _ in list(sim.requests) if method == "POST" and path.endswith("/eviction")]
    deletes = [path for method, path, _ in list(sim.requests) if method == "DELETE" and "/pods/" in path]
    assert len(posts) >= 12 and deletes == []


def test_budget_refusals_are_retried_with_backoff_until_allowed(sim):
    api = sim.api_client()
    world.deployment(api, "worker", 3, min_available=2)
    world.wait_running(sim, 3)
    sim.add_nodes("general", "green", zones=AZS, per_zone=1)
    drain = Drain(from_kubeconfig(sim.kubeconfig), DrainPolicy(parallelism=3, backoff=0.05, backoff_max=0.2))
    old = _names(sim, "blue")
    drain.cordon(old)
    with world.BudgetWatch(sim, {"worker": 2}) as watch:
        report = drain.drain(old)
    assert len(report.evicted) == 3 and report.refusals > 0
    assert watch.violations == []


def test_budget_that_never_allows_eviction_fails_bounded_and_names_the_pod(sim):
    api = sim.api_client()
    world.deployment(api, "pinned", 2, max_unavailable=0)
    world.wait_running(sim, 2)
    drain = Drain(from_kubeconfig(sim.kubeconfig), DrainPolicy(pdb_timeout=0.6, backoff=0.1))
    old = _names(sim, "blue")
    drain.cordon(old)
    with pytest.raises(DrainBlocked, match=r"2 pod\(s\) not drained.*apps-dev/pinned-.*PodDisruptionBudget refused"):
        drain.drain(old)
    assert len([p for p in world.running(sim) if p["metadata"]["labels"]["app"] == "pinned"]) == 2


def test_zone_bound_pods_come_back_in_their_zone(sim):
    api = sim.api_client()
    world.statefulset(api, "db", 2, min_available=1)
    world.wait_running(sim, 2)
    before = {p["metadata"]["name"]: world.zone_of(sim, p["spec"]["nodeName"]) for p in world.running(sim)}
    sim.add_nodes("general", "green", zones=AZS, per_zone=1)
    drain = Drain(from_kubeconfig(sim.kubeconfig), DrainPolicy(backoff=0.05))
    drain.cordon(_names(sim, "blue"))
    for zone in AZS:
        names = _names(sim, "blue", zone)
        evict, _ = drain.plan(names)
        drain.drain(names)
        assert drain.wait_zone_bound(evict, zone) == []
    after = {p["metadata"]["name"]: world.zone_of(sim, p["spec"]["nodeName"]) for p in world.running(sim)}
    assert after == before
    assert all(p["spec"]["nodeName"] in _names(sim, "green") for p in world.running(sim))


def test_zone_bound_pod_without_capacity_in_its_zone_stops_the_drain(sim):
    api = sim.api_client()
    world.statefulset(api, "db", 1)
    world.wait_running(sim, 1)
    zone = world.zone_of(sim, world.running(sim)[0]["spec"]["nodeName"])
    other = next(z for z in AZS if z != zone)
    sim.add_nodes("general", "green", zones=(other,), per_zone=1)
    drain = Drain(from_kubeconfig(sim.kubeconfig), DrainPolicy(backoff=0.05, reschedule_timeout=0.8))
    drain.cordon(_names(sim, "blue"))
    names = _names(sim, "blue", zone)
    evict, _ = drain.plan(names)
    drain.drain(names)
    with pytest.raises(DrainBlocked, match=f"not Running again in {zone}.*apps-dev/db-0.*capacity in {zone}"):
        drain.wait_zone_bound(evict, zone)


def test_uncordon_reverts(sim):
    drain = Drain(from_kubeconfig(sim.kubeconfig))
    names = _names(sim, "blue")
    drain.cordon(names)
    drain.cordon(names, unschedulable=False)
    assert not any(n["spec"].get("unschedulable") for n in sim.nodes())
