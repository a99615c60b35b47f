"""Fail-fast rollout tracker: a state machine fed by watch events on a Deployment, its ReplicaSets, Pods and Events.

`kubectl rollout status` waits for progressDeadlineSeconds (minutes) before it admits that a pod in
ImagePullBackOff will never come up. The tracker instead looks at every pod of the new ReplicaSet as it
changes and returns a Verdict the moment a failure is certain, naming the reason, the pod and the last
event message, so a deploy can roll back in seconds.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from infra.ops.io.feed import Change, Feed, Source
from infra.ops.io.kube import Kube, KubeError

REVISION = "deployment.kubernetes.io/revision"


class Reason(StrEnum):
    """Why a rollout, a smoke check or a rollback ended: a Verdict's name, printed and recorded as written here.

    Engines and tests compare members, never the text. Container waiting reasons, OOMKilled and
    ProgressDeadlineExceeded are Kubernetes' own words for the same thing; the rest are the deploy engine's.
    """

    # ended well
    Complete = "Complete"                    # every replica of the new ReplicaSet updated, ready and available
    Applied = "Applied"                      # the workload has nothing to roll out (a CronJob, or no workload)
    SmokeCheckPassed = "SmokeCheckPassed"
    EdgeCheckPassed = "EdgeCheckPassed"      # GET https://<public host><readiness path> through DNS, ALB and TLS
    EdgeCheckSkipped = "EdgeCheckSkipped"    # the public host does not resolve from where the deploy runs
    Skipped = "Skipped"                      # no Service with an HTTP readiness probe to smoke check
    Restored = "Restored"                    # rollback: objects put back, the workload itself was not changed
    Removed = "Removed"                      # rollback of a first deploy: the created objects deleted
    # a container that will not come up (the kubelet's waiting reasons)
    ErrImagePull = "ErrImagePull"
    ImagePullBackOff = "ImagePullBackOff"
    CrashLoopBackOff = "CrashLoopBackOff"
    CreateContainerConfigError = "CreateContainerConfigError"
    InvalidImageName = "InvalidImageName"
    CreateContainerError = "CreateContainerError"
    OOMKilled = "OOMKilled"
    PodFailed = "PodFailed"                  # a pod in phase Failed that gives no reason of its own
    # the rollout as a whole
    ReadinessTimeout = "ReadinessTimeout"    # running but unready past the probes' budget
    ProgressDeadlineExceeded = "ProgressDeadlineExceeded"
    Timeout = "Timeout"                      # --timeout passed
    DeploymentDeleted = "DeploymentDeleted"
    Interrupted = "Interrupted"              # SIGINT/SIGTERM
    # the deploy's own steps
    ApplyFailed = "ApplyFailed"
    TrackingFailed = "TrackingFailed"
    SmokeCheckFailed = "SmokeCheckFailed"
    EdgeCheckFailed = "EdgeCheckFailed"
    RollbackFailed = "RollbackFailed"


# Container waiting reasons no amount of waiting fixes.
FAIL_FAST = frozenset({Reason.ErrImagePull, Reason.ImagePullBackOff, Reason.CrashLoopBackOff,
                       Reason.CreateContainerConfigError, Reason.InvalidImageName, Reason.CreateContainerError})
EVENT_WAIT_S = 0.3  # after a failure is certain, how long to wait for the event that explains it
TICK_S = 0.1


@dataclass(frozen=True)
class Progress:
    """Replica counts of a rollout, as `kubectl rollout status` words them."""

    desired: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    total: int = 0

    @property
    def old(self) -> int:
        return max(self.total - self.updated, 0)

    def __str__(self) -> str:
        return (f"{self.updated}/{self.desired} updated, {self.ready} ready, {self.available} available"
                + (f", {self.old} old" if self.old else ""))


@dataclass(frozen=True)
class Verdict:
    """How a rollout ended: ok, or the reason, the pod and the last relevant event message."""

    ok: bool
    reason: Reason | str  # a Reason, or the kubelet's own word for a failed pod (Evicted, OutOfcpu, ...), passed on
    pod: str | None = None
    message: str = ""
    elapsed_s: float = 0.0
    progress: Progress = field(default_factory=Progress)

    def __str__(self) -> str:
        where = f" (pod {self.pod})" if self.pod else ""
        detail = f": {self.message}" if self.message else ""
        return f"{self.reason}{where}{detail}"

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "reason": self.reason, "pod": self.pod, "message": self.message,
                "elapsed_s": round(self.elapsed_s, 3), "progress": str(self.progress)}


def selector_string(selector: dict[str, Any]) -> str:
    """A LabelSelector as a query string (matchLabels and matchExpressions)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr["operator"], expr["key"], ",".join(expr.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                      "DoesNotExist": f"!{key}"}[op])
    return ",".join(parts)


