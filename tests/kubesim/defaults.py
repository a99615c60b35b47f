"""Defaulting and validation, for the kinds whose defaults the engines or kubectl rely on.

Defaults mirror pkg/apis/*/v1/defaults.go (strategy 25%/25%, revisionHistoryLimit 10,
progressDeadlineSeconds 600, imagePullPolicy from the tag, Service clusterIP...). Validation
covers names, required pod fields and the Deployment selector rules that make real servers
answer 422, so engines see the same errors here as on EKS.
"""
from __future__ import annotations

import base64
import itertools
import re

from . import errors
from .resources import ResourceType
from .selectors import match_label_selector

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KINDS = {"Namespace", "Service"}
_cluster_ips = itertools.count(10)


def _container_defaults(c: dict) -> None:
    image = c.get("image") or ""
    tag = image.rsplit("/", 1)[-1]
    latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
    c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        p.setdefault("protocol", "TCP")


def pod_spec_defaults(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        _container_defaults(c)


def _template_defaults(spec: dict) -> None:
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {})
    pod_spec_defaults(template.setdefault("spec", {}))


def prune_nulls(o):
    """Drop null map values, as decoding into Go structs (omitempty pointers) does on a real server.

    Without this, `creationTimestamp: null` sent by kubectl inside a pod template would make two
    otherwise equal templates differ (and e.g. `rollout undo` would not find its old ReplicaSet).
    """
    if isinstance(o, dict):
        return {k: prune_nulls(v) for k, v in o.items() if v is not None}
    if isinstance(o, list):
        return [prune_nulls(v) for v in o]
    return o


def apply_defaults(rt: ResourceType, obj: dict) -> None:
    spec = obj.get("spec")
    kind = rt.kind
    if kind == "Deployment":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _template_defaults(spec)
    elif kind == "ReplicaSet":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        _template_defaults(spec)
    elif kind == "StatefulSet":
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
        _template_defaults(spec)
    elif kind == "DaemonSet":
        spec = obj.setdefault("spec", {})
        spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        spec.setdefault("revisionHistoryLimit", 10)
        _template_defaults(spec)
    elif kind == "Job":
        spec = obj.setdefault("spec", {})
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        _template_defaults(spec)
        spec["template"]["spec"]["restartPolicy"] = spec["template"]["spec"].get("restartPolicy") or "Never"
    elif kind == "Pod":
        pod_spec_defaults(obj.setdefault("spec", {}))
        tolerations = obj["spec"].setdefault("tolerations", [])
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):  # DefaultTolerationSeconds
            if not any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute") for t in tolerations):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": 300})
        obj.setdefault("status", {}).setdefault("phase", "Pending")
        obj["status"].setdefault("qosClass", "BestEffort")
    elif kind == "Service":
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("clusterIP") != "None":
            n = next(_cluster_ips)
            spec.setdefault("clusterIP", f"10.100.{n // 250}.{n % 250 + 1}")
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
        obj.setdefault("status", {"loadBalancer": {}})
    elif kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj.setdefault("status", {}).setdefault("phase", "Active")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif kind == "PodDisruptionBudget":
        obj.setdefault("status", {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0,
                                  "expectedPods": 0})
    elif kind == "PersistentVolumeClaim":
        obj.setdefault("status", {}).setdefault("phase", "Pending")
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}  # write-only convenience field, as on a real server
        if string_data:
            obj["data"] = dict(obj.get("data") or {}, **{k: base64.b64encode(v.encode()).decode()
                                                       for k, v in string_data.items()})


def validate(rt: ResourceType, obj: dict, old: dict | None = None) -> None:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    pattern = _LABEL if rt.kind in _LABEL_KINDS else _SUBDOMAIN
    limit = 63 if rt.kind in _LABEL_KINDS else 253
    causes: list[tuple[str, str]] = []
    if not name:
        causes.append(("metadata.name", "Required value: name or generateName is required"))
    elif not pattern.match(name) or len(name) > limit:
        causes.append(("metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 '
                       f'{"label" if limit == 63 else "subdomain"} must consist of lower case alphanumeric '
                       f"characters, '-' or '.', and must start and end with an alphanumeric character"))
    spec = obj.get("spec") or {}
    if rt.kind == "Pod":
        causes += _validate_pod_spec(spec, "spec")
    if rt.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        selector = spec.get("selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            causes.append(("spec.selector", "Required value"))
        elif not match_label_selector(selector, labels):
            causes.append(("spec.template.metadata.labels", f"Invalid value: {labels!r}: `selector` does not "
                           "match template `labels`"))
        if old is not None and selector and (old.get("spec") or {}).get("selector") != selector \
                and rt.group == "apps":
            causes.append(("spec.selector", f"Invalid value: {selector!r}: field is immutable"))
        if (spec.get("replicas") or 0) < 0:
            causes.append(("spec.replicas", f"Invalid value: {spec['replicas']}: must be greater than or equal to 0"))
        causes += _validate_pod_spec((spec.get("template") or {}).get("spec") or {}, "spec.template.spec")
    if causes:
        raise errors.invalid(rt, name, causes)


def _validate_pod_spec(spec: dict, where: str) -> list[tuple[str, str]]:
    causes = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append((f"{where}.containers", "Required value"))
    for i, c in enumerate(containers):
        if not c.get("name"):
            causes.append((f"{where}.containers[{i}].name", "Required value"))
        if not c.get("image"):
            causes.append((f"{where}.containers[{i}].image", "Required value"))
    return causes
