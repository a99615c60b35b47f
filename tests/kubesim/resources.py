"""The resource types kubesim serves, and the discovery documents derived from them.

One table drives routing, discovery, error messages and defaults, so adding a
kind is one line here (controllers are optional).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    has_spec: bool = True  # objects with a spec get metadata.generation
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Store key prefix, e.g. 'apps/deployments' or 'core/pods'."""
        return f"{self.group or 'core'}/{self.plural}"

    @property
    def qualified(self) -> str:
        """Name used in API error messages: 'deployments.apps' or 'pods'."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()


def _t(group, version, plural, kind, **kw) -> ResourceType:
    return ResourceType(group, version, plural, kind, **kw)


_SCALE = ("status", "scale")
_ALL = ("all",)

RESOURCE_TYPES: tuple[ResourceType, ...] = (
    # core/v1
    _t("", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), subresources=("status",)),
    _t("", "v1", "nodes", "Node", namespaced=False, short_names=("no",), subresources=("status",)),
    _t("", "v1", "pods", "Pod", short_names=("po",), subresources=("status", "eviction", "binding", "log"),
       categories=_ALL),
    _t("", "v1", "services", "Service", short_names=("svc",), subresources=("status", "proxy"), categories=_ALL),
    _t("", "v1", "endpoints", "Endpoints", short_names=("ep",), has_spec=False),
    _t("", "v1", "configmaps", "ConfigMap", short_names=("cm",), has_spec=False),
    _t("", "v1", "secrets", "Secret", has_spec=False),
    _t("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",), has_spec=False),
    _t("", "v1", "events", "Event", short_names=("ev",), has_spec=False),
    _t("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", short_names=("pvc",), subresources=("status",)),
    _t("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False, short_names=("pv",),
       subresources=("status",)),
    _t("", "v1", "resourcequotas", "ResourceQuota", short_names=("quota",), subresources=("status",)),
    _t("", "v1", "limitranges", "LimitRange", short_names=("limits",)),
    # apps/v1
    _t("apps", "v1", "deployments", "Deployment", short_names=("deploy",), subresources=_SCALE, categories=_ALL),
    _t("apps", "v1", "replicasets", "ReplicaSet", short_names=("rs",), subresources=_SCALE, categories=_ALL),
    _t("apps", "v1", "statefulsets", "StatefulSet", short_names=("sts",), subresources=_SCALE, categories=_ALL),
    _t("apps", "v1", "daemonsets", "DaemonSet", short_names=("ds",), subresources=("status",), categories=_ALL),
    _t("apps", "v1", "controllerrevisions", "ControllerRevision", has_spec=False),
    # batch/v1
    _t("batch", "v1", "jobs", "Job", subresources=("status",), categories=_ALL),
    _t("batch", "v1", "cronjobs", "CronJob", short_names=("cj",), subresources=("status",), categories=_ALL),
    # policy/v1
    _t("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short_names=("pdb",),
       subresources=("status",)),
    # coordination.k8s.io/v1
    _t("coordination.k8s.io", "v1", "leases", "Lease"),
    # autoscaling/v2
    _t("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", short_names=("hpa",),
       subresources=("status",), categories=_ALL),
    # networking.k8s.io/v1
    _t("networking.k8s.io", "v1", "ingresses", "Ingress", short_names=("ing",), subresources=("status",)),
    _t("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short_names=("netpol",)),
    _t("networking.k8s.io", "v1", "ingressclasses", "IngressClass", namespaced=False),
    # events.k8s.io/v1
    _t("events.k8s.io", "v1", "events", "Event", short_names=("ev",), has_spec=False),
    # rbac (engines create RBAC for services; CRUD only)
    _t("rbac.authorization.k8s.io", "v1", "roles", "Role", has_spec=False),
    _t("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", has_spec=False),
    _t("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False, has_spec=False),
    _t("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False,
       has_spec=False),
)

_BY_PATH = {(t.group, t.version, t.plural): t for t in RESOURCE_TYPES}
_BY_KIND = {(t.group, t.kind): t for t in RESOURCE_TYPES}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return _BY_KIND.get((group, kind))


def by_key(key: str) -> ResourceType:
    """'apps/deployments' or 'deployments' (core or unique plural) -> ResourceType."""
    group, _, plural = key.rpartition("/")
    for t in RESOURCE_TYPES:
        if t.plural == plural and (t.group or "core") == (group or t.group or "core"):
            return t
    raise KeyError(key)


def groups() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in RESOURCE_TYPES:
        if t.group:
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
    return out


# -- discovery documents -------------------------------------------------------------------------

SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0-kubesim", "gitCommit": "kubesim",
    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23",
    "compiler": "gc", "platform": "linux/amd64",
}


def api_versions() -> dict:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}


def api_group_list() -> dict:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc(g, vs) for g, vs in groups().items()]}


def api_group(group: str) -> dict | None:
    versions = groups().get(group)
    return dict(_group_doc(group, versions), kind="APIGroup", apiVersion="v1") if versions else None


def _group_doc(group: str, versions: list[str]) -> dict:
    vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": vs, "preferredVersion": vs[0]}


def api_resource_list(group: str, version: str) -> dict | None:
    types = [t for t in RESOURCE_TYPES if t.group == group and t.version == version]
    if not types:
        return None
    resources = []
    for t in types:
        entry = {"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
                 "verbs": list(t.verbs), "storageVersionHash": ""}
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        resources.append(entry)
        for sub in t.subresources:
            sub_entry = {"name": f"{t.plural}/{sub}", "singularName": "", "namespaced": t.namespaced,
                         "kind": t.kind, "verbs": ["get", "patch", "update"]}
            if sub == "eviction":
                sub_entry.update(kind="Eviction", group="policy", version="v1", verbs=["create"])
            elif sub == "binding":
                sub_entry.update(kind="Binding", verbs=["create"])
            elif sub == "scale":
                sub_entry.update(kind="Scale", group="autoscaling", version="v1")
            elif sub == "proxy":
                sub_entry.update(kind="ServiceProxyOptions",
                                 verbs=["create", "delete", "get", "patch", "update"])
            elif sub == "log":
                sub_entry.update(verbs=["get"])
            resources.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}


# -- OpenAPI v3 (just enough for kubectl) ----------------------------------------------------------
def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def openapi_v3_root() -> dict:
    """kubectl (apply/create/replace) reads this to learn that PATCH supports `fieldValidation`,
    and then leaves validation to the server instead of downloading schemas."""
    gvs = {(t.group, t.version) for t in RESOURCE_TYPES}
    return {"paths": {_gv_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash=kubesim"}
                      for g, v in sorted(gvs)}}


def openapi_v3_group_version(group: str, version: str) -> dict | None:
    types = [t for t in RESOURCE_TYPES if t.group == group and t.version == version]
    if not types:
        return None
    params = [{"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": True}
              for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
    paths = {}
    for t in types:
        base = "/" + _gv_path(group, version) + ("/namespaces/{namespace}" if t.namespaced else "")
        gvk = {"group": group, "version": version, "kind": t.kind}
        paths[f"{base}/{t.plural}/{{name}}"] = {
            "patch": {"operationId": f"patch{t.kind}", "parameters": params, "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}},
            "put": {"operationId": f"replace{t.kind}", "parameters": params, "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk, "responses": {"200": {"description": "OK"}}}}
        paths[f"{base}/{t.plural}"] = {
            "post": {"operationId": f"create{t.kind}", "parameters": params, "x-kubernetes-action": "post",
                     "x-kubernetes-group-version-kind": gvk, "responses": {"201": {"description": "Created"}}}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": {}}}
