"""kubesim control plane: deployment/replicaset/statefulset controllers, scheduler, kubelet behaviours."""
from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.kube_objects import deployment, rolled_out


@pytest.fixture
def apps(kubesim):
    return client.AppsV1Api(kubesim.api_client())


@pytest.fixture
def core(kubesim):
    return client.CoreV1Api(kubesim.api_client())


def condition(d, typ):
    return next((c for c in (d.status and d.status.conditions) or [] if c.type == typ), None)


def set_image(apps, image, name="web"):
    apps.patch_namespaced_deployment(name, "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": image}]}}}})


def test_deployment_creates_replicaset_pods_and_reports_status(kubesim, apps):
    apps.create_namespaced_deployment("default", deployment())
    d = kubesim.wait_for(lambda: rolled_out(apps), message="rollout")
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert condition(d, "Available").status == "True"
    assert condition(d, "Progressing").reason == "NewReplicaSetAvailable"
    (rs,) = apps.list_namespaced_replica_set("default").items
    h = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{h}" and rs.spec.selector.match_labels["pod-template-hash"] == h
    assert rs.metadata.owner_references[0].uid == d.metadata.uid and rs.status.ready_replicas == 3
    pods = kubesim.pods("default", app="web")
    assert len(pods) == 3 and all(p["metadata"]["labels"]["pod-template-hash"] == h for p in pods)
    zones = {kubesim.store.get("nodes", None, p["spec"]["nodeName"])["metadata"]["labels"][
        "topology.kubernetes.io/zone"] for p in pods}
    assert len(zones) == 3  # spread across zones like topology spread


@pytest.mark.parametrize("surge,unavailable,max_total,min_ready", [("25%", "25%", 4, 3), (0, 1, 3, 2), (2, 0, 5, 3)])
def test_rolling_update_honours_surge_and_unavailable(kubesim, apps, surge, unavailable, max_total, min_ready):
    apps.create_namespaced_deployment("default", deployment(surge=surge, unavailable=unavailable))
    kubesim.wait_for(lambda: rolled_out(apps))
    set_image(apps, "repo/app:2")
    seen_total, seen_ready = 0, 99
    deadline = time.monotonic() + 60  # the loop ends when rolled out
    while time.monotonic() < deadline:
        live = [p for p in kubesim.pods("default", app="web") if not p["metadata"].get("deletionTimestamp")]
        ready = [p for p in live if any(c["type"] == "Ready" and c["status"] == "True"
                                        for c in p["status"].get("conditions") or [])]
        seen_total, seen_ready = max(seen_total, len(live)), min(seen_ready, len(ready))
        if rolled_out(apps):
            break
        time.sleep(0.005)
    d = rolled_out(apps)
    assert d, "rollout did not finish"
    assert seen_total <= max_total and seen_ready >= min_ready
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    images = {p["spec"]["containers"][0]["image"] for p in kubesim.pods("default", app="web")
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"repo/app:2"}
    events = {e["message"].split(" to ")[0] for e in kubesim.events("default", reason="ScalingReplicaSet")}
    assert any(m.startswith("Scaled down replica set") for m in events)


def test_three_replica_rolling_update_completes_at_default_time_factor(kubesim, apps):
    # Its speed (target < 2 s) is measured by bench/kubesim_bench.py, not asserted here.
    apps.create_namespaced_deployment("default", deployment())
    kubesim.wait_for(lambda: rolled_out(apps))
    set_image(apps, "repo/app:2")
    kubesim.wait_for(lambda: rolled_out(apps))


def test_revision_history_limit_and_rollback_reuse(kubesim, apps):
    apps.create_namespaced_deployment("default", deployment(replicas=1, revisionHistoryLimit=1))
    for tag in ("2", "3"):
        kubesim.wait_for(lambda: rolled_out(apps))
        set_image(apps, f"repo/app:{tag}")
    kubesim.wait_for(lambda: rolled_out(apps))
    kubesim.wait_for(lambda: len(apps.list_namespaced_replica_set("default").items) == 2, message="history cleanup")
    revisions = sorted(int(r.metadata.annotations["deployment.kubernetes.io/revision"])
                       for r in apps.list_namespaced_replica_set("default").items)
    assert revisions == [2, 3]
    set_image(apps, "repo/app:2")  # roll back: the old ReplicaSet is reused with a new revision
    d = kubesim.wait_for(lambda: rolled_out(apps))
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "4"
    names = {r.metadata.name for r in apps.list_namespaced_replica_set("default").items}
    assert len(names) == 2


