"""Deploy history of a service: a bounded list of records in a ConfigMap beside the service.

Kept in the cluster, so CI deploys and laptop deploys land in one place, and bounded (`KEEP` records),
so a busy service never grows an object towards etcd's size limit. Writes are read-modify-write on the
ConfigMap's resourceVersion, so two writers never lose each other's record. A ConfigMap that cannot be
read as a history is never written over: reading it raises `HistoryUnreadable`, which names it and
how to repair or move it, and the object stays exactly as found.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException

from infra.ops.errors import Refused
from infra.ops.io.kube import Kube, KubeError, api_reason

if TYPE_CHECKING:  # requests builds on target, which reads CHANGE_CAUSE from here
    from infra.ops.deploy.requests import HistoryRequest

KEEP = 30
DATA_KEY = "history.json"
CHANGE_CAUSE = "kubernetes.io/change-cause"


@dataclass(frozen=True)
class DeployRecord:
    """One deploy or rollback: who shipped what, when, and how it ended."""

    service: str
    env: str
    action: str          # deploy | rollback
    tag: str
    image: str
    who: str
    started: str         # ISO 8601 UTC
    finished: str
    verdict: str         # a rollout.Reason's text: Complete, ImagePullBackOff, Timeout, Interrupted, ...
    ok: bool
    rolled_back: bool = False
    rollback_verdict: str = ""
    revision: str = ""
    message: str = ""

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> DeployRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def change_cause(self) -> str:
        return f"{self.action} {self.service}:{self.tag} by {self.who} at {self.started}"


class HistoryUnreadable(Refused):
    """The history ConfigMap exists but is not a list of records: kept as is, nothing written over it."""

    def __init__(self, namespace: str, name: str, problem: str):
        super().__init__(
            f"deploy history ConfigMap {namespace}/{name} cannot be read ({problem}); it was left as is and nothing "
            f"was changed. Repair its {DATA_KEY}, or move it aside: `kubectl -n {namespace} get configmap {name} "
            f"-o yaml > {name}.yaml && kubectl -n {namespace} delete configmap {name}` (the next deploy then "
            f"starts a new history)")


def config_map_name(service: str) -> str:
    return f"deploy-history-{service}"


def read(kube: Kube, namespace: str, service: str) -> list[DeployRecord]:
    """Records oldest first; [] when the service was never deployed by this tool."""
    try:
        found = kube.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/{config_map_name(service)}")
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise KubeError(f"reading deploy history of {service}: {api_reason(exc)}") from None
    return _records(found, namespace)


def recorded(kube: Kube, request: HistoryRequest) -> list[DeployRecord]:
    """What `invoke history` shows: the service's records, oldest first."""
    return read(kube, request.target.namespace, request.target.service)


def _records(config_map: dict[str, Any], namespace: str) -> list[DeployRecord]:
    """Every record of the ConfigMap; HistoryUnreadable when any part of it is not one (no record dropped)."""
    text = (config_map.get("data") or {}).get(DATA_KEY)

    def unreadable(problem: str) -> HistoryUnreadable:
        return HistoryUnreadable(namespace, config_map["metadata"]["name"], problem)

    if text is None:
        raise unreadable(f"it has no {DATA_KEY} key")
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise unreadable(f"{DATA_KEY} is not JSON: {exc}") from None
    if not isinstance(raw, list):
        raise unreadable(f"{DATA_KEY} holds a JSON {type(raw).__name__}, not a list of records")
    records = []
    for number, item in enumerate(raw, 1):
        try:
            records.append(DeployRecord.from_json(item))
        except (TypeError, AttributeError):
            raise unreadable(f"record {number} of {len(raw)} is not a deploy record") from None
    return records


def append(kube: Kube, namespace: str, record: DeployRecord, keep: int = KEEP) -> None:
    """Add a record, dropping the oldest beyond `keep`; retried on write conflicts."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    name = config_map_name(record.service)
    for _ in range(5):
        try:
            current = kube.request("GET", f"{path}/{name}")
        except ApiException as exc:
            if exc.status != 404:
                raise KubeError(f"reading deploy history of {record.service}: {api_reason(exc)}") from None
            current = None
        records = (_records(current, namespace) if current else []) + [record]  # unreadable: raises, nothing written
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {"app.kubernetes.io/name": record.service,
                                        "app.kubernetes.io/managed-by": "eks-platform-deploy"}},
                "data": {**((current or {}).get("data") or {}),
                         DATA_KEY: json.dumps([asdict(r) for r in records[-keep:]], indent=1)}}
        try:
            if current is None:
                kube.request("POST", path, body=body)
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                kube.request("PUT", f"{path}/{name}", body=body)
            return
        except ApiException as exc:
            if exc.status != 409:
                raise KubeError(f"writing deploy history of {record.service}: {api_reason(exc)}") from None
    raise KubeError(f"writing deploy history of {record.service}: too many concurrent writers, gave up")
