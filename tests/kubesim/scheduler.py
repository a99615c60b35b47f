"""Simulated kube-scheduler: binds pending pods to feasible nodes.

Filters (as the default plugins do): node Ready, not cordoned and no untolerated NoSchedule
taints, nodeSelector, required node affinity, pod count capacity, and the zone of volumes the
pod's PVCs are bound to. Scoring spreads pods of the same owner across zones, then nodes,
like the default topology spread. PVCs are bound on first use (WaitForFirstConsumer): a PV
pinned to the chosen node's zone is created, so later pods using the claim stay in that zone.
"""
from __future__ import annotations

from .kubelet import node_ready
from .resources import lookup
from .selectors import match_node_selector_term
from .store import now_iso

PODS, NODES = lookup("", "v1", "pods"), lookup("", "v1", "nodes")
PVCS, PVS = lookup("", "v1", "persistentvolumeclaims"), lookup("", "v1", "persistentvolumes")
ZONE = "topology.kubernetes.io/zone"


def _tolerates(pod: dict, taint: dict) -> bool:
    for t in pod["spec"].get("tolerations") or []:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


class Scheduler:
    watches = ("core/pods", "core/nodes", "core/persistentvolumeclaims", "core/persistentvolumes")

    def __init__(self, cluster):
        self.c = cluster
        self._reported: dict[str, str] = {}

    def sync(self) -> None:
        pending, _ = self.c.store.list(PODS, None, lambda p: not p["spec"].get("nodeName")
                                       and not p["metadata"].get("deletionTimestamp")
                                       and p["spec"].get("schedulerName", "default-scheduler") == "default-scheduler")
        if not pending:
            return
        nodes, _ = self.c.store.list(NODES)
        all_pods, _ = self.c.store.list(PODS, None, lambda p: bool(p["spec"].get("nodeName")))
        for pod in pending:
            self._schedule(pod, nodes, all_pods)

    def _schedule(self, pod: dict, nodes: list[dict], all_pods: list[dict]) -> None:
        reasons: dict[str, int] = {}
        feasible = []
        volume_zones = self._volume_zones(pod)
        for n in nodes:
            why = self._unfit(pod, n, all_pods, volume_zones)
            if why:
                reasons[why] = reasons.get(why, 0) + 1
            else:
                feasible.append(n)
        meta = pod["metadata"]
        if not feasible:
            detail = ", ".join(f"{v} {k}" for k, v in sorted(reasons.items()))
            msg = f"0/{len(nodes)} nodes are available: {detail}." if nodes else "no nodes available to schedule pods"
            if self._reported.get(meta["uid"]) != msg:
                self._reported[meta["uid"]] = msg
                self.c.recorder.emit(pod, "Warning", "FailedScheduling", msg, "default-scheduler")

                def unsched(p):
                    _condition(p, "PodScheduled", "False", "Unschedulable", msg)
                self.c.store.mutate(PODS, meta["namespace"], meta["name"], unsched)
            return
        node = min(feasible, key=lambda n: self._score(pod, n, all_pods, nodes))
        name = node["metadata"]["name"]

        def bind(p):
            if p["spec"].get("nodeName") or p["metadata"]["uid"] != meta["uid"]:
                return False
            p["spec"]["nodeName"] = name
            _condition(p, "PodScheduled", "True")
        if self.c.store.mutate(PODS, meta["namespace"], meta["name"], bind) is None:
            return
        self._reported.pop(meta["uid"], None)
        pod["spec"]["nodeName"] = name
        all_pods.append(pod)
        self._bind_claims(pod, node)
        self.c.recorder.emit(pod, "Normal", "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} "
                             f"to {name}", "default-scheduler")

    def _unfit(self, pod, node, all_pods, volume_zones) -> str | None:
        labels = node["metadata"].get("labels") or {}
        if not node_ready(node):
            return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
        if node["spec"].get("unschedulable") and not _tolerates(
                pod, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
            return "node(s) were unschedulable"
        for taint in node["spec"].get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(pod, taint):
                return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
        for k, v in (pod["spec"].get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return "node(s) didn't match Pod's node affinity/selector"
        req = ((((pod["spec"].get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms"))
        if req and not any(match_node_selector_term(t, labels, {"metadata.name": node["metadata"]["name"]})
                           for t in req):
            return "node(s) didn't match Pod's node affinity/selector"
        if volume_zones and labels.get(ZONE) not in volume_zones:
            return "node(s) had volume node affinity conflict"
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        here = [p for p in all_pods if p["spec"].get("nodeName") == node["metadata"]["name"]
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        if len(here) >= int(allocatable.get("pods", 110)):
            return "Too many pods"
        for resource in ("cpu", "memory"):
            want = pod_request(pod, resource)
            if want and want + sum(pod_request(p, resource) for p in here) > quantity(allocatable.get(resource, "0")):
                return f"Insufficient {resource}"
        return None

    def _score(self, pod, node, all_pods, nodes):
        owner = _owner_uid(pod)
        zone = (node["metadata"].get("labels") or {}).get(ZONE)
        zone_of = {n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(ZONE) for n in nodes}
        siblings = [p for p in all_pods if owner and _owner_uid(p) == owner]
        in_zone = sum(1 for p in siblings if zone_of.get(p["spec"]["nodeName"]) == zone)
        on_node = sum(1 for p in siblings if p["spec"]["nodeName"] == node["metadata"]["name"])
        total = sum(1 for p in all_pods if p["spec"]["nodeName"] == node["metadata"]["name"])
        return (in_zone, on_node, total, node["metadata"]["name"])

    # -- volumes --------------------------------------------------------------------------------
    def _claims(self, pod) -> list[str]:
        return [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"].get("volumes") or []
                if v.get("persistentVolumeClaim")]

    def _volume_zones(self, pod) -> set[str]:
        zones: set[str] = set()
        for claim in self._claims(pod):
            pvc = self.c.store.get(PVCS, pod["metadata"]["namespace"], claim)
            pv = self.c.store.get(PVS, None, (pvc or {}).get("spec", {}).get("volumeName") or "") if pvc else None
            if not pv:
                continue
            for term in (((pv["spec"].get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")
                         or []):
                for e in term.get("matchExpressions") or []:
                    if e.get("key") == ZONE and e.get("operator") == "In":
                        zones |= set(e.get("values") or [])
            if (pv["metadata"].get("labels") or {}).get(ZONE):
                zones.add(pv["metadata"]["labels"][ZONE])
        return zones

    def _bind_claims(self, pod, node) -> None:
        zone = (node["metadata"].get("labels") or {}).get(ZONE)
        ns = pod["metadata"]["namespace"]
        for claim in self._claims(pod):
            pvc = self.c.store.get(PVCS, ns, claim)
            if pvc is None or pvc["spec"].get("volumeName"):
                continue
            pv_name = f"pvc-{pvc['metadata']['uid']}"
            size = (((pvc["spec"].get("resources") or {}).get("requests") or {}).get("storage")) or "1Gi"
            self.c.store.create(PVS, {"metadata": {"name": pv_name, "labels": {ZONE: zone} if zone else {}},
                                      "spec": {"capacity": {"storage": size},
                                               "accessModes": pvc["spec"].get("accessModes") or ["ReadWriteOnce"],
                                               "claimRef": {"kind": "PersistentVolumeClaim", "namespace": ns,
                                                            "name": claim, "uid": pvc["metadata"]["uid"]},
                                               "persistentVolumeReclaimPolicy": "Delete",
                                               "storageClassName": pvc["spec"].get("storageClassName", "gp3"),
                                               "nodeAffinity": {"required": {"nodeSelectorTerms": [{
                                                   "matchExpressions": [{"key": ZONE, "operator": "In",
                                                                         "values": [zone]}]}]}}},
                                      "status": {"phase": "Bound"}})

            def bound(p, pv_name=pv_name, size=size):
                p["spec"]["volumeName"] = pv_name
                p.setdefault("status", {}).update(phase="Bound", capacity={"storage": size},
                                                  accessModes=p["spec"].get("accessModes") or ["ReadWriteOnce"])
            self.c.store.mutate(PVCS, ns, claim, bound)


_SUFFIX = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30,
           "Ti": 2 ** 40}


def quantity(q) -> float:
    """A Kubernetes resource quantity ("250m", "1.5", "512Mi", "8010196Ki") as a number."""
    text = str(q)
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * _SUFFIX[suffix]
    return float(text or 0)


def pod_request(pod: dict, resource: str) -> float:
    return sum(quantity(((c.get("resources") or {}).get("requests") or {}).get(resource, 0))
               for c in pod["spec"].get("containers") or [])


def _owner_uid(pod) -> str | None:
    return next((r["uid"] for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def _condition(pod: dict, typ: str, status: str, reason: str | None = None, message: str | None = None) -> None:
    conds = pod.setdefault("status", {}).setdefault("conditions", [])
    cur = next((c for c in conds if c["type"] == typ), None)
    if cur is None:
        cur = {"type": typ}
        conds.append(cur)
    if cur.get("status") != status:
        cur["lastTransitionTime"] = now_iso()
    cur.update(status=status, lastProbeTime=None)
    for k, v in (("reason", reason), ("message", message)):
        if v:
            cur[k] = v
        else:
            cur.pop(k, None)