def _probe_budget(probe: dict[str, Any] | None) -> float:
    """Seconds a probe may keep failing before the kubelet gives up on it."""
    if not probe:
        return 0.0
    return (float(probe.get("initialDelaySeconds", 0)) + float(probe.get("periodSeconds", 10))
            * float(probe.get("failureThreshold", 3)) + float(probe.get("timeoutSeconds", 1)))


def readiness_grace(template: dict[str, Any], containers: set[str] | None = None) -> tuple[float, float]:
    """(startup, readiness) seconds a container may be running but unready, from the pod template's probes (of the
    `containers` named, default all).

    startup covers the startup probe's whole budget; readiness is how long the readiness probe may fail
    after startup before the pod is certainly not coming up (one extra period of margin).
    """
    startup, readiness = 0.0, 0.0
    for container in (template.get("spec") or {}).get("containers") or []:
        if containers is not None and container.get("name") not in containers:
            continue
        startup = max(startup, _probe_budget(container.get("startupProbe")))
        probe = container.get("readinessProbe")
        readiness = max(readiness, _probe_budget(probe) + (float(probe.get("periodSeconds", 10)) if probe else 0.0))
    return startup, readiness


def _more_telling(event: dict[str, Any], known: dict[str, Any]) -> bool:
    """Whether `event` explains a pod better than the one kept: a Warning beats a Normal (Pulling), and a
    cause ("Failed to pull image ...: not found") beats its echo ("Error: ImagePullBackOff")."""
    def rank(e: dict[str, Any]) -> int:
        if not e:
            return -1
        return (e.get("type") == "Warning") * 2 + (not str(e.get("message", "")).startswith("Error: "))
    return rank(event) >= rank(known)


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), {})


