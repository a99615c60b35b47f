"""`invoke deploy` end to end in a subprocess: Ctrl-C/SIGTERM mid-rollout rolls back, frees the lock, exits 130;
`invoke history` prints what happened (kubesim + moto server over HTTP)."""
from __future__ import annotations

import json
import signal
import subprocess

import pytest

from infra.ops.deploy import history
from infra.ops.deploy.rollout import Reason
from tests.support.cli import invoke, spawn
from tests.support.deploy_world import NAMESPACE
from tests.support.identity import declare_identity


@pytest.fixture(autouse=True)
def dev_identity(kubesim):
    """The tasks prove the cluster is dev's before touching it; the emulated cluster says so, as dev's does."""
    declare_identity(kubesim, "dev")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_rollout_rolls_back_and_exits_130(deployed_v1, signum):
    env = deployed_v1
    env.cluster.script_image(env.image("v2"), "NeverReady")
    proc = spawn("deploy", "api", "--env", "dev", "--tag", "v2", "--allow-dirty", "--kubeconfig",
                 env.cluster.kubeconfig, "--readiness-grace", "120", "--json-logs",
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        env.cluster.wait_for(lambda: any(c["image"] == env.image("v2") for p in env.cluster.pods(NAMESPACE)
                                         for c in p["spec"]["containers"]), timeout=30, message="a v2 pod")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "interrupted: " in err and "rolled back (Complete" in err
    events = [json.loads(line)["event"] for line in out.splitlines() if line.startswith("{")]
    assert events[-2:] == ["rollback", "rollback-verdict"] or "rollback-verdict" in events
    env.cluster.wait_for(lambda: env.running_images() == {env.image("v1")}, timeout=30, message="v1 only")
    assert env.kube.request("GET", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases")["items"] == []
    record = history.read(env.kube, NAMESPACE, "api")[-1]
    assert (record.tag, record.verdict, record.rolled_back) == ("v2", Reason.Interrupted, True)


def test_invoke_deploy_failure_then_history(deployed_v1):
    env = deployed_v1
    env.cluster.script_image(env.image("v2"), "ErrImagePull")
    run = invoke("deploy", "api", "--env", "dev", "--tag", "v2", "--allow-dirty", "--kubeconfig",
                 env.cluster.kubeconfig)
    assert run.returncode == 1 and "failed: " in run.stderr and "rolled back (Complete" in run.stderr
    assert "event=verdict" in run.stdout and "ok=False" in run.stdout  # not a TTY: structured lines
    run = invoke("history", "api", "--env", "dev", "--kubeconfig", env.cluster.kubeconfig, "--json")
    records = json.loads(run.stdout)
    assert [(r["tag"], r["ok"], r["rolled_back"]) for r in records] == [("v1", True, False), ("v2", False, True)]
    assert records[-1]["verdict"] in (Reason.ErrImagePull, Reason.ImagePullBackOff)


def test_missing_tag_exits_2_and_changes_nothing(deploy_env):
    run = invoke("deploy", "api", "--env", "dev", "--tag", "nope", "--kubeconfig", deploy_env.cluster.kubeconfig)
    assert run.returncode == 2
    assert run.stderr.strip() == ("error: --tag nope is not in ECR repository eks-platform/dev/api; push it first or omit --tag to "
                                  "build the current commit")
    assert deploy_env.kube.request("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments")["items"] == []


def test_invoke_rollback_by_hand(deployed_v1):
    env = deployed_v1
    env.engine("v2").run()
    run = invoke("rollback", "api", "--env", "dev", "--kubeconfig", env.cluster.kubeconfig, "--json-logs")
    assert run.returncode == 0, run.stderr
    done = json.loads(run.stdout.splitlines()[-1])
    assert done["event"] == "done" and f"rolled back to revision 1 ({env.image('v1')})" in done["message"]
    env.cluster.wait_for(lambda: env.running_images() == {env.image("v1")}, timeout=30, message="v1 back")