def test_progress_deadline_exceeded_on_bad_image(kubesim, apps):
    kubesim.script_image("repo/app:bad", "ErrImagePull")
    apps.create_namespaced_deployment("default", deployment(progressDeadlineSeconds=5))
    kubesim.wait_for(lambda: rolled_out(apps))
    set_image(apps, "repo/app:bad")
    d = kubesim.wait_for(lambda: (lambda d: condition(d, "Progressing").reason == "ProgressDeadlineExceeded" and d)(
        apps.read_namespaced_deployment("web", "default")))
    assert condition(d, "Progressing").status == "False"
    assert "has timed out progressing" in condition(d, "Progressing").message
    assert d.status.available_replicas == 3 and d.status.updated_replicas == 1  # old pods kept serving


def test_recreate_strategy_stops_old_pods_first(kubesim, apps):
    body = deployment(replicas=2)
    body["spec"]["strategy"] = {"type": "Recreate"}
    apps.create_namespaced_deployment("default", body)
    kubesim.wait_for(lambda: rolled_out(apps))
    set_image(apps, "repo/app:2")
    mixed = False
    deadline = time.monotonic() + 60  # the loop ends when rolled out
    while not rolled_out(apps) and time.monotonic() < deadline:
        images = {p["spec"]["containers"][0]["image"] for p in kubesim.pods("default", app="web")}
        mixed |= len(images) > 1
        time.sleep(0.005)
    assert rolled_out(apps) and not mixed


def test_paused_deployment_does_not_roll(kubesim, apps):
    apps.create_namespaced_deployment("default", deployment(replicas=1))
    kubesim.wait_for(lambda: rolled_out(apps))
    apps.patch_namespaced_deployment("web", "default", {"spec": {"paused": True}})
    set_image(apps, "repo/app:2")
    d = kubesim.wait_for(lambda: (lambda d: d.status.observed_generation == d.metadata.generation  # the new image
                                  and condition(d, "Progressing").reason == "DeploymentPaused" and d)(
        apps.read_namespaced_deployment("web", "default")))
    assert len(apps.list_namespaced_replica_set("default").items) == 1 and not d.status.updated_replicas


def _pod_with(core, image, name="p", annotations=None):
    return core.create_namespaced_pod("default", {"metadata": {"name": name, "annotations": annotations or {}},
                                                  "spec": {"containers": [{"name": "app", "image": image}]}})


def _waiting_reason(kubesim, name="p"):
    pod = kubesim.store.get("pods/default/" + name)
    css = (pod.get("status") or {}).get("containerStatuses") or []
    return css and (css[0]["state"].get("waiting") or {}).get("reason")


def _event_reasons(kubesim, name="p"):
    return {e["reason"] for e in kubesim.events("default", name=name)}


def test_behaviour_ready_emits_kubelet_events(kubesim, core):
    _pod_with(core, "repo/app:1")
    kubesim.wait_for(lambda: core.read_namespaced_pod("p", "default").status.container_statuses
                     and core.read_namespaced_pod("p", "default").status.container_statuses[0].ready)
    pod = core.read_namespaced_pod("p", "default")
    assert pod.status.phase == "Running" and pod.status.pod_ip and pod.status.host_ip
    assert {"Scheduled", "Pulling", "Pulled", "Created", "Started"} <= _event_reasons(kubesim)


@pytest.mark.parametrize("behavior,reasons,events", [
    ("ErrImagePull", {"ErrImagePull", "ImagePullBackOff"}, {"Failed"}),
    ("ImagePullBackOff", {"ImagePullBackOff"}, {"BackOff", "Failed"}),
    ("CreateContainerConfigError", {"CreateContainerConfigError"}, {"Failed"}),
    ("InvalidImageName", {"InvalidImageName"}, {"InspectFailed", "Failed"}),
])
def test_waiting_behaviours(kubesim, core, behavior, reasons, events):
    kubesim.script_image("repo/app:x", behavior)
    _pod_with(core, "repo/app:x")
    reason = kubesim.wait_for(lambda: _waiting_reason(kubesim))
    assert reason in reasons
    kubesim.wait_for(lambda: events <= _event_reasons(kubesim), message=f"events {events}")
    assert core.read_namespaced_pod("p", "default").status.phase == "Pending"


def test_err_image_pull_turns_into_back_off(kubesim, core):
    kubesim.script_image("repo/app:bad", "ErrImagePull")
    _pod_with(core, "repo/app:bad")
    kubesim.wait_for(lambda: _waiting_reason(kubesim) == "ImagePullBackOff")
    assert "BackOff" in _event_reasons(kubesim)


