"""Deploy safety: dry-run changes nothing, one deploy at a time (Lease with expiry), API faults and dropped watches
do not change the verdict, hand rollback, history, notifications, no secrets in output (kubesim + moto server)."""
from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from infra.identity import repository_name
from infra.ops.deploy import history
from infra.ops.deploy import pipeline as deploy
from infra.ops.deploy import target as catalog
from infra.ops.deploy.lock import DeployLock, LockHeld
from infra.ops.deploy.requests import HistoryRequest, RollbackRequest
from infra.ops.deploy.rollout import Reason
from tests.support.deploy_world import NAMESPACE, REGION


def _versions(env) -> dict[str, str]:
    found = {}
    for path in (f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", f"/api/v1/namespaces/{NAMESPACE}/services",
                 f"/api/v1/namespaces/{NAMESPACE}/configmaps"):
        for item in env.kube.request("GET", path)["items"]:
            found[f"{item['kind'] if 'kind' in item else path}/{item['metadata']['name']}"] = \
                item["metadata"]["resourceVersion"]
    return found


def test_dry_run_changes_nothing_and_shows_the_diff(deployed_v1):
    env = deployed_v1
    before = _versions(env)
    lines = env.engine("v2", dry_run=True).run()
    text = "\n".join(lines)
    assert f"-        image: {env.image('v1')}" in text and f"+        image: {env.image('v2')}" in text
    assert _versions(env) == before
    assert env.running_images() == {env.image("v1")}
    assert [r.tag for r in history.read(env.kube, NAMESPACE, "api")] == ["v1"]


def test_dry_run_of_unchanged_service_is_empty_apart_from_change_cause(deployed_v1):
    lines = deployed_v1.engine("v1", dry_run=True).run()
    changed = [line for line in lines if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert all("change-cause" in line for line in changed), changed


def test_concurrent_deploy_is_refused_with_holder_and_time(deployed_v1):
    env = deployed_v1
    with DeployLock(env.kube, NAMESPACE, "api", holder="alice@laptop pid 7"):
        with pytest.raises(LockHeld, match=r"in progress by alice@laptop pid 7 since \d{4}-\d\d-\d\d"):
            env.engine("v2").run()
        assert env.running_images() == {env.image("v1")}
    env.engine("v2").run()  # released: the next deploy goes through
    assert env.running_images() == {env.image("v2")}


def test_stale_lock_expires_and_is_taken_over(deployed_v1):
    env = deployed_v1
    stale = (datetime.now(UTC) - timedelta(seconds=120)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    env.kube.request("POST", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases", body={
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "deploy-api"},
        "spec": {"holderIdentity": "killed@ci pid 1", "leaseDurationSeconds": 60, "acquireTime": stale,
                 "renewTime": stale}})
    assert env.engine("v2").run().ok
    leases = env.kube.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases")["items"]
    assert leases == []  # released after the deploy


def test_lock_is_renewed_while_held(deploy_env):
    lock = DeployLock(deploy_env.kube, NAMESPACE, "api", holder="me", lease_s=3)
    with lock:
        first = lock._lease["spec"]["renewTime"]
        deploy_env.cluster.wait_for(lambda: lock._lease["spec"]["renewTime"] != first, timeout=60,
                                    message="a lease renewal")  # every lease_s / 3, later on a loaded machine


def test_api_errors_and_dropped_watches_mid_rollout_keep_the_verdict(deployed_v1):
    env = deployed_v1
    env.cluster.script_image(env.image("v2"), "Ready", delay=20)  # ~1 s of wall time to become ready
    env.cluster.inject_fault(None, r"/pods", status=503, times=3)
    env.cluster.inject_fault(None, r"/replicasets", status=429, times=2)
    env.cluster.inject_fault("GET", r"/deployments/api$", status=500, times=2)
    stop = threading.Event()

    def chaos():
        while not stop.wait(0.25):
            env.cluster.drop_watches(abrupt=True)
            env.cluster.compact()  # resuming watches get 410 Gone and must re-list

    thread = threading.Thread(target=chaos, daemon=True)
    thread.start()
    try:
        record = env.engine("v2", readiness_grace_s=30).run()
    finally:
        stop.set()
        thread.join()
    assert record.ok and record.verdict == Reason.Complete
    assert env.running_images() == {env.image("v2")}


def test_api_errors_do_not_hide_a_failure(deployed_v1):
    env = deployed_v1
    env.cluster.script_image(env.image("v2"), "CrashLoopBackOff")
    env.cluster.inject_fault(None, r"/pods", status=503, times=2)
    env.cluster.drop_watches(abrupt=True)
    with pytest.raises(deploy.DeployFailed, match="CrashLoopBackOff"):
        env.engine("v2").run()
    env.cluster.wait_for(lambda: env.running_images() == {env.image("v1")}, timeout=30, message="v1 back")


