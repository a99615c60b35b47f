"""kubesim Endpoints controller, pod logs and Jobs."""
from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.support.kube_objects import deployment, rolled_out


@pytest.fixture
def core(kubesim):
    return client.CoreV1Api(kubesim.api_client())


def test_endpoints_follow_ready_pods(kubesim, core):
    apps = client.AppsV1Api(kubesim.api_client())
    body = deployment(replicas=2)
    body["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 8080}]
    apps.create_namespaced_deployment("default", body)
    core.create_namespaced_service("default", {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    kubesim.wait_for(lambda: rolled_out(apps))
    ep = kubesim.wait_for(lambda: (lambda e: e.subsets and len(e.subsets[0].addresses or []) == 2 and e)(
        core.read_namespaced_endpoints("web", "default")))
    assert ep.subsets[0].ports[0].port == 8080 and ep.subsets[0].addresses[0].target_ref.kind == "Pod"
    kubesim.script_image("repo/app:2", "NeverReady")
    apps.patch_namespaced_deployment("web", "default", {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "repo/app:2"}]}}}})
    kubesim.wait_for(lambda: (core.read_namespaced_endpoints("web", "default").subsets[0].not_ready_addresses or []))


def test_pod_logs_scripted_and_waiting(kubesim, core):
    kubesim.script_logs("repo/app:1", "line one\nline two")
    core.create_namespaced_pod("default", {"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "app", "image": "repo/app:1"}]}})
    kubesim.script_image("repo/app:bad", "ErrImagePull")
    core.create_namespaced_pod("default", {"metadata": {"name": "bad"}, "spec": {
        "containers": [{"name": "app", "image": "repo/app:bad"}]}})
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/p")["status"].get("phase") == "Running")
    assert core.read_namespaced_pod_log("p", "default") == "line one\nline two\n"
    assert core.read_namespaced_pod_log("p", "default", tail_lines=1) == "line two\n"
    kubesim.wait_for(lambda: kubesim.store.get("pods/default/bad")["status"].get("containerStatuses"))
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod_log("bad", "default")
    assert e.value.status == 400 and "is waiting to start" in e.value.body


def _job(name, image="repo/migrate:1", **spec):
    return {"metadata": {"name": name}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "m", "image": image}]}}, **spec}}


def test_jobs_complete_or_fail(kubesim):
    batch = client.BatchV1Api(kubesim.api_client())
    batch.create_namespaced_job("default", _job("migrate"))
    job = kubesim.wait_for(lambda: (lambda j: j.status and j.status.succeeded == 1 and j)(
        batch.read_namespaced_job("migrate", "default")))
    assert [c.type for c in job.status.conditions] == ["Complete"] and job.status.completion_time
    kubesim.script_image("repo/migrate:bad", "Failed", delay=0.2)
    batch.create_namespaced_job("default", _job("broken", "repo/migrate:bad", backoffLimit=1))
    job = kubesim.wait_for(lambda: (lambda j: j.status and j.status.conditions and j)(
        batch.read_namespaced_job("broken", "default")))
    assert job.status.conditions[0].type == "Failed" and job.status.conditions[0].reason == "BackoffLimitExceeded"
    assert job.status.failed == 2
