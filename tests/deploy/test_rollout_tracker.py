"""The rollout tracker on its own, against kubesim over HTTP: the readiness grace comes from the probes."""
from __future__ import annotations

import io
import json
import time

from infra.ops.deploy.report import Reporter
from infra.ops.deploy.rollout import Reason, Rollout, Verdict
from infra.ops.io.kube import from_kubeconfig


def _deployment(image: str) -> dict:
    probe = {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1,
             "timeoutSeconds": 1}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                         {"name": "web", "image": image, "readinessProbe": probe}]}}}}


def test_unready_pod_fails_after_the_probe_budget(kubesim):
    """periodSeconds 1 x failureThreshold 1 + timeout 1 + one period of margin = 3 s of wall time."""
    kube = from_kubeconfig(kubesim.kubeconfig)
    kubesim.script_image("repo/web:stuck", "NeverReady")
    applied = kube.apply(_deployment("repo/web:stuck"), "test")
    started = time.monotonic()
    verdict = Rollout(kube, "default", "web", timeout_s=30).track(applied["metadata"]["generation"])
    took = time.monotonic() - started
    assert verdict.reason is Reason.ReadinessTimeout and verdict.pod.startswith("web-")
    assert "grace 3s from the probe settings" in verdict.message
    assert took >= 3  # not before the probe budget (a lower bound: load only adds to it); the reason and the
    # grace in the message show it was the probe budget that ended it, not timeout_s


def test_a_pod_without_probes_is_not_judged_unready(kubesim):
    """Kubernetes counts a container without a readiness probe ready once it runs: while its pod's Ready condition
    catches up (here the app takes 5 s), there is no probe budget to run out, so the rollout completes (it once
    ended as "ReadinessTimeout: running but not ready for 0.0s", failing every rollback of such a Deployment)."""
    kube = from_kubeconfig(kubesim.kubeconfig)
    kubesim.script_image("repo/web:plain", "Ready:delay=5")
    manifest = _deployment("repo/web:plain")
    del manifest["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    applied = kube.apply(manifest, "test")
    seen: list[int] = []
    verdict = Rollout(kube, "default", "web", timeout_s=60, on_progress=lambda p: seen.append(p.ready)).track(
        applied["metadata"]["generation"])
    assert verdict.ok and verdict.reason is Reason.Complete, verdict
    assert seen[-1] == 1


def test_progress_is_reported_as_replicas_change(kubesim):
    kube = from_kubeconfig(kubesim.kubeconfig)
    seen = []
    paused = _deployment("repo/web:1")
    paused["spec"]["paused"] = True  # nothing rolls before the tracker's first look, however slow the machine

    def on_progress(progress):
        seen.append(progress)
        if len(seen) == 1:
            kube.apply(_deployment("repo/web:1"), "test")  # resume the rollout
    applied = kube.apply(paused, "test")
    verdict = Rollout(kube, "default", "web", timeout_s=60, on_progress=on_progress).track(
        applied["metadata"]["generation"])
    assert verdict.ok and verdict.reason is Reason.Complete
    assert seen[0].ready == 0 and seen[-1].ready == seen[-1].desired == 1 and len(seen) >= 2


def test_reasons_are_compared_as_members_and_printed_as_their_words():
    """Verdicts, progress lines, JSON logs and the history record print a Reason as the plain word it names."""
    verdict = Verdict(False, Reason.CrashLoopBackOff, pod="web-1", message="container web: back-off")
    assert str(verdict) == "CrashLoopBackOff (pod web-1): container web: back-off"
    assert json.dumps(verdict.to_json()).startswith('{"ok": false, "reason": "CrashLoopBackOff"')
    stream = io.StringIO()
    Reporter(mode="plain", stream=stream).event("verdict", reason=verdict.reason)
    assert stream.getvalue() == "event=verdict reason=CrashLoopBackOff\n"
    assert f"{Reason.Complete}" == "Complete" and Reason("ReadinessTimeout") is Reason.ReadinessTimeout
    assert all(member.value == member.name for member in Reason)  # `Reason(word)` finds the member a word names
