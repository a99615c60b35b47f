"""meta.k8s.io/v1 Table rendering, so `kubectl get` prints the same columns as against EKS.

kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`; the server picks the
columns per kind (pkg/printers/internalversion). Row objects are PartialObjectMetadata unless
`includeObject=Object` is sent.
"""
from __future__ import annotations

from datetime import UTC, datetime

from .resources import ResourceType


def _age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    secs = int((datetime.now(UTC) - datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
                .replace(tzinfo=UTC)).total_seconds())
    secs = max(secs, 0)
    if secs < 120:
        return f"{secs}s"
    if secs < 3600 * 3:
        return f"{secs // 60}m"
    if secs < 86400 * 2:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


def _col(name: str, typ: str = "string", priority: int = 0, fmt: str = "") -> dict:
    return {"name": name, "type": typ, "format": fmt, "description": name, "priority": priority}


def pod_status_reason(pod: dict) -> str:
    """The STATUS column kubectl shows for a pod (Terminating, CrashLoopBackOff, Running...)."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod(o):
    st = o.get("status") or {}
    css = st.get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in css if c.get("ready"))
    restarts = sum(c.get("restartCount", 0) for c in css)
    return [f"{ready}/{total}", pod_status_reason(o), restarts, _age(o["metadata"].get("creationTimestamp")),
            st.get("podIP") or "<none>", (o.get("spec") or {}).get("nodeName") or "<none>"]


def _deploy(o):
    st, spec = o.get("status") or {}, o.get("spec") or {}
    return [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", st.get("updatedReplicas", 0),
            st.get("availableReplicas", 0), _age(o["metadata"].get("creationTimestamp"))]


def _rs(o):
    st, spec = o.get("status") or {}, o.get("spec") or {}
    return [spec.get("replicas", 0), st.get("replicas", 0), st.get("readyReplicas", 0),
            _age(o["metadata"].get("creationTimestamp"))]


def _sts(o):
    st, spec = o.get("status") or {}, o.get("spec") or {}
    return [f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 0)}", _age(o["metadata"].get("creationTimestamp"))]


def _node(o):
    conds = {c["type"]: c["status"] for c in (o.get("status") or {}).get("conditions") or []}
    status = "Ready" if conds.get("Ready") == "True" else "NotReady"
    if (o.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = [k.split("/", 1)[1] for k in (o["metadata"].get("labels") or {})
             if k.startswith("node-role.kubernetes.io/")]
    version = ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [status, ",".join(roles) or "<none>", _age(o["metadata"].get("creationTimestamp")), version]


def _ns(o):
    return [(o.get("status") or {}).get("phase", "Active"), _age(o["metadata"].get("creationTimestamp"))]


def _svc(o):
    spec = o.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or []) or "<none>"
    return [spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"), "<none>", ports,
            _age(o["metadata"].get("creationTimestamp"))]


def _pdb(o):
    spec, st = o.get("spec") or {}, o.get("status") or {}
    return [str(spec.get("minAvailable", "N/A")), str(spec.get("maxUnavailable", "N/A")),
            st.get("disruptionsAllowed", 0), _age(o["metadata"].get("creationTimestamp"))]


def _ds(o):
    st = o.get("status") or {}
    return [st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0), st.get("numberReady", 0),
            st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            ",".join(f"{k}={v}" for k, v in (((o.get("spec") or {}).get("template") or {}).get("spec") or {})
                     .get("nodeSelector", {}).items()) or "<none>", _age(o["metadata"].get("creationTimestamp"))]


def _job(o):
    st, spec = o.get("status") or {}, o.get("spec") or {}
    conds = {c["type"] for c in st.get("conditions") or [] if c.get("status") == "True"}
    status = "Complete" if "Complete" in conds else "Failed" if "Failed" in conds else "Running"
    return [status, f"{st.get('succeeded', 0)}/{spec.get('completions', 1)}", "",
            _age(o["metadata"].get("creationTimestamp"))]


def _pvc(o):
    st, spec = o.get("status") or {}, o.get("spec") or {}
    return [st.get("phase", "Pending"), spec.get("volumeName", ""), (st.get("capacity") or {}).get("storage", ""),
            ",".join({"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX"}.get(m, m)
                     for m in st.get("accessModes") or []), spec.get("storageClassName", "<unset>"),
            _age(o["metadata"].get("creationTimestamp"))]


def _data(o):
    return [len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o["metadata"].get("creationTimestamp"))]


def _secret(o):
    return [o.get("type", "Opaque")] + _data(o)


def _endpoints(o):
    addrs = [f"{a['ip']}:{p['port']}" for s in o.get("subsets") or [] for a in s.get("addresses") or []
             for p in s.get("ports") or []]
    return [",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "") or "<none>",
            _age(o["metadata"].get("creationTimestamp"))]


def _event(o):
    io = o.get("involvedObject") or {}
    return [_age(o.get("lastTimestamp") or o["metadata"].get("creationTimestamp")), o.get("type", ""),
            o.get("reason", ""), f"{(io.get('kind') or '').lower()}/{io.get('name', '')}", o.get("message", "")]


_NAME = _col("Name", fmt="name")
COLUMNS = {
    "Pod": ([_NAME, _col("Ready"), _col("Status"), _col("Restarts", "integer"), _col("Age"),
             _col("IP", priority=1), _col("Node", priority=1)], _pod),
    "Deployment": ([_NAME, _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"),
                    _col("Age")], _deploy),
    "ReplicaSet": ([_NAME, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"),
                    _col("Age")], _rs),
    "StatefulSet": ([_NAME, _col("Ready"), _col("Age")], _sts),
    "Node": ([_NAME, _col("Status"), _col("Roles"), _col("Age"), _col("Version")], _node),
    "Namespace": ([_NAME, _col("Status"), _col("Age")], _ns),
    "Service": ([_NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), _col("Age")],
                _svc),
    "DaemonSet": ([_NAME, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"),
                   _col("Up-to-date", "integer"), _col("Available", "integer"), _col("Node Selector"), _col("Age")],
                  _ds),
    "Job": ([_NAME, _col("Status"), _col("Completions"), _col("Duration"), _col("Age")], _job),
    "PersistentVolumeClaim": ([_NAME, _col("Status"), _col("Volume"), _col("Capacity"), _col("Access Modes"),
                               _col("StorageClass"), _col("Age")], _pvc),
    "ConfigMap": ([_NAME, _col("Data", "integer"), _col("Age")], _data),
    "Secret": ([_NAME, _col("Type"), _col("Data", "integer"), _col("Age")], _secret),
    "Endpoints": ([_NAME, _col("Endpoints"), _col("Age")], _endpoints),
    "PodDisruptionBudget": ([_NAME, _col("Min Available"), _col("Max Unavailable"),
                             _col("Allowed Disruptions", "integer"), _col("Age")], _pdb),
}
_EVENT_COLUMNS = ([_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")], _event)


def to_table(rt: ResourceType, items: list[dict], resource_version: str, include_object: str = "Metadata") -> dict:
    if rt.kind == "Event" and rt.group == "":
        columns, cells = _EVENT_COLUMNS
        named = False
    else:
        columns, cells = COLUMNS.get(rt.kind, ([_NAME, _col("Age")], lambda o: [
            _age(o["metadata"].get("creationTimestamp"))]))
        named = True
    rows = []
    for o in items:
        row = {"cells": ([o["metadata"]["name"]] if named else []) + cells(o)}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": columns, "rows": rows}