@dataclass
class Rollout:
    """Track one Deployment's rollout to a Verdict. `stop` (set by a signal handler) ends it as Interrupted."""

    kube: Kube
    namespace: str
    name: str
    timeout_s: float = 600.0
    readiness_grace_s: float | None = None  # override of the probe-derived window
    oom_limit: int = 2                      # OOMKills of one container before the verdict
    stop: threading.Event = field(default_factory=threading.Event)
    on_progress: Callable[[Progress], None] | None = None
    clock: Callable[[], float] = time.monotonic

    deployment: dict[str, Any] = field(default_factory=dict, init=False)
    replica_sets: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    events: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    _unready_since: dict[str, tuple[float, float]] = field(default_factory=dict, init=False)
    _progress: Progress = field(default_factory=Progress, init=False)

    def track(self, generation: int | None = None) -> Verdict:
        """Follow the rollout until complete, failed, timed out or stopped. `generation` is what apply returned."""
        started = self.clock()
        apps = f"/apis/apps/v1/namespaces/{self.namespace}"
        self.deployment = self.kube.request("GET", f"{apps}/deployments/{self.name}")
        generation = generation or self.deployment["metadata"].get("generation", 0)
        selector = selector_string(self.deployment["spec"].get("selector") or {})
        sources = [Source("Deployment", f"{apps}/deployments", (("fieldSelector", f"metadata.name={self.name}"),)),
                   Source("ReplicaSet", f"{apps}/replicasets", (("labelSelector", selector),)),
                   Source("Pod", f"/api/v1/namespaces/{self.namespace}/pods", (("labelSelector", selector),)),
                   Source("Event", f"/api/v1/namespaces/{self.namespace}/events")]
        with Feed(self.kube, sources) as feed:
            while True:
                verdict = self._verdict(generation, started)
                if verdict is not None:
                    if not verdict.ok and verdict.pod and verdict.reason is not Reason.Timeout:
                        verdict = self._explain(feed, verdict, generation, started)
                    return verdict
                deadline = started + self.timeout_s
                try:
                    change = feed.changes.get(timeout=max(0.0, min(TICK_S, deadline - self.clock())))
                except queue.Empty:
                    continue
                self._absorb(change)
                while True:  # drain what is queued before judging, so one judgement sees a consistent picture
                    try:
                        self._absorb(feed.changes.get_nowait())
                    except queue.Empty:
                        break

    # -- state ------------------------------------------------------------------------------------------
    def _absorb(self, change: Change) -> None:
        if change.type == "FAILED":
            raise KubeError(change.obj)
        if change.kind == "Deployment":
            if change.type == "SYNC":
                self.deployment = change.obj[0] if change.obj else {}
            else:
                self.deployment = {} if change.type == "DELETED" else change.obj
            return
        if change.kind == "Event":
            for event in (change.obj if change.type == "SYNC" else [change.obj]):
                involved = event.get("involvedObject") or {}
                key = f"{involved.get('kind')}/{involved.get('name')}"
                known = self.events.get(key) or {}
                if change.type != "DELETED" and _more_telling(event, known):
                    self.events[key] = event
            return
        table = self.replica_sets if change.kind == "ReplicaSet" else self.pods
        if change.type == "SYNC":
            table.clear()
            table.update({o["metadata"]["name"]: o for o in change.obj})
        elif change.type == "DELETED":
            table.pop(change.obj["metadata"]["name"], None)
        else:
            table[change.obj["metadata"]["name"]] = change.obj

    def _new_replica_set(self) -> dict[str, Any] | None:
        uid = self.deployment.get("metadata", {}).get("uid")
        owned = [rs for rs in self.replica_sets.values()
                 if any(o.get("uid") == uid for o in rs["metadata"].get("ownerReferences") or [])] or \
            list(self.replica_sets.values())
        revision = (self.deployment.get("metadata", {}).get("annotations") or {}).get(REVISION)
        for rs in owned:
            if revision and (rs["metadata"].get("annotations") or {}).get(REVISION) == revision:
                return rs
        return None

    def _new_pods(self) -> list[dict[str, Any]]:
        rs = self._new_replica_set()
        if rs is None:
            return []
        name, uid = rs["metadata"]["name"], rs["metadata"].get("uid")
        return [p for p in self.pods.values()
                if any(o.get("name") == name or (uid and o.get("uid") == uid)
                       for o in p["metadata"].get("ownerReferences") or [])
                and not p["metadata"].get("deletionTimestamp")]

    # -- judgement --------------------------------------------------------------------------------------
    def _verdict(self, generation: int, started: float) -> Verdict | None:
        now = self.clock()
        elapsed = now - started
        if not self.deployment:
            return Verdict(False, Reason.DeploymentDeleted, message=f"deployment {self.name} was deleted during the "
                           f"rollout", elapsed_s=elapsed)
        status = self.deployment.get("status") or {}
        progress = Progress(desired=int(self.deployment["spec"].get("replicas", 1)),
                            updated=int(status.get("updatedReplicas", 0)), ready=int(status.get("readyReplicas", 0)),
                            available=int(status.get("availableReplicas", 0)), total=int(status.get("replicas", 0)))
        if progress != self._progress:
            self._progress = progress
            if self.on_progress:
                self.on_progress(progress)
        observed = int(status.get("observedGeneration", 0)) >= generation
        if observed:
            if (progress.updated >= progress.desired and progress.total == progress.updated
                    and progress.available >= progress.updated and progress.ready >= progress.updated):
                return Verdict(True, Reason.Complete, message=str(progress), elapsed_s=elapsed, progress=progress)
            stalled = _condition(self.deployment, "Progressing")
            if stalled.get("reason") == Reason.ProgressDeadlineExceeded:
                return Verdict(False, Reason.ProgressDeadlineExceeded, message=stalled.get("message", ""),
                               elapsed_s=elapsed, progress=progress)
            failed = self._failed_pod(now)
            if failed:
                reason, pod, message = failed
                return Verdict(False, reason, pod=pod, message=message, elapsed_s=elapsed, progress=progress)
        if self.stop.is_set():
            return Verdict(False, Reason.Interrupted, message="stopped by a signal before the rollout finished",
                           elapsed_s=elapsed, progress=progress)
        if elapsed >= self.timeout_s:
            waiting = self._waiting_on()
            return Verdict(False, Reason.Timeout, pod=waiting, message=f"not complete after {self.timeout_s:g}s "
                           f"({progress})" + self._event_text(waiting), elapsed_s=elapsed, progress=progress)
        return None

    def _failed_pod(self, now: float) -> tuple[Reason | str, str, str] | None:
        """(reason, pod, detail) for the first pod of the new ReplicaSet that certainly will not come up."""
        template = self.deployment["spec"].get("template") or {}
        for pod in sorted(self._new_pods(), key=lambda p: p["metadata"]["name"]):
            name = pod["metadata"]["name"]
            status = pod.get("status") or {}
            if status.get("phase") == "Failed":
                return status.get("reason") or Reason.PodFailed, name, status.get("message", "")
            containers = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
            for container in containers:
                last = (container.get("lastState") or {}).get("terminated") or {}
                if last.get("reason") == Reason.OOMKilled:
                    if int(container.get("restartCount", 0)) >= self.oom_limit:
                        return Reason.OOMKilled, name, (f"container {container['name']} OOMKilled "
                                                   f"{container['restartCount']} times (memory limit too low?)")
                    continue  # one OOMKill can be a spike; the crash loop it causes is judged as OOMKilled
                waiting = (container.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in FAIL_FAST:
                    detail = waiting.get("message") or ""
                    if last:
                        detail = (detail + "; " if detail else "") + \
                            f"last exit: {last.get('reason', '?')} (code {last.get('exitCode', '?')})"
                    return Reason(waiting["reason"]), name, f"container {container['name']}: {detail}".rstrip(": ")
            ready = _condition(pod, "Ready").get("status") == "True"
            running = status.get("phase") == "Running" and all(
                (c.get("state") or {}).get("running") for c in status.get("containerStatuses") or [])
            # Only a probe can hold a running container unready: Kubernetes counts one without a readiness probe
            # ready once it runs (and has started), so a pod whose unready containers have no probe left to pass is
            # waiting on its status (or a readiness gate), not failing; the rollout's own deadlines still bound it.
            # An explicit grace judges every pod.
            unready = {c.get("name") for c in status.get("containerStatuses") or [] if not c.get("ready")}
            startup, readiness = readiness_grace(template, unready)
            started = all(c.get("started") for c in status.get("containerStatuses") or [])
            held = readiness > 0 or (startup > 0 and not started) or self.readiness_grace_s is not None
            if ready or not running or not held:
                self._unready_since.pop(name, None)
                continue
            since, budget = self._unready_since.get(name, (now, startup + readiness))
            if started and budget > readiness:
                since, budget = now, readiness  # startup probe passed: only the readiness budget is left
            self._unready_since[name] = (since, budget)
            grace = self.readiness_grace_s if self.readiness_grace_s is not None else budget
            if now - since > grace:
                return Reason.ReadinessTimeout, name, (f"running but not ready for {now - since:.1f}s (grace {grace:g}s "
                                                       f"from the probe settings)")
        return None

    def _waiting_on(self) -> str | None:
        unready = [p["metadata"]["name"] for p in self._new_pods() if _condition(p, "Ready").get("status") != "True"]
        return sorted(unready)[0] if unready else None

    def _event_text(self, pod: str | None) -> str:
        event = self.events.get(f"Pod/{pod}") if pod else None
        return f"; event: {event.get('reason', '')}: {event.get('message', '')}" if event else ""

    def _explain(self, feed: Feed, verdict: Verdict, generation: int, started: float) -> Verdict:
        """Wait briefly for the pod's event (it usually lands a moment after the status) and attach its message."""
        until = self.clock() + EVENT_WAIT_S
        while (self.events.get(f"Pod/{verdict.pod}") or {}).get("type") != "Warning" and self.clock() < until:
            try:
                self._absorb(feed.changes.get(timeout=max(0.0, until - self.clock())))
            except queue.Empty:
                break
        event = self.events.get(f"Pod/{verdict.pod}")
        if not event:
            return verdict
        message = f"{verdict.message}; event {event.get('reason', '')}: {event.get('message', '')}".lstrip("; ")
        return Verdict(False, verdict.reason, pod=verdict.pod, message=message, elapsed_s=verdict.elapsed_s,
                       progress=verdict.progress)
