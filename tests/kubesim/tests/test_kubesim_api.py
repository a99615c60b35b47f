"""kubesim API fidelity, driven through the official kubernetes client over HTTP."""
from __future__ import annotations

import copy
import json
import threading

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError


def _deployment(name="web", image="repo/app:1", replicas=2, labels=None):
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"team": "a"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}}


def _status(e: ApiException) -> dict:
    return json.loads(e.body)


@pytest.fixture
def core(kubesim):
    return client.CoreV1Api(kubesim.api_client())


@pytest.fixture
def apps(kubesim):
    return client.AppsV1Api(kubesim.api_client())


def test_kubeconfig_points_at_server_and_discovery_lists_groups(kubesim):
    api = kubesim.api_client()
    groups = {g.name: [v.version for v in g.versions] for g in client.ApisApi(api).get_api_versions().groups}
    for g, v in {"apps": "v1", "batch": "v1", "policy": "v1", "coordination.k8s.io": "v1", "autoscaling": "v2",
                 "networking.k8s.io": "v1", "events.k8s.io": "v1"}.items():
        assert v in groups[g]
    core_resources = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert core_resources["pods/eviction"].group == "policy" and core_resources["pods"].namespaced
    assert not core_resources["nodes"].namespaced
    batch = {r.name for r in client.BatchV1Api(api).get_api_resources().resources}
    assert {"jobs", "cronjobs"} <= batch
    assert client.VersionApi(api).get_code().git_version.startswith("v1.32")


def test_create_sets_server_fields_and_get_roundtrips(core, apps):
    created = apps.create_namespaced_deployment("default", _deployment())
    m = created.metadata
    assert m.uid and m.resource_version and m.creation_timestamp and m.generation == 1
    assert created.spec.strategy.rolling_update.max_surge == "25%"  # defaulted
    assert created.spec.revision_history_limit == 10 and created.spec.progress_deadline_seconds == 600
    got = apps.read_namespaced_deployment("web", "default")
    assert got.metadata.uid == m.uid
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    assert cm.metadata.generation is None and cm.data == {"a": "1"}


def test_errors_are_status_bodies_with_real_codes(core, apps):
    with pytest.raises(ApiException) as e:
        apps.read_namespaced_deployment("nope", "default")
    body = _status(e.value)
    assert e.value.status == 404 and body["kind"] == "Status" and body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "nope" not found'
    apps.create_namespaced_deployment("default", _deployment())
    with pytest.raises(ApiException) as e:
        apps.create_namespaced_deployment("default", _deployment())
    assert e.value.status == 409 and _status(e.value)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("missing-ns", {"metadata": {"name": "x"}})
    assert e.value.status == 404 and 'namespaces "missing-ns" not found' in _status(e.value)["message"]
    bad = _deployment("bad")
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(ApiException) as e:
        apps.create_namespaced_deployment("default", bad)
    assert e.value.status == 422 and _status(e.value)["reason"] == "Invalid"
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("default", {"metadata": {"name": "Upper_Case"}})
    assert e.value.status == 422


def test_put_with_stale_resource_version_conflicts(core):
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    stale = cm.metadata.resource_version
    cm.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("cfg", "default", cm)
    assert int(updated.metadata.resource_version) > int(stale)
    cm.metadata.resource_version = stale
    cm.data = {"a": "3"}
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("cfg", "default", cm)
    assert e.value.status == 409 and _status(e.value)["reason"] == "Conflict"
    assert "the object has been modified" in _status(e.value)["message"]


def test_generation_bumps_on_spec_change_only(apps):
    apps.create_namespaced_deployment("default", _deployment())
    d = apps.patch_namespaced_deployment("web", "default", {"metadata": {"labels": {"x": "y"}}})
    assert d.metadata.generation == 1
    d = apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 5}})
    assert d.metadata.generation == 2


