"""Fail-fast verdicts: each failure reason is detected in seconds, named with its pod and event, and rolled back
to exactly the previous version (kubesim over HTTP, ECR on moto server)."""
from __future__ import annotations

import json

import pytest

from infra.ops.deploy import history, snapshot
from infra.ops.deploy import pipeline as deploy
from infra.ops.deploy import target as catalog
from infra.ops.deploy.rollout import Reason
from tests.support.deploy_world import NAMESPACE

FAILURES = [  # kubesim behaviour of the new image -> verdicts that name it
    ("ErrImagePull", {Reason.ErrImagePull, Reason.ImagePullBackOff}),
    ("ImagePullBackOff", {Reason.ErrImagePull, Reason.ImagePullBackOff}),
    ("CrashLoopBackOff", {Reason.CrashLoopBackOff}),
    ("CreateContainerConfigError", {Reason.CreateContainerConfigError}),
    ("InvalidImageName", {Reason.InvalidImageName}),
    ("OOMKilled", {Reason.OOMKilled}),
    ("NeverReady", {Reason.ReadinessTimeout}),
]


def test_success_records_history_and_change_cause(deploy_env):
    record = deploy_env.engine("v1").run()
    assert record.ok and record.verdict == Reason.Complete and record.tag == "v1"
    live = deploy_env.deployment()
    assert live["metadata"]["annotations"][history.CHANGE_CAUSE].startswith("deploy api:v1 by tester@ci pid 1 at ")
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == deploy_env.image("v1")
    assert deploy_env.running_images() == {deploy_env.image("v1")}
    assert [r.tag for r in history.read(deploy_env.kube, NAMESPACE, "api")] == ["v1"]
    assert '"event": "verdict"' in deploy_env.output and '"reason": "Complete"' in deploy_env.output
    # the field manager owns only this service's objects (plus the shared ones it references)
    owned = deploy_env.kube.request("GET", f"/api/v1/namespaces/{NAMESPACE}/services/api")
    assert {m["manager"] for m in owned["metadata"]["managedFields"]} >= {"eks-platform-deploy-api"}