def test_rollback_by_hand_to_previous_and_to_revision(deployed_v1):
    env = deployed_v1
    env.engine("v2").run()
    env.engine("v3").run()
    api = catalog.resolve("api", "dev")
    record = deploy.rollback(env.kube, RollbackRequest(api, who="tester"), reporter=env.engine("v1").reporter)
    assert record.ok and record.action == "rollback" and record.revision == "2"
    env.cluster.wait_for(lambda: env.running_images() == {env.image("v2")}, timeout=30, message="v2 back")
    record = deploy.rollback(env.kube, RollbackRequest(api, to_revision=1, who="tester"))
    assert record.image == env.image("v1")
    env.cluster.wait_for(lambda: env.running_images() == {env.image("v1")}, timeout=30, message="v1 back")
    with pytest.raises(deploy.BadInput, match="--to-revision 99 is not a revision"):
        deploy.rollback(env.kube, RollbackRequest(api, to_revision=99))
    actions = [(r.action, r.tag) for r in history.recorded(env.kube, HistoryRequest(api))]  # `invoke history`'s
    assert actions == [("deploy", "v1"), ("deploy", "v2"), ("deploy", "v3"), ("rollback", "v2"), ("rollback", "v1")]


def test_history_is_bounded(deploy_env):
    record = history.DeployRecord(service="api", env="dev", action="deploy", tag="t", image="i", who="w",
                                  started="s", finished="f", verdict=Reason.Complete, ok=True)
    for n in range(7):
        history.append(deploy_env.kube, NAMESPACE, record.__class__(**{**record.__dict__, "tag": f"t{n}"}), keep=5)
    assert [r.tag for r in history.read(deploy_env.kube, NAMESPACE, "api")] == ["t2", "t3", "t4", "t5", "t6"]


def test_webhook_and_step_summary_after_a_failed_deploy(deployed_v1, webhook, tmp_path, monkeypatch):
    url, received = webhook
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("DEPLOY_WEBHOOK_URL", f"{url}/hooks/T0/B0/XXSECRETXX")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    env = deployed_v1
    env.cluster.script_image(env.image("v2"), "CrashLoopBackOff")
    with pytest.raises(deploy.DeployFailed):
        env.engine("v2").run()
    body = received[-1]
    assert body["text"].startswith(":x: deploy api:v2 to dev failed: CrashLoopBackOff; rolled back (Complete")
    assert body["deploy"]["image"] == env.image("v2") and body["deploy"]["who"] == "tester@ci pid 1"
    text = summary.read_text()
    assert "### :x: deploy api:v2 to dev failed: CrashLoopBackOff" in text and "| verdict | CrashLoopBackOff |" in text
    assert "XXSECRETXX" not in env.output + text + json.dumps(body)


def test_a_step_summary_that_cannot_be_written_leaves_the_deploy_as_it_ended(deploy_env, tmp_path, monkeypatch):
    """GITHUB_STEP_SUMMARY at a directory: the deploy still succeeds, and says the summary was not written."""
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))
    record = deploy_env.engine("v1").run()
    assert record.ok and deploy_env.running_images() == {deploy_env.image("v1")}
    warnings = [json.loads(line) for line in deploy_env.output.splitlines() if '"warning"' in line]
    assert [w["message"] for w in warnings if "step summary" in w["message"]] == [
        f"warning: step summary not written to GITHUB_STEP_SUMMARY={tmp_path} (Is a directory); deploy result stands"]


def test_no_secret_values_in_any_output(deploy_env, fake_docker, webhook, tmp_path, monkeypatch):
    """Build path: the ECR password goes to docker's stdin only; the webhook token and EKS-style bearer never print."""
    url, received = webhook
    monkeypatch.setenv("DEPLOY_WEBHOOK_URL", f"{url}/hooks/XXSECRETXX")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.setattr(deploy, "git_tag", lambda repo, allow_dirty=False: "v3")
    deploy_env.ecr.batch_delete_image(repositoryName=repository_name("dev", "api"), imageIds=[{"imageTag": "v3"}])
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api-db", "namespace": NAMESPACE},
              "stringData": {"password": "XXDBPASSWORDXX"}}
    deploy_env.kube.request("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", body=secret)
    deploy_env.cluster.script_image(deploy_env.image("v3"), "Ready")
    engine = deploy_env.engine(None, context=context)  # no --tag: build (git_tag says v3) and push
    record = engine.run()
    password = boto3.client("ecr", region_name=REGION).get_authorization_token()["authorizationData"][0]
    logged = [json.loads(line) for line in fake_docker.read_text().splitlines()]
    assert logged[0]["stdin"]  # the password went to docker login on stdin
    outputs = deploy_env.output + json.dumps(received) + (tmp_path / "summary.md").read_text() + \
        json.dumps(record.__dict__) + json.dumps([r.__dict__ for r in history.read(deploy_env.kube, NAMESPACE, "api")])
    for value in (logged[0]["stdin"], password["authorizationToken"], "XXSECRETXX", "XXDBPASSWORDXX"):
        assert value not in outputs
