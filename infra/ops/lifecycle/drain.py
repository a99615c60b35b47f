"""Cordon and drain nodes through the Eviction API, the way `kubectl drain` should behave at scale.

Pods are evicted, never deleted, so every PodDisruptionBudget is enforced by the API server itself;
a refusal (429) is retried with backoff for a bounded time. Several pods are evicted in parallel, so
a drain takes as long as the slowest budget allows rather than the sum of all grace periods.
DaemonSet and mirror pods stay (they belong to the node); finished pods need no eviction.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infra.ops.io.kube import Kube
from infra.ops.lifecycle.errors import DrainBlocked as DrainBlocked  # raised here; callers import it from here

ZONE = "topology.kubernetes.io/zone"
MIRROR = "kubernetes.io/config.mirror"
Events = Callable[[str, str], None]


def quiet(_event: str, _message: str) -> None:
    """Default event sink for engines used as a library."""


@dataclass(frozen=True)
class DrainPolicy:
    """How hard to push: parallel evictions, and how long to wait on budgets and terminations."""

    parallelism: int = 8
    pdb_timeout: float = 600.0
    backoff: float = 0.5
    backoff_max: float = 15.0
    poll: float = 0.2
    grace_margin: float = 30.0
    reschedule_timeout: float = 600.0


@dataclass
class DrainReport:
    evicted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refusals: int = 0
    seconds: float = 0.0


def pod_key(pod: client.V1Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def stays_on_node(pod: client.V1Pod) -> str | None:
    """Why a pod is left alone by a drain, or None when it must be evicted."""
    owners = pod.metadata.owner_references or []
    if any(owner.kind == "DaemonSet" for owner in owners):
        return "DaemonSet pod"
    if MIRROR in (pod.metadata.annotations or {}):
        return "static (mirror) pod"
    if (pod.status and pod.status.phase) in ("Succeeded", "Failed"):
        return "finished"
    return None


def claims(pod: client.V1Pod) -> list[str]:
    return [volume.persistent_volume_claim.claim_name for volume in pod.spec.volumes or []
            if volume.persistent_volume_claim]


class Drain:
    """Cordon, evict and verify, against any API server the client points at; every call through Kube.call."""

    def __init__(self, kube: Kube, policy: DrainPolicy | None = None, on_event: Events = quiet):
        self.kube, self.core = kube, kube.core
        self.policy = policy or DrainPolicy()
        self.on_event = on_event

    def nodes(self, selector: str) -> list[client.V1Node]:
        return sorted(self.kube.call(self.core.list_node, label_selector=selector).items,
                      key=lambda node: node.metadata.name)

    def _set_unschedulable(self, name: str, unschedulable: bool) -> None:
        self.kube.call(self.core.patch_node, name, {"spec": {"unschedulable": unschedulable or None}})

    def cordon(self, names: Iterable[str], unschedulable: bool = True) -> None:
        for name in names:
            self._set_unschedulable(name, unschedulable)
            self.on_event("cordon" if unschedulable else "uncordon", name)

    def pods_on(self, node_names: Iterable[str]) -> list[client.V1Pod]:
        wanted = set(node_names)
        pods = self.kube.call(self.core.list_pod_for_all_namespaces).items
        return [pod for pod in pods if pod.spec.node_name in wanted]

    def plan(self, node_names: Iterable[str]) -> tuple[list[client.V1Pod], list[client.V1Pod]]:
        """(pods to evict, pods that stay) on these nodes."""
        pods = self.pods_on(node_names)
        return ([pod for pod in pods if not stays_on_node(pod)], [pod for pod in pods if stays_on_node(pod)])

    def drain(self, node_names: list[str]) -> DrainReport:
        """Evict every evictable pod from the (already cordoned) nodes and wait until they are gone."""
        started = time.monotonic()
        evict, stay = self.plan(node_names)
        report = DrainReport(skipped=[f"{pod_key(pod)} ({stays_on_node(pod)})" for pod in stay])
        failures: list[str] = []
        with ThreadPoolExecutor(max_workers=max(1, self.policy.parallelism)) as pool:
            for pod, outcome in zip(evict, pool.map(self._evict_and_wait, evict), strict=True):
                refusals, problem = outcome
                report.refusals += refusals
                if problem:
                    failures.append(f"{pod_key(pod)}: {problem}")
                else:
                    report.evicted.append(pod_key(pod))
        report.seconds = time.monotonic() - started
        if failures:
            raise DrainBlocked(f"{len(failures)} pod(s) not drained from {', '.join(node_names)}: "
                               + "; ".join(failures))
        return report

    def _evict_and_wait(self, pod: client.V1Pod) -> tuple[int, str | None]:
        refusals, problem = self._evict(pod)
        if problem is None:
            problem = self._wait_gone(pod)
        return refusals, problem

    def _evict(self, pod: client.V1Pod) -> tuple[int, str | None]:
        """Ask for an eviction until the budget allows it; (refusals seen, problem or None)."""
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod.metadata.name,
                                                              namespace=pod.metadata.namespace))
        deadline = time.monotonic() + self.policy.pdb_timeout
        wait, refusals = self.policy.backoff, 0
        while True:
            try:
                self._post_eviction(pod, body)
                self.on_event("evict", pod_key(pod))
                return refusals, None
            except ApiException as error:
                if error.status == 404:
                    return refusals, None
                if error.status != 429:
                    return refusals, f"eviction failed ({error.status} {error.reason})"
                refusals += 1
            if time.monotonic() + wait > deadline:
                return refusals, (f"a PodDisruptionBudget refused eviction for {self.policy.pdb_timeout:.0f}s; "
                                  f"check the budget and the health of its other pods")
            time.sleep(wait)
            wait = min(wait * 2, self.policy.backoff_max)

    def _post_eviction(self, pod: client.V1Pod, body: client.V1Eviction) -> None:
        """A budget's refusal (429) is no transient failure to Kube.call: it comes back at once, for _evict's pacing."""
        self.kube.call(self.core.create_namespaced_pod_eviction, pod.metadata.name, pod.metadata.namespace, body)

    def _read_pod(self, namespace: str, name: str) -> client.V1Pod | None:
        try:
            return self.kube.call(self.core.read_namespaced_pod, name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def _wait_gone(self, pod: client.V1Pod) -> str | None:
        """Wait out the pod's own terminationGracePeriodSeconds (plus a margin) for it to disappear."""
        grace = pod.spec.termination_grace_period_seconds
        timeout = (30 if grace is None else grace) + self.policy.grace_margin
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            current = self._read_pod(pod.metadata.namespace, pod.metadata.name)
            if current is None or current.metadata.uid != pod.metadata.uid:
                return None
            time.sleep(self.policy.poll)
        return f"still terminating {timeout:.0f}s after eviction"

    def wait_zone_bound(self, evicted: Iterable[client.V1Pod], zone: str) -> list[str]:
        """Pods with volumes (zone-bound) must be Running again in the same AZ before the next AZ is drained."""
        waiting = {pod_key(pod): pod for pod in evicted if claims(pod)}
        deadline = time.monotonic() + self.policy.reschedule_timeout
        while waiting:
            for key, pod in list(waiting.items()):
                replacement = self._replacement(pod)
                if replacement is None:
                    continue
                node_zone = self._node_zone(replacement.spec.node_name)
                if node_zone != zone:
                    raise DrainBlocked(f"{pod_key(replacement)} holds a volume from {zone} but runs in {node_zone}; "
                                       f"check the storage class (volumeBindingMode: WaitForFirstConsumer)")
                self.on_event("rescheduled", f"{pod_key(replacement)} Running on {replacement.spec.node_name} "
                                             f"({zone})")
                del waiting[key]
            if waiting and time.monotonic() > deadline:
                raise DrainBlocked(f"pods with zone-bound volumes not Running again in {zone} after "
                                   f"{self.policy.reschedule_timeout:.0f}s: {', '.join(sorted(waiting))}; check "
                                   f"that the new generation has capacity in {zone}")
            if waiting:
                time.sleep(self.policy.poll)
        return sorted(waiting)

    def _replacement(self, pod: client.V1Pod) -> client.V1Pod | None:
        """The Running pod (new uid) that now mounts the evicted pod's claims."""
        wanted = set(claims(pod))
        for candidate in self.kube.call(self.core.list_namespaced_pod, pod.metadata.namespace).items:
            if (candidate.metadata.uid != pod.metadata.uid and wanted & set(claims(candidate))
                    and candidate.status and candidate.status.phase == "Running" and candidate.spec.node_name
                    and not candidate.metadata.deletion_timestamp):
                return candidate
        return None

    def _node_zone(self, name: str) -> str | None:
        return (self.kube.call(self.core.read_node, name).metadata.labels or {}).get(ZONE)