def test_list_with_label_and_field_selectors_and_pagination(core):
    for i, tier in enumerate(["web", "web", "db"]):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"c{i}", "labels": {"tier": tier}}})
    assert [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="tier=web").items] \
        == ["c0", "c1"]
    assert len(core.list_namespaced_config_map("default", label_selector="tier in (web,db),tier!=db").items) == 2
    assert [c.metadata.name for c in core.list_namespaced_config_map(
        "default", field_selector="metadata.name=c2").items] == ["c2"]
    page = core.list_namespaced_config_map("default", limit=2)
    assert len(page.items) == 2 and page.metadata._continue
    rest = core.list_namespaced_config_map("default", limit=2, _continue=page.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["c2"]
    pods_on_node = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=nowhere")
    assert pods_on_node.items == []


def _replace_on_conflict(kubesim, read, change, replace):
    """Read, change, replace; on 409 start over (client-go's RetryOnConflict): controllers write the object too.

    Returns (the object as read, the server's answer); the replace succeeded, so nothing changed in between.
    """
    def attempt():
        current = read()
        before = copy.deepcopy(current)
        change(current)
        try:
            return before, replace(current)
        except ApiException as e:
            if e.status != 409:
                raise
            return None
    return kubesim.wait_for(attempt, message="a replace without a conflict")


def test_status_subresource_is_isolated(kubesim, apps):
    apps.create_namespaced_deployment("default", _deployment(replicas=0))

    def read():
        return apps.read_namespaced_deployment("web", "default")
    kubesim.wait_for(lambda: (lambda d: d.status and d.status.observed_generation)(read()))

    def status_write(d):
        d.status.observed_generation, d.spec.replicas = 99, 7

    before, out = _replace_on_conflict(kubesim, read, status_write,
                                       lambda d: apps.replace_namespaced_deployment_status("web", "default", d))
    assert out.status.observed_generation == 99 and out.spec.replicas == 0 and out.spec == before.spec

    def main_write(d):
        d.status.observed_generation = 42
        d.metadata.labels["z"] = "1"

    before, out = _replace_on_conflict(kubesim, read, main_write,
                                       lambda d: apps.replace_namespaced_deployment("web", "default", d))
    assert out.metadata.labels["z"] == "1" and out.status == before.status  # status untouched by a main write


def test_patch_flavours(core, apps):
    apps.create_namespaced_deployment("default", _deployment())
    # strategic merge: containers merge by name
    d = apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "side", "image": "repo/side:1"}]}}}})
    assert [c.name for c in d.spec.template.spec.containers] == ["app", "side"]
    # JSON patch (list body)
    d = apps.patch_namespaced_deployment("web", "default", [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "repo/app:2"}])
    assert d.spec.template.spec.containers[0].image == "repo/app:2"
    # merge patch replaces lists wholesale
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cfg", "labels": {"a": "1", "b": "2"}}})
    cm = core.api_client.call_api(
        "/api/v1/namespaces/default/configmaps/cfg", "PATCH", header_params={
            "Content-Type": "application/merge-patch+json", "Accept": "application/json"},
        body={"metadata": {"labels": {"a": None}}}, response_type="V1ConfigMap", _return_http_data_only=True)
    assert cm.metadata.labels == {"b": "2"}
    with pytest.raises(ApiException) as e:
        apps.patch_namespaced_deployment("web", "default", [{"op": "test", "path": "/spec/replicas", "value": 9}])
    assert e.value.status == 422


def _ssa(kubesim, body, manager=None, **kw):
    """Server-side apply the way engines do it: the dynamic client (application/apply-patch+yaml)."""
    dyn = DynamicClient(kubesim.api_client())
    res = dyn.resources.get(api_version=body["apiVersion"], kind=body["kind"])
    return dyn.server_side_apply(res, body=body, namespace="default", field_manager=manager, **kw).to_dict()


def test_server_side_apply_tracks_managers_and_conflicts(kubesim, apps):
    body = _deployment(replicas=2)
    d = _ssa(kubesim, body, "deployer")
    assert d["metadata"]["uid"] and d["spec"]["replicas"] == 2  # apply creates
    entry = next(m for m in d["metadata"]["managedFields"] if m["manager"] == "deployer")
    assert entry["operation"] == "Apply" and "f:replicas" in entry["fieldsV1"]["f:spec"]
    # another manager changes replicas with an update: it takes ownership of that field
    apps.patch_namespaced_deployment("web", "default", {"spec": {"replicas": 5}}, field_manager="hpa")
    with pytest.raises(DynamicApiError) as e:
        _ssa(kubesim, body, "deployer")
    assert e.value.status == 409
    assert json.loads(e.value.body)["message"] == \
        'Apply failed with 1 conflict: conflict with "hpa" using apps/v1: .spec.replicas'
    assert json.loads(e.value.body)["details"]["causes"][0]["field"] == ".spec.replicas"
    d = _ssa(kubesim, body, "deployer", force_conflicts=True)
    assert d["spec"]["replicas"] == 2
    owners = {m["manager"]: m["fieldsV1"] for m in d["metadata"]["managedFields"]}
    assert "f:replicas" not in (owners.get("hpa") or {}).get("f:spec", {})
    # dropping a field from the applied config removes it (the manager owned it alone)
    body["metadata"]["labels"] = {}
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "repo/app:2"
    d = _ssa(kubesim, body, "deployer")
    assert not d["metadata"].get("labels", {}).get("team")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "repo/app:2"
    assert d["metadata"]["generation"] == 4  # create, hpa scale, forced apply, new image
    with pytest.raises(DynamicApiError) as e:
        _ssa(kubesim, body, None)
    assert e.value.status == 400  # fieldManager is required for apply