def test_crash_loop_back_off_restart_count_grows(kubesim, core):
    _pod_with(core, "repo/app:1", annotations={"kubesim/behavior": "CrashLoopBackOff:delay=0.5"})
    kubesim.wait_for(lambda: _waiting_reason(kubesim) == "CrashLoopBackOff")
    cs = core.read_namespaced_pod("p", "default").status.container_statuses[0]
    assert cs.restart_count >= 1 and cs.last_state.terminated.exit_code == 1 and not cs.ready
    kubesim.wait_for(lambda: core.read_namespaced_pod("p", "default").status.container_statuses[0]
                     .restart_count >= 2)
    assert "BackOff" in _event_reasons(kubesim)


def test_oom_killed(kubesim, core):
    kubesim.script_image("repo/hog:1", "OOMKilled", delay=0.5)
    _pod_with(core, "repo/hog:1")
    kubesim.wait_for(lambda: _waiting_reason(kubesim) == "CrashLoopBackOff")
    cs = core.read_namespaced_pod("p", "default").status.container_statuses[0]
    assert cs.last_state.terminated.reason == "OOMKilled" and cs.last_state.terminated.exit_code == 137


def test_never_ready_runs_but_fails_readiness(kubesim, core):
    kubesim.script_image("repo/app:slow", "NeverReady")
    _pod_with(core, "repo/app:slow")
    kubesim.wait_for(lambda: "Unhealthy" in _event_reasons(kubesim))
    pod = core.read_namespaced_pod("p", "default")
    assert pod.status.phase == "Running" and not pod.status.container_statuses[0].ready
    assert pod.status.container_statuses[0].state.running is not None


def test_scheduler_respects_cordon_selectors_and_reports_unschedulable(kubesim, core):
    nodes = [n["metadata"]["name"] for n in kubesim.nodes()]
    for n in nodes[:2]:
        core.patch_node(n, {"spec": {"unschedulable": True}})
    _pod_with(core, "repo/app:1", "a")
    pod = kubesim.wait_for(lambda: kubesim.store.get("pods/default/a")["spec"].get("nodeName"))
    assert pod == nodes[2]
    kubesim.add_nodes("batch", "green", zones=["eu-west-1b"])
    core.create_namespaced_pod("default", {"metadata": {"name": "b"}, "spec": {
        "nodeSelector": {"pool": "batch"}, "containers": [{"name": "c", "image": "repo/app:1"}]}})
    node = kubesim.wait_for(lambda: kubesim.store.get("pods/default/b")["spec"].get("nodeName"))
    assert kubesim.store.get("nodes", None, node)["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] \
        == "batch-green-b"
    core.create_namespaced_pod("default", {"metadata": {"name": "c"}, "spec": {
        "nodeSelector": {"pool": "gpu"}, "containers": [{"name": "c", "image": "repo/app:1"}]}})
    kubesim.wait_for(lambda: "FailedScheduling" in _event_reasons(kubesim, "c"))
    cond = next(c for c in core.read_namespaced_pod("c", "default").status.conditions if c.type == "PodScheduled")
    assert cond.status == "False" and cond.reason == "Unschedulable" and "0/4 nodes are available" in cond.message


def test_node_affinity_zone(kubesim, core):
    core.create_namespaced_pod("default", {"metadata": {"name": "z"}, "spec": {
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In",
                                   "values": ["eu-west-1c"]}]}]}}},
        "containers": [{"name": "c", "image": "repo/app:1"}]}})
    node = kubesim.wait_for(lambda: kubesim.store.get("pods/default/z")["spec"].get("nodeName"))
    assert kubesim.store.get("nodes", None, node)["metadata"]["labels"]["topology.kubernetes.io/zone"] == "eu-west-1c"


def test_statefulset_ordered_pods_claims_and_zone_pinning(kubesim, apps, core):
    apps.create_namespaced_stateful_set("default", {"metadata": {"name": "db"}, "spec": {
        "replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db",
                                                                                     "image": "repo/db:1"}]}},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
    s = kubesim.wait_for(lambda: (lambda s: s.status and (s.status.ready_replicas or 0) == 2 and s)(
        apps.read_namespaced_stateful_set("db", "default")))
    assert s.status.observed_generation == 1
    pvc = core.read_namespaced_persistent_volume_claim("data-db-0", "default")
    assert pvc.status.phase == "Bound" and pvc.spec.volume_name
    node0 = kubesim.store.get("pods/default/db-0")["spec"]["nodeName"]
    zone = kubesim.store.get("nodes", None, node0)["metadata"]["labels"]["topology.kubernetes.io/zone"]
    core.patch_node(node0, {"spec": {"unschedulable": True}})
    kubesim.add_node(zone=zone)  # the only other node in that zone
    uid = kubesim.store.get("pods/default/db-0")["metadata"]["uid"]
    core.delete_namespaced_pod("db-0", "default")
    kubesim.wait_for(lambda: (lambda p: p and p["metadata"]["uid"] != uid and p["spec"].get("nodeName"))(
        kubesim.store.get("pods/default/db-0")))
    new_node = kubesim.store.get("pods/default/db-0")["spec"]["nodeName"]
    assert new_node != node0
    assert kubesim.store.get("nodes", None, new_node)["metadata"]["labels"]["topology.kubernetes.io/zone"] == zone