@pytest.mark.parametrize("behavior,reasons", FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_is_named_and_rolled_back(deployed_v1, behavior, reasons):
    env = deployed_v1
    before = snapshot.clean(env.deployment())["spec"]
    env.cluster.script_image(env.image("v2"), behavior)
    with pytest.raises(deploy.DeployFailed) as failed:
        env.engine("v2", readiness_grace_s=1.0).run()
    record = history.read(env.kube, NAMESPACE, "api")[-1]
    assert record.verdict in reasons and not record.ok and record.rolled_back, record
    assert "pod api-" in str(failed.value) and record.verdict in str(failed.value)
    assert "rolled back (Complete" in str(failed.value)
    after = snapshot.clean(env.deployment())["spec"]
    assert after["template"] == before["template"]  # exactly the previous pod template
    env.cluster.wait_for(lambda: env.running_images() == {env.image("v1")}, timeout=30,
                         message="only v1 pods running and ready")


def test_image_pull_verdict_names_the_event_message(deployed_v1):
    env = deployed_v1
    env.cluster.script_image(env.image("v2"), "ImagePullBackOff")
    with pytest.raises(deploy.DeployFailed, match=r"Failed to pull image .*api:v2"):
        env.engine("v2").run()


def test_no_rollback_leaves_the_failed_version_for_debugging(deployed_v1):
    env = deployed_v1
    env.cluster.script_image(env.image("v2"), "CrashLoopBackOff")
    with pytest.raises(deploy.DeployFailed, match="CrashLoopBackOff"):
        env.engine("v2", rollback=False).run()
    assert env.deployment()["spec"]["template"]["spec"]["containers"][0]["image"] == env.image("v2")
    assert not history.read(env.kube, NAMESPACE, "api")[-1].rolled_back


def test_overall_timeout(deployed_v1):
    env = deployed_v1
    env.cluster.script_image(env.image("v2"), "Ready", delay=600)  # starts, but far too slowly
    with pytest.raises(deploy.DeployFailed, match=r"Timeout .*not complete after 1s"):
        env.engine("v2", timeout_s=1, readiness_grace_s=60).run()
    env.cluster.wait_for(lambda: env.running_images() == {env.image("v1")}, timeout=30, message="v1 back")


def test_progress_deadline_exceeded(deployed_v1):
    env = deployed_v1
    env.cluster.script_image(env.image("v2"), "Ready", delay=600)
    live = env.deployment()
    # a short progress deadline (simulated seconds) so the controller gives up before our own timeout
    env.kube.request("PATCH", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/api",
                     body={"spec": {"progressDeadlineSeconds": 10}}, content_type="application/merge-patch+json")
    assert live["spec"]["progressDeadlineSeconds"] == 300
    engine = env.engine("v2", readiness_grace_s=600)
    objects = [o for o in catalog.render(engine.target, env.image("v2"))]
    for obj in objects:
        if obj["kind"] == "Deployment":
            obj["spec"]["progressDeadlineSeconds"] = 10
    applied = snapshot.apply_all(env.kube, objects, engine.target.manager)
    verdict = engine.track(applied, "rollout")
    assert verdict.reason is Reason.ProgressDeadlineExceeded and "progress" in verdict.message.lower()


def test_first_deploy_failure_removes_what_it_created(deploy_env):
    deploy_env.cluster.script_image(deploy_env.image("v1"), "CrashLoopBackOff")
    with pytest.raises(deploy.DeployFailed, match="rolled back \\(Removed"):
        deploy_env.engine("v1").run()
    assert deploy_env.kube.get({"apiVersion": "apps/v1", "kind": "Deployment",
                                "metadata": {"name": "api", "namespace": NAMESPACE}}) is None


def test_rollback_keeps_what_other_managers_own(deployed_v1):
    """An HPA's replica count and another tool's annotation survive a failed deploy and the next good one."""
    env = deployed_v1
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/api"
    scale = env.kube.request("GET", f"{path}/scale")
    scale["spec"]["replicas"] = 2
    env.kube.request("PUT", f"{path}/scale", body=scale, query=[("fieldManager", "horizontal-pod-autoscaler")])
    env.kube.request("PATCH", path, body={"metadata": {"annotations": {"example.com/owner": "team-a"}}},
                     query=[("fieldManager", "other-tool")], content_type="application/merge-patch+json")
    env.cluster.wait_for(lambda: env.deployment()["status"].get("availableReplicas") == 2, timeout=30,
                         message="2 replicas")
    env.cluster.script_image(env.image("v2"), "CrashLoopBackOff")
    with pytest.raises(deploy.DeployFailed, match="rolled back \\(Complete"):
        env.engine("v2").run()
    env.engine("v3").run()
    live = env.deployment()
    assert live["spec"]["replicas"] == 2
    assert live["metadata"]["annotations"]["example.com/owner"] == "team-a"
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == env.image("v3")


def test_restore_puts_back_exactly_the_previous_objects(deployed_v1):
    """Image, env and config data all change in one apply; restore brings every object back field for field."""
    env = deployed_v1
    engine = env.engine("v2")
    objects = catalog.render(engine.target, env.image("v2"))
    for obj in objects:
        if obj["kind"] == "Deployment":
            obj["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "FEATURE_X", "value": "on"})
        if obj["kind"] == "ConfigMap":
            obj["data"] = {key: value + "\n# changed" for key, value in obj["data"].items()}
    before = {snapshot.ref(o): snapshot.clean(env.kube.get(o)) for o in objects}
    captured = snapshot.Snapshot.capture(env.kube, objects, engine.target.manager)
    snapshot.apply_all(env.kube, objects, engine.target.manager)
    assert snapshot.clean(env.deployment())["spec"]["template"] != before[f"Deployment/{NAMESPACE}/api"]["spec"]["template"]
    snapshot.restore(env.kube, captured, objects, engine.target.manager, "api")
    after = {snapshot.ref(o): snapshot.clean(env.kube.get(o)) for o in objects}
    for key in before:  # the Deployment's status-driven revision annotation aside, identical
        assert after[key] == before[key], "\n".join([key, *snapshot.diff(before[key], after[key])])


def test_smoke_check_failure_rolls_back(deployed_v1):
    env = deployed_v1
    env.cluster.script_proxy(NAMESPACE, "api", path="/readyz", status=503, body="db down")
    # The smoke budget bounds the check: the app's 503 must not also burn the API client's own retry budget.
    # With that budget at an hour, a check that went through it would hang here until pytest's timeout.
    env.kube.retry_budget_s = 3600
    with pytest.raises(deploy.DeployFailed, match=r"SmokeCheckFailed: GET /readyz via service api answered 503"):
        env.engine("v2", smoke_budget_s=0.5).run()
    assert catalog.service_image([env.deployment()], "api") == env.image("v1")


def test_smoke_check_retries_a_slow_start(deployed_v1):
    env = deployed_v1
    env.cluster.script_proxy(NAMESPACE, "api", path="/readyz", status=200, body="ok")
    env.cluster.script_proxy(NAMESPACE, "api", path="/readyz", status=503, times=2)
    assert env.engine("v2", smoke_budget_s=120).run().ok  # the check ends at the first 200; the budget only bounds it
    assert '"event": "smoke"' in env.output and "SmokeCheckPassed" in env.output


def test_worker_without_service_and_cron_scheduler(deploy_env):
    worker = deploy_env.engine("v1", service="worker").run()
    assert worker.ok and "Skipped: no Service" in deploy_env.output
    scheduler = deploy_env.engine("v1", service="scheduler").run()
    assert scheduler.ok and scheduler.verdict == Reason.Applied
    cron = deploy_env.kube.request("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/cronjobs/scheduler")
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith("/scheduler:v1")


def test_refused_apply_changes_nothing_and_names_the_conflict(deployed_v1):
    env = deployed_v1
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/api"
    env.kube.request("PATCH", path, body={"spec": {"template": {"spec": {"containers": [
        {"name": "api", "image": env.image("v3")}]}}}}, query=[("fieldManager", "kubectl-set")],
        content_type="application/strategic-merge-patch+json")
    before = env.deployment()
    with pytest.raises(deploy.DeployFailed, match=r"ApplyFailed: applying Deployment/apps-dev/api: .*conflict.*"
                                                  r"--force-conflicts"):
        env.engine("v2").run()
    after = env.deployment()
    assert catalog.service_image([after], "api") == env.image("v3")  # the incident fix is still in place
    assert after["metadata"]["managedFields"] == before["metadata"]["managedFields"]
    assert env.engine("v2", force_conflicts=True).run().ok


def test_rollback_does_not_take_over_allocated_fields(deployed_v1):
    """After a rollback, the next dry-run shows no change to the Service: its clusterIP stays the server's."""
    env = deployed_v1
    env.cluster.script_image(env.image("v2"), "CrashLoopBackOff")
    with pytest.raises(deploy.DeployFailed):
        env.engine("v2").run()
    service = env.kube.request("GET", f"/api/v1/namespaces/{NAMESPACE}/services/api")
    assert not any("clusterIP" in json.dumps(m.get("fieldsV1")) for m in service["metadata"]["managedFields"])
    lines = env.engine("v1", dry_run=True).run()
    assert not any("clusterIP" in line for line in lines), lines