def test_server_side_apply_shares_fields_set_to_the_same_value(kubesim):
    body = _deployment(replicas=2)
    _ssa(kubesim, body, "a")
    d = _ssa(kubesim, body, "b")  # same values: no conflict, both own the fields
    managers = {m["manager"] for m in d["metadata"]["managedFields"]}
    assert managers == {"a", "b"}
    body["spec"]["replicas"] = 3
    body["spec"]["template"]["spec"]["containers"][0]["image"] = "repo/app:9"
    with pytest.raises(DynamicApiError) as e:
        _ssa(kubesim, body, "b")
    assert e.value.status == 409
    assert json.loads(e.value.body)["message"] == (
        'Apply failed with 2 conflicts: conflicts with "a":\n- .spec.replicas\n'
        '- .spec.template.spec.containers[name="app"].image')


def test_server_side_apply_dry_run_changes_nothing(kubesim, apps):
    d = _ssa(kubesim, _deployment(), "deployer", dry_run="All")
    assert d["metadata"]["name"] == "web"
    with pytest.raises(ApiException):
        apps.read_namespaced_deployment("web", "default")


def test_watch_streams_changes_resumes_and_expires(kubesim, core):
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "a"}})
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("a", "default")
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=1)]
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    kubesim.compact()
    with pytest.raises(ApiException) as e:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=rv,
                                      timeout_seconds=1):
            pass
    assert e.value.status == 410


def test_watch_without_resource_version_sends_current_state_then_live_events(kubesim, core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "old", "labels": {"w": "1"}}})
    seen = []

    def later():  # once the watch is open, so these are live events
        kubesim.wait_for(lambda: kubesim.open_watches() == 1, timeout=60)
        core.create_namespaced_config_map("default", {"metadata": {"name": "new", "labels": {"w": "1"}}})
        core.create_namespaced_config_map("default", {"metadata": {"name": "other"}})
    w = watch.Watch()
    t = threading.Thread(target=later)
    t.start()
    for e in w.stream(core.list_namespaced_config_map, "default", label_selector="w=1", timeout_seconds=60):
        seen.append((e["type"], e["object"].metadata.name))
        if len(seen) == 2:
            w.stop()
    t.join(60)
    assert seen == [("ADDED", "old"), ("ADDED", "new")]


def test_watch_label_selector_transitions_become_added_and_deleted(core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "c", "labels": {"sel": "yes"}}})
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("c", "default", {"metadata": {"labels": {"sel": "no"}}})
    core.patch_namespaced_config_map("c", "default", {"metadata": {"labels": {"sel": "yes"}}})
    events = [e["type"] for e in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                                      label_selector="sel=yes", resource_version=rv,
                                                      timeout_seconds=1)]
    assert events == ["DELETED", "ADDED"]


def test_delete_with_preconditions_and_orphan_propagation(kubesim, core, apps):
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}})
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_config_map("cfg", "default", body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid="not-the-uid")))
    assert e.value.status == 409
    core.delete_namespaced_config_map("cfg", "default", body=client.V1DeleteOptions(
        preconditions=client.V1Preconditions(uid=cm.metadata.uid)))
    assert kubesim.store.get("configmaps/default/cfg") is None


def test_finalizers_hold_deletion_until_removed(kubesim, core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "held", "finalizers": ["x/y"]}})
    core.delete_namespaced_config_map("held", "default")
    held = core.read_namespaced_config_map("held", "default")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", "default", [{"op": "remove", "path": "/metadata/finalizers"}])
    assert kubesim.store.get("configmaps/default/held") is None


