"""DaemonSet controller (minimal): one pod per eligible node, placed by node affinity on the name,
replaced one at a time when the template changes (RollingUpdate, maxUnavailable 1).

Like the real controller, daemon pods tolerate `node.kubernetes.io/unschedulable`, so they stay
on cordoned nodes; that is what makes `kubectl drain --ignore-daemonsets` necessary.
"""
from __future__ import annotations

from ..api import is_pod_ready
from ..kubelet import node_ready
from ..resources import lookup
from .deployment import template_hash
from .replicaset import is_active, owners_with_children, pod_from_template
from .statefulset import REVISION_LABEL

DS = lookup("apps", "v1", "daemonsets")
PODS, NODES = lookup("", "v1", "pods"), lookup("", "v1", "nodes")
_TOLERATIONS = [{"key": k, "operator": "Exists", "effect": e} for k, e in (
    ("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"), ("node.kubernetes.io/disk-pressure", "NoSchedule"))]


class DaemonSetController:
    watches = ("apps/daemonsets", "core/pods", "core/nodes")

    def __init__(self, cluster):
        self.c = cluster

    def sync(self) -> None:
        work = owners_with_children(self.c.store, DS)
        nodes = [n for n in self.c.store.list(NODES)[0] if node_ready(n)] if work else []
        for ds, pods in work:
            self._sync(ds, nodes, pods)

    def _sync(self, ds: dict, nodes: list[dict], pods: list[dict]) -> None:
        meta = ds["metadata"]
        selector = ds["spec"]["template"]["spec"].get("nodeSelector") or {}
        eligible = [n for n in nodes if all((n["metadata"].get("labels") or {}).get(k) == v
                                            for k, v in selector.items())]
        revision = template_hash(ds["spec"]["template"])
        placed = {_target(p) for p in pods if is_active(p)}
        for n in eligible:
            node_name = n["metadata"]["name"]
            if node_name in placed:
                continue
            pod = pod_from_template(ds, "", {REVISION_LABEL: revision})
            pod["metadata"].pop("name")
            pod["metadata"]["generateName"] = f"{meta['name']}-"
            spec = pod["spec"]
            spec["tolerations"] = (spec.get("tolerations") or []) + _TOLERATIONS
            spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                        "values": [node_name]}]}]}}}
            created = self.c.api.create(PODS, meta["namespace"], pod, "kube-controller-manager")
            self.c.recorder.emit(ds, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}",
                                 "daemonset-controller")
        active = [p for p in pods if is_active(p)]
        ready = sum(1 for p in active if is_pod_ready(p))
        updated = [p for p in active if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision]
        stale = [p for p in active if p not in updated]
        strategy = ds["spec"].get("updateStrategy") or {}
        if stale and strategy.get("type", "RollingUpdate") == "RollingUpdate" and ready == len(active) \
                and len(active) == len(eligible):  # replace one pod at a time (maxUnavailable 1)
            self.c.api.delete(PODS, meta["namespace"], stale[0]["metadata"]["name"])
        status = {"currentNumberScheduled": len(active), "desiredNumberScheduled": len(eligible),
                  "numberMisscheduled": 0, "numberReady": ready, "numberAvailable": ready,
                  "updatedNumberScheduled": len(updated), "observedGeneration": meta.get("generation", 1)}
        if len(eligible) - ready:
            status["numberUnavailable"] = len(eligible) - ready
        self.c.store.put(DS, meta["namespace"], meta["name"], ("status",), status)


def _target(pod: dict) -> str | None:
    if pod["spec"].get("nodeName"):
        return pod["spec"]["nodeName"]
    terms = (((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for t in terms:
        for f in t.get("matchFields") or []:
            return (f.get("values") or [None])[0]
    return None