def test_graceful_deletion_then_removal(kubesim, core):
    _pod_with(core, "repo/app:1")
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/p")["spec"].get("nodeName"))
    out = core.delete_namespaced_pod("p", "default")
    assert out.metadata.deletion_timestamp is not None and out.metadata.deletion_grace_period_seconds == 30
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/p") is None)
    assert "Killing" in _event_reasons(kubesim)
    _pod_with(core, "repo/app:1", "q")
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/q")["spec"].get("nodeName"))
    core.delete_namespaced_pod("q", "default", grace_period_seconds=0)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("q", "default")
    assert e.value.status == 404


def test_node_not_ready_and_removal(kubesim, apps, core):
    apps.create_namespaced_deployment("default", deployment(replicas=3))
    kubesim.wait_for(lambda: rolled_out(apps))
    victim = kubesim.pods("default", app="web")[0]
    node = victim["spec"]["nodeName"]
    kubesim.set_node_ready(node, False)
    kubesim.wait_for(lambda: not any(c["type"] == "Ready" and c["status"] == "True" for c in
                                     kubesim.store.get("pods/default/" + victim["metadata"]["name"])["status"][
                                         "conditions"]))
    assert core.read_node(node).status.conditions[-1].status == "Unknown"
    kubesim.remove_node(node)
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/" + victim["metadata"]["name"]) is None)
    d = kubesim.wait_for(lambda: rolled_out(apps))
    assert d.status.available_replicas == 3


def test_garbage_collection_and_namespace_deletion(kubesim, apps, core):
    core.create_namespace({"metadata": {"name": "team"}})
    apps.create_namespaced_deployment("team", deployment(replicas=2))
    kubesim.wait_for(lambda: rolled_out(apps, ns="team"))
    apps.delete_namespaced_deployment("web", "team")
    kubesim.wait_for(lambda: not kubesim.pods("team") and not apps.list_namespaced_replica_set("team").items,
                     message="cascade")
    core.create_namespaced_config_map("team", {"metadata": {"name": "cfg", "finalizers": ["example.com/hold"]}})
    core.delete_namespace("team")
    assert core.read_namespace("team").status.phase == "Terminating"
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("team", {"metadata": {"name": "late"}})
    assert e.value.status == 403
    kubesim.wait_for(lambda: core.read_namespaced_config_map("cfg", "team").metadata.deletion_timestamp)
    core.patch_namespaced_config_map("cfg", "team", [{"op": "remove", "path": "/metadata/finalizers"}])
    kubesim.wait_for(lambda: kubesim.store.get("namespaces/team") is None, message="namespace removal")


def test_unreachable_node_taints_and_evicts_after_toleration(kubesim, apps, core):
    body = deployment(replicas=3)
    body["spec"]["template"]["spec"]["tolerations"] = [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                                        "effect": "NoExecute", "tolerationSeconds": 2}]
    apps.create_namespaced_deployment("default", body)
    kubesim.wait_for(lambda: rolled_out(apps))
    node = kubesim.pods("default", app="web")[0]["spec"]["nodeName"]
    victims = [p["metadata"]["name"] for p in kubesim.pods("default", app="web") if p["spec"]["nodeName"] == node]
    kubesim.set_node_ready(node, False)
    taints = {(t.key, t.effect) for t in core.read_node(node).spec.taints}
    assert taints == {("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    kubesim.wait_for(lambda: all(kubesim.store.get("pods/default/" + v)["metadata"].get("deletionTimestamp")
                                 for v in victims), message="taint eviction")
    d = kubesim.wait_for(lambda: rolled_out(apps), message="replacements elsewhere")
    assert d.status.available_replicas == 3
    assert all(kubesim.store.get("pods/default/" + v) for v in victims)  # stuck Terminating: kubelet is away
    assert "TaintManagerEviction" in {e["reason"] for e in kubesim.events("default")}
    kubesim.set_node_ready(node, True)
    assert not core.read_node(node).spec.taints
    kubesim.wait_for(lambda: not any(kubesim.store.get("pods/default/" + v) for v in victims))


