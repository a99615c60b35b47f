"""Kubernetes API versions that are deprecated or removed, per Kubernetes minor version (like pluto).

A maintained table, not a live lookup: lint checks manifests against the stack's version and the next
ones, and the upgrade preflight checks what runs in the cluster against the target version, with the
same facts. Source: the Kubernetes deprecated API migration guide. Add a row when a release removes an API.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.versions import KubeVersion


@dataclass(frozen=True)
class Deprecation:
    """One served API version of one kind, when it stops being recommended and when it stops being served."""

    api_version: str
    kind: str
    deprecated_in: KubeVersion
    removed_in: KubeVersion | None
    replacement: str


def _rows(api_version: str, kinds: str, deprecated: str, removed: str | None, replacement: str) -> list[Deprecation]:
    return [Deprecation(api_version, kind, KubeVersion.parse(deprecated),
                        KubeVersion.parse(removed) if removed else None, replacement)
            for kind in kinds.split()]


TABLE: tuple[Deprecation, ...] = tuple(
    _rows("extensions/v1beta1", "Deployment DaemonSet ReplicaSet", "1.9", "1.16", "apps/v1")
    + _rows("apps/v1beta1", "Deployment StatefulSet ReplicaSet", "1.9", "1.16", "apps/v1")
    + _rows("apps/v1beta2", "Deployment StatefulSet DaemonSet ReplicaSet", "1.9", "1.16", "apps/v1")
    + _rows("extensions/v1beta1", "NetworkPolicy", "1.9", "1.16", "networking.k8s.io/v1")
    + _rows("extensions/v1beta1", "PodSecurityPolicy", "1.10", "1.16", "policy/v1beta1")
    + _rows("extensions/v1beta1", "Ingress", "1.14", "1.22", "networking.k8s.io/v1")
    + _rows("networking.k8s.io/v1beta1", "Ingress IngressClass", "1.19", "1.22", "networking.k8s.io/v1")
    + _rows("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition", "1.16", "1.22", "apiextensions.k8s.io/v1")
    + _rows("admissionregistration.k8s.io/v1beta1", "MutatingWebhookConfiguration ValidatingWebhookConfiguration",
            "1.16", "1.22", "admissionregistration.k8s.io/v1")
    + _rows("apiregistration.k8s.io/v1beta1", "APIService", "1.10", "1.22", "apiregistration.k8s.io/v1")
    + _rows("rbac.authorization.k8s.io/v1beta1", "ClusterRole ClusterRoleBinding Role RoleBinding", "1.17", "1.22",
            "rbac.authorization.k8s.io/v1")
    + _rows("scheduling.k8s.io/v1beta1", "PriorityClass", "1.14", "1.22", "scheduling.k8s.io/v1")
    + _rows("certificates.k8s.io/v1beta1", "CertificateSigningRequest", "1.19", "1.22", "certificates.k8s.io/v1")
    + _rows("coordination.k8s.io/v1beta1", "Lease", "1.14", "1.22", "coordination.k8s.io/v1")
    + _rows("storage.k8s.io/v1beta1", "CSIDriver CSINode StorageClass VolumeAttachment", "1.19", "1.22",
            "storage.k8s.io/v1")
    + _rows("batch/v1beta1", "CronJob", "1.21", "1.25", "batch/v1")
    + _rows("discovery.k8s.io/v1beta1", "EndpointSlice", "1.21", "1.25", "discovery.k8s.io/v1")
    + _rows("events.k8s.io/v1beta1", "Event", "1.19", "1.25", "events.k8s.io/v1")
    + _rows("autoscaling/v2beta1", "HorizontalPodAutoscaler", "1.22", "1.25", "autoscaling/v2")
    + _rows("policy/v1beta1", "PodDisruptionBudget", "1.21", "1.25", "policy/v1")
    + _rows("policy/v1beta1", "PodSecurityPolicy", "1.21", "1.25", "Pod Security Admission (namespace labels)")
    + _rows("node.k8s.io/v1beta1", "RuntimeClass", "1.22", "1.25", "node.k8s.io/v1")
    + _rows("autoscaling/v2beta2", "HorizontalPodAutoscaler", "1.23", "1.26", "autoscaling/v2")
    + _rows("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema PriorityLevelConfiguration", "1.23", "1.26",
            "flowcontrol.apiserver.k8s.io/v1")
    + _rows("storage.k8s.io/v1beta1", "CSIStorageCapacity", "1.24", "1.27", "storage.k8s.io/v1")
    + _rows("flowcontrol.apiserver.k8s.io/v1beta2", "FlowSchema PriorityLevelConfiguration", "1.26", "1.29",
            "flowcontrol.apiserver.k8s.io/v1")
    + _rows("flowcontrol.apiserver.k8s.io/v1beta3", "FlowSchema PriorityLevelConfiguration", "1.29", "1.32",
            "flowcontrol.apiserver.k8s.io/v1")
    + _rows("v1", "Endpoints", "1.33", None, "discovery.k8s.io/v1 EndpointSlice")
)

_INDEX: dict[tuple[str, str], Deprecation] = {(row.api_version, row.kind): row for row in TABLE}


def lookup(api_version: str, kind: str) -> Deprecation | None:
    """The table row for this apiVersion and kind, or None when it is current."""
    return _INDEX.get((api_version, kind))


@dataclass(frozen=True)
class ApiFinding:
    """An object that uses an API version which is removed (blocks) or deprecated (warns) at `target`."""

    kind: str
    name: str
    namespace: str | None
    api_version: str
    removed: bool
    since: KubeVersion
    target: KubeVersion
    replacement: str

    @property
    def resource(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    def __str__(self) -> str:
        state = "removed" if self.removed else "deprecated"
        return (f"{self.resource} uses {self.api_version}, {state} in Kubernetes {self.since} "
                f"(target {self.target}); move to {self.replacement}")


def check(obj: Mapping[str, Any], target: KubeVersion) -> ApiFinding | None:
    """How one object's apiVersion stands at the target version, or None when it is fine there."""
    row = lookup(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    if row is None or row.deprecated_in > target:
        return None
    removed_in = row.removed_in if row.removed_in is not None and row.removed_in <= target else None
    meta = obj.get("metadata") or {}
    return ApiFinding(kind=row.kind, name=str(meta.get("name", "?")), namespace=meta.get("namespace"),
                      api_version=row.api_version, removed=removed_in is not None,
                      since=row.deprecated_in if removed_in is None else removed_in, target=target,
                      replacement=row.replacement)


def scan(objects: Iterable[Mapping[str, Any]], target: KubeVersion) -> list[ApiFinding]:
    """Every object whose API is removed or deprecated at the target version (rendered manifests or live objects)."""
    return [finding for finding in (check(obj, target) for obj in objects) if finding is not None]
