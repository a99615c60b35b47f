"""StatefulSet controller (minimal but ordered): stable pod names, claims, ready counts, rolling update.

Pods are `{name}-{ordinal}`; with OrderedReady a pod is created only when all lower ordinals
are Ready, scale-down removes the highest ordinal first, and RollingUpdate replaces pods from
the highest ordinal down, one at a time, waiting for readiness. volumeClaimTemplates create
`{template}-{name}-{ordinal}` PVCs that outlive the pods (the scheduler pins their zone).
A pod evicted by a drain is recreated under the same name, as on a real cluster.
"""
from __future__ import annotations

from ..api import is_pod_ready
from ..resources import lookup
from .deployment import template_hash
from .replicaset import is_active, owners_with_children, pod_from_template

STS = lookup("apps", "v1", "statefulsets")
PODS = lookup("", "v1", "pods")
PVCS = lookup("", "v1", "persistentvolumeclaims")
REVISION_LABEL = "controller-revision-hash"


class StatefulSetController:
    watches = ("apps/statefulsets", "core/pods", "core/persistentvolumeclaims")

    def __init__(self, cluster):
        self.c = cluster

    def sync(self) -> None:
        for s, pods in owners_with_children(self.c.store, STS):
            self._sync(s, {p["metadata"]["name"]: p for p in pods})

    def _sync(self, s: dict, pods: dict[str, dict]) -> None:
        meta, spec = s["metadata"], s["spec"]
        ns, name = meta["namespace"], meta["name"]
        replicas = spec.get("replicas", 1)
        revision = f"{name}-{template_hash(spec['template'])}"
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        api = self.c.api
        busy = False
        for i in range(replicas):
            pod_name = f"{name}-{i}"
            pod = pods.get(pod_name)
            if pod is None:
                if ordered and busy:
                    break
                self._create_pod(s, pod_name, revision)
                busy = True
                continue
            if not is_active(pod) or not is_pod_ready(pod):
                busy = True
        for pod_name, pod in sorted(pods.items(), key=lambda kv: -_ordinal(kv[0])):
            if _ordinal(pod_name) >= replicas and is_active(pod):
                api.delete(PODS, ns, pod_name)
                self.c.recorder.emit(s, "Normal", "SuccessfulDelete", f"delete Pod {pod_name} in StatefulSet {name} "
                                     "successful", "statefulset-controller")
                if ordered:
                    break
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition", 0)
        in_range = [p for n, p in pods.items() if _ordinal(n) < replicas]
        if strategy == "RollingUpdate" and not busy and all(is_active(p) and is_pod_ready(p) for p in in_range):
            stale = sorted((p for p in in_range if _ordinal(p["metadata"]["name"]) >= partition
                            and (p["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision),
                           key=lambda p: -_ordinal(p["metadata"]["name"]))
            if stale:
                api.delete(PODS, ns, stale[0]["metadata"]["name"])
        active = [p for p in in_range if is_active(p)]
        updated = sum(1 for p in active if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == revision)
        ready = sum(1 for p in active if is_pod_ready(p))
        status = {"observedGeneration": meta.get("generation", 1), "replicas": len(active), "readyReplicas": ready,
                  "currentReplicas": updated, "updatedReplicas": updated, "availableReplicas": ready,
                  "currentRevision": revision if updated == len(active) else (s.get("status") or {}).get(
                      "currentRevision", revision), "updateRevision": revision, "collisionCount": 0}
        self.c.store.put(STS, ns, name, ("status",), status)

    def _create_pod(self, s: dict, pod_name: str, revision: str) -> None:
        ns, name = s["metadata"]["namespace"], s["metadata"]["name"]
        pod = pod_from_template(s, pod_name, {REVISION_LABEL: revision,
                                              "statefulset.kubernetes.io/pod-name": pod_name,
                                              "apps.kubernetes.io/pod-index": str(_ordinal(pod_name))})
        pod["spec"]["hostname"] = pod_name
        if s["spec"].get("serviceName"):
            pod["spec"]["subdomain"] = s["spec"]["serviceName"]
        volumes = pod["spec"].setdefault("volumes", [])
        for tmpl in s["spec"].get("volumeClaimTemplates") or []:
            claim = f"{tmpl['metadata']['name']}-{pod_name}"
            if self.c.store.get(PVCS, ns, claim) is None:
                self.c.api.create(PVCS, ns, {"metadata": {"name": claim, "namespace": ns,
                                                          "labels": dict(s["spec"]["selector"].get("matchLabels")
                                                                         or {})},
                                             "spec": dict(tmpl.get("spec") or {})}, "kube-controller-manager")
            volumes.append({"name": tmpl["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}})
        self.c.api.create(PODS, ns, pod, "kube-controller-manager")
        self.c.recorder.emit(s, "Normal", "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet {name} "
                             "successful", "statefulset-controller")


def _ordinal(pod_name: str) -> int:
    try:
        return int(pod_name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return -1
