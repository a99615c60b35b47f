"""Disruption controller: keeps PodDisruptionBudget status current, which eviction reads.

expectedPods comes from the pods' controllers' replica counts (a Deployment through its
ReplicaSet, a StatefulSet), or the pod count for a bare integer minAvailable; currentHealthy
counts Ready pods not being deleted and not just evicted (status.disruptedPods).
"""
from __future__ import annotations

import math
import time

from ..api import is_pod_ready
from ..resources import lookup
from ..selectors import match_label_selector
from ..store import now_iso

PDBS = lookup("policy", "v1", "poddisruptionbudgets")
PODS = lookup("", "v1", "pods")
_CONTROLLERS = {("apps/v1", "ReplicaSet"): lookup("apps", "v1", "replicasets"),
                ("apps/v1", "StatefulSet"): lookup("apps", "v1", "statefulsets"),
                ("apps/v1", "Deployment"): lookup("apps", "v1", "deployments")}
DISRUPTED_TTL = 120.0  # simulated seconds a just-evicted pod stays out of currentHealthy


def _scaled(value, total: int, round_up: bool = True) -> int:
    if isinstance(value, str) and value.endswith("%"):
        x = int(value[:-1]) * total / 100
        return math.ceil(x) if round_up else math.floor(x)
    return int(value)


class DisruptionController:
    watches = ("policy/poddisruptionbudgets", "core/pods", "apps/replicasets", "apps/deployments", "apps/statefulsets")
    periodic = 0.2  # disruptedPods expiry

    def __init__(self, cluster):
        self.c = cluster
        self._disrupted_at: dict[tuple[str, str], float] = {}

    def sync(self) -> None:
        pdbs, _ = self.c.store.list(PDBS)
        for pdb in pdbs:
            # Read-compute-write atomically (the apiserver's optimistic concurrency): an eviction landing
            # between reading the budget and writing its status must not be overwritten by a stale status.
            with self.c.store.lock:
                current = self.c.store.get(PDBS, pdb["metadata"]["namespace"], pdb["metadata"]["name"])
                if current is not None:
                    self._sync(current)

    def _expected(self, pods: list[dict], ns: str) -> int:
        seen, total = set(), 0
        for p in pods:
            ref = next((r for r in p["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            rt = _CONTROLLERS.get((ref["apiVersion"], ref["kind"])) if ref else None
            if rt is None:
                total += 1
                continue
            owner = self.c.store.get(rt, ns, ref["name"])
            if owner is None:
                total += 1
                continue
            up = next((r for r in owner["metadata"].get("ownerReferences") or []
                       if r.get("controller") and r.get("kind") == "Deployment"), None)
            if up is not None and self.c.store.get(_CONTROLLERS[("apps/v1", "Deployment")], ns, up["name"]):
                owner = self.c.store.get(_CONTROLLERS[("apps/v1", "Deployment")], ns, up["name"])
            if owner["metadata"]["uid"] not in seen:
                seen.add(owner["metadata"]["uid"])
                total += owner["spec"].get("replicas", 1)
        return total

    def _sync(self, pdb: dict) -> None:
        meta, spec = pdb["metadata"], pdb.get("spec") or {}
        ns = meta["namespace"]
        pods = self.c.store.list(PODS, ns, lambda p: match_label_selector(spec.get("selector"),
                                                                          p["metadata"].get("labels")))[0]
        now = time.monotonic()
        disrupted = dict((pdb.get("status") or {}).get("disruptedPods") or {})
        by_name = {p["metadata"]["name"]: p for p in pods}
        for name in list(disrupted):
            first = self._disrupted_at.setdefault((meta["uid"], name), now)
            pod = by_name.get(name)
            if pod is None or pod["metadata"].get("deletionTimestamp") or \
                    now - first > DISRUPTED_TTL * self.c.time_factor:
                disrupted.pop(name)
                self._disrupted_at.pop((meta["uid"], name), None)
        healthy = sum(1 for p in pods if is_pod_ready(p) and not p["metadata"].get("deletionTimestamp")
                      and p["metadata"]["name"] not in disrupted)
        if "minAvailable" in spec and not isinstance(spec["minAvailable"], str):
            expected = len([p for p in pods if not p["metadata"].get("deletionTimestamp")])
            desired = int(spec["minAvailable"])
        else:
            expected = self._expected(pods, ns)
            if "minAvailable" in spec:
                desired = _scaled(spec["minAvailable"], expected)
            else:
                desired = max(expected - _scaled(spec.get("maxUnavailable", 0), expected), 0)
        allowed = max(healthy - desired, 0)
        status = {"observedGeneration": meta.get("generation", 1), "currentHealthy": healthy,
                  "desiredHealthy": desired, "expectedPods": expected, "disruptionsAllowed": allowed}
        if disrupted:
            status["disruptedPods"] = disrupted

        def write(o):
            old = o.get("status") or {}
            conds = [c for c in old.get("conditions") or [] if c["type"] != "DisruptionAllowed"]
            prev = next((c for c in old.get("conditions") or [] if c["type"] == "DisruptionAllowed"), None)
            st = "True" if allowed > 0 else "False"
            reason = "SufficientPods" if allowed > 0 else "InsufficientPods"
            if prev and prev["status"] == st:
                cond = prev
            else:
                cond = {"type": "DisruptionAllowed", "status": st, "reason": reason, "message": "",
                        "observedGeneration": status["observedGeneration"], "lastTransitionTime": now_iso()}
            o["status"] = dict(status, conditions=conds + [cond])
        self.c.store.mutate(PDBS, ns, meta["name"], write)
