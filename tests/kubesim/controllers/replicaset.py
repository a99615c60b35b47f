"""ReplicaSet controller: keeps `spec.replicas` active pods and reports ready/available counts.

Scale-down picks victims as the real controller ranks them: unscheduled before scheduled,
pending before running, not ready before ready, then the newest first.
"""
from __future__ import annotations

import random
import string
import time

from ..api import is_pod_ready
from ..resources import lookup
from ..store import clone

PODS = lookup("", "v1", "pods")
RS = lookup("apps", "v1", "replicasets")


def owned_by(obj: dict, owner: dict) -> bool:
    uid = owner["metadata"]["uid"]
    return any(r.get("uid") == uid and r.get("controller") for r in obj["metadata"].get("ownerReferences") or [])


def owner_ref(owner: dict) -> dict:
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def is_active(pod: dict) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get("phase") not in (
        "Succeeded", "Failed")


def pod_from_template(owner: dict, name: str, extra_labels: dict | None = None) -> dict:
    template = owner["spec"]["template"]
    meta = clone(template.get("metadata") or {})
    meta.update(name=name, namespace=owner["metadata"]["namespace"], ownerReferences=[owner_ref(owner)])
    meta["labels"] = dict(meta.get("labels") or {}, **(extra_labels or {}))
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": clone(template.get("spec") or {})}
    return pod


def owners_with_children(store, owner_rt, child_rt=PODS) -> list[tuple[dict, list[dict]]]:
    """Live (not deleting) owners of one type, each with the children it controls."""
    owners, _ = store.list(owner_rt)
    if not owners:
        return []
    children, _ = store.list(child_rt)
    return [(o, [c for c in children if owned_by(c, o)]) for o in owners if not o["metadata"].get("deletionTimestamp")]


class Availability:
    """Tracks when each pod became Ready, for minReadySeconds (scaled by the time factor)."""

    def __init__(self, cluster):
        self.c = cluster
        self._ready_since: dict[str, float] = {}

    def available(self, pod: dict, min_ready_seconds: int) -> bool:
        uid = pod["metadata"]["uid"]
        if not is_pod_ready(pod):
            self._ready_since.pop(uid, None)
            return False
        since = self._ready_since.setdefault(uid, time.monotonic())
        return time.monotonic() - since >= min_ready_seconds * self.c.time_factor


class ReplicaSetController:
    watches = ("apps/replicasets", "core/pods")
    periodic = 0.05  # minReadySeconds

    def __init__(self, cluster, availability: Availability):
        self.c = cluster
        self.availability = availability

    def sync(self) -> None:
        for rs, pods in owners_with_children(self.c.store, RS):
            self._sync(rs, pods)

    def _sync(self, rs: dict, pods: list[dict]) -> None:
        meta, spec = rs["metadata"], rs["spec"]
        active = [p for p in pods if is_active(p)]
        diff = len(active) - spec.get("replicas", 1)
        api = self.c.api
        if diff < 0:
            for _ in range(-diff):
                name = f"{meta['name']}-{''.join(random.choices(string.ascii_lowercase + string.digits, k=5))}"
                pod = pod_from_template(rs, name)
                created = api.create(PODS, meta["namespace"], pod, "kube-controller-manager")
                active.append(created)
                self.c.recorder.emit(rs, "Normal", "SuccessfulCreate", f"Created pod: {name}", "replicaset-controller")
        elif diff > 0:
            for pod in sorted(active, key=_deletion_rank)[:diff]:
                api.delete(PODS, meta["namespace"], pod["metadata"]["name"])
                active.remove(pod)
                self.c.recorder.emit(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                                     "replicaset-controller")
        min_ready = spec.get("minReadySeconds", 0)
        status = {"replicas": len(active),
                  "fullyLabeledReplicas": len(active),
                  "readyReplicas": sum(1 for p in active if is_pod_ready(p)),
                  "availableReplicas": sum(1 for p in active if self.availability.available(p, min_ready)),
                  "observedGeneration": meta.get("generation", 1)}
        if diff > 0:  # the pods just deleted are still listed as active above; recount next pass
            status["replicas"] = len(active)

        def write(o):
            o["status"] = {k: v for k, v in status.items() if v or k in ("replicas", "observedGeneration")}
        self.c.store.mutate(RS, meta["namespace"], meta["name"], write)


def _deletion_rank(pod: dict):
    st = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(st.get("phase"), 1)
    created = pod["metadata"].get("creationTimestamp", "")
    return (1 if pod["spec"].get("nodeName") else 0, phase_rank, 1 if is_pod_ready(pod) else 0,
            # newest first: invert the timestamp ordering
            "".join(chr(255 - ord(ch)) for ch in created))