def test_scheduler_counts_cpu_and_memory_requests(kubesim_factory):
    cluster = kubesim_factory(nodes=False)
    cluster.add_node(cpu="1", memory="1Gi")
    core = client.CoreV1Api(cluster.api_client())
    for name, cpu in (("a", "600m"), ("b", "600m")):
        core.create_namespaced_pod("default", {"metadata": {"name": name}, "spec": {"containers": [
            {"name": "c", "image": "repo/app:1", "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}]}})
    cluster.wait_for(lambda: cluster.store.get("pods/default/a")["spec"].get("nodeName"))
    cluster.wait_for(lambda: "FailedScheduling" in {e["reason"] for e in cluster.events("default", name="b")})
    cond = next(c for c in core.read_namespaced_pod("b", "default").status.conditions if c.type == "PodScheduled")
    assert "Insufficient cpu" in cond.message
    core.delete_namespaced_pod("a", "default", grace_period_seconds=0)
    cluster.wait_for(lambda: cluster.store.get("pods/default/b")["spec"].get("nodeName"))


def test_foreground_deletion_waits_for_dependents(kubesim, apps):
    apps.create_namespaced_deployment("default", deployment(replicas=2))
    kubesim.wait_for(lambda: rolled_out(apps))
    apps.delete_namespaced_deployment("web", "default", propagation_policy="Foreground")
    d = apps.read_namespaced_deployment("web", "default")
    assert d.metadata.deletion_timestamp and "foregroundDeletion" in d.metadata.finalizers
    kubesim.wait_for(lambda: kubesim.store.get("deployments/default/web") is None, message="deployment gone")
    assert not kubesim.pods("default") and not kubesim.store.list("replicasets")[0]


def test_slow_shutdown_is_bounded_by_grace_period(kubesim, core):
    core.create_namespaced_pod("default", {"metadata": {"name": "slow", "annotations": {
        "kubesim/behavior": "Ready:stop=30"}}, "spec": {"terminationGracePeriodSeconds": 10, "containers": [
            {"name": "c", "image": "repo/app:1"}]}})
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/slow")["status"].get("phase") == "Running")
    start = time.monotonic()
    core.delete_namespaced_pod("slow", "default")
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/slow") is None)
    assert time.monotonic() - start >= 10 * kubesim.time_factor  # the grace period, not the 30 s it wanted


def test_server_and_kubelet_versions(kubesim):
    kubesim.set_server_version("v1.33.2-eks-4f3a1b2")
    version = client.VersionApi(kubesim.api_client()).get_code()
    assert (version.git_version, version.minor) == ("v1.33.2-eks-4f3a1b2", "33")
    node = kubesim.add_node(version="v1.33.2-eks-4f3a1b2")
    assert node["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.2-eks-4f3a1b2"


def test_orphan_deletion_keeps_dependents(kubesim, apps):
    apps.create_namespaced_deployment("default", deployment(replicas=1))
    kubesim.wait_for(lambda: rolled_out(apps))
    apps.delete_namespaced_deployment("web", "default", propagation_policy="Orphan")
    passes = kubesim.control_plane.gc_passes
    kubesim.wait_for(lambda: kubesim.control_plane.gc_passes >= passes + 2)  # a whole pass after the delete (not) acted
    (rs,) = kubesim.store.list("replicasets")[0]
    assert not rs["metadata"].get("ownerReferences") and len(kubesim.pods("default", app="web")) == 1


def test_image_already_on_the_node_is_not_pulled_again(kubesim_factory):
    cluster = kubesim_factory(nodes=False)
    cluster.add_node()
    core = client.CoreV1Api(cluster.api_client())
    for name in ("first", "second"):
        core.create_namespaced_pod("default", {"metadata": {"name": name}, "spec": {"containers": [
            {"name": "c", "image": "repo/app:1"}]}})
        cluster.wait_for(lambda n=name: cluster.store.get("pods/default/" + n)["status"].get("phase") == "Running")
    reasons = {n: {(e["reason"], e["message"]) for e in cluster.events("default", name=n)} for n in ("first", "second")}
    assert ("Pulling", 'Pulling image "repo/app:1"') in reasons["first"]
    assert ("Pulled", 'Container image "repo/app:1" already present on machine') in reasons["second"]
    assert not any(r == "Pulling" for r, _ in reasons["second"])