def test_leases_and_other_groups_support_crud(kubesim):
    api = kubesim.api_client()
    coord = client.CoordinationV1Api(api)
    lease = coord.create_namespaced_lease("default", {"metadata": {"name": "lock"},
                                                      "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}})
    lease.spec.holder_identity = "you"
    assert coord.replace_namespaced_lease("lock", "default", lease).spec.holder_identity == "you"
    batch = client.BatchV1Api(api)
    batch.create_namespaced_cron_job("default", {"metadata": {"name": "nightly"}, "spec": {
        "schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1"}]}}}}}})
    assert batch.read_namespaced_cron_job("nightly", "default").spec.schedule == "0 0 * * *"
    hpa = client.AutoscalingV2Api(api)
    hpa.create_namespaced_horizontal_pod_autoscaler("default", {"metadata": {"name": "web"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 2, "maxReplicas": 5}})
    assert hpa.list_namespaced_horizontal_pod_autoscaler("default").items[0].spec.max_replicas == 5
    net = client.NetworkingV1Api(api)
    net.create_namespaced_network_policy("default", {"metadata": {"name": "deny"}, "spec": {"podSelector": {}}})
    assert net.read_namespaced_network_policy("deny", "default").metadata.uid


def test_scale_subresource(apps):
    apps.create_namespaced_deployment("default", _deployment(replicas=1))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 1
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 4


def test_store_handle_reads_and_writes_directly(kubesim, core):
    core.create_namespaced_config_map("default", {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    assert kubesim.store.get("configmaps/default/cfg")["data"] == {"a": "1"}
    assert kubesim.store.get("cm", "default", "cfg")["metadata"]["name"] == "cfg"
    kubesim.store.mutate("configmaps", "default", "cfg", lambda o: o["data"].update(b="2"))
    assert core.read_namespaced_config_map("cfg", "default").data == {"a": "1", "b": "2"}
    assert len(kubesim.store.list("nodes")[0]) == 3


def test_unknown_paths_are_404_status_and_keep_alive_survives(core):
    for _ in range(3):  # same pooled connection: the unread body must not poison the next request
        with pytest.raises(ApiException) as e:
            core.api_client.call_api("/api/v1/namespaces/default/widgets", "POST", body={"metadata": {"name": "w"}},
                                     header_params={"Content-Type": "application/json"}, response_type="object")
        assert e.value.status == 404 and json.loads(e.value.body)["reason"] == "NotFound"
        assert core.list_namespaced_config_map("default").items == []


def test_binary_bodies_are_refused_with_415(kubesim):
    http = urllib3.PoolManager()
    resp = http.request("POST", f"{kubesim.url}/api/v1/namespaces", body=b"k8s\x00\x0a\x0f",
                        headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
    body = json.loads(resp.data)
    assert resp.status == 415 and body["reason"] == "UnsupportedMediaType"


def test_secret_string_data_and_table_columns(kubesim, core):
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"user": "me"},
                                              "data": {"pw": "eA=="}})
    secret = core.read_namespaced_secret("s", "default")
    assert secret.data == {"pw": "eA==", "user": "bWU="} and secret.string_data is None and secret.type == "Opaque"
    resp = urllib3.PoolManager().request("GET", f"{kubesim.url}/api/v1/namespaces/default/secrets", headers={
        "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
    table = json.loads(resp.data)
    assert table["kind"] == "Table" and [c["name"] for c in table["columnDefinitions"]] == ["Name", "Type", "Data",
                                                                                         "Age"]
    assert table["rows"][0]["cells"][:3] == ["s", "Opaque", 2]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


def test_server_side_apply_to_status_subresource(kubesim, core):
    core.create_namespaced_service("default", {"metadata": {"name": "lb"}, "spec": {"ports": [{"port": 80}]}})
    dyn = DynamicClient(kubesim.api_client())
    res = dyn.resources.get(api_version="v1", kind="Service").subresources["status"]
    dyn.server_side_apply(res, body={"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
                                     "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}}},
                          name="lb", namespace="default", field_manager="cloud-controller")
    svc = core.read_namespaced_service("lb", "default")
    assert svc.status.load_balancer.ingress[0].hostname == "lb.example.com" and svc.spec.ports[0].port == 80
    entry = next(m for m in svc.metadata.managed_fields if m.manager == "cloud-controller")
    assert entry.subresource == "status" and entry.operation == "Apply"


def test_updating_a_terminating_namespace_keeps_it(kubesim, core):
    core.create_namespace({"metadata": {"name": "t"}})
    core.create_namespaced_config_map("t", {"metadata": {"name": "held", "finalizers": ["x/y"]}})
    core.delete_namespace("t")
    core.patch_namespace("t", {"metadata": {"labels": {"a": "b"}}})
    assert core.read_namespace("t").status.phase == "Terminating"
