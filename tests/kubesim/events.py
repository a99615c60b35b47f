"""Event recorder: writes core/v1 Events (and their events.k8s.io/v1 twin) like client-go's recorder.

Repeated events (same object, reason and message) are aggregated by bumping `count` and
`lastTimestamp` instead of creating new objects, as the kubelet's recorder does.
"""
from __future__ import annotations

import itertools

from .resources import lookup
from .store import Store, now_iso

CORE_EVENTS = lookup("", "v1", "events")
NEW_EVENTS = lookup("events.k8s.io", "v1", "events")
_seq = itertools.count(1)


class EventRecorder:
    def __init__(self, store: Store):
        self.store = store
        self._names: dict[tuple, str] = {}

    def emit(self, obj: dict, type_: str, reason: str, message: str, component: str, host: str | None = None,
             field_path: str | None = None) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        key = (meta.get("uid"), reason, message, field_path)
        now = now_iso()
        name = self._names.get(key)
        if name and self.store.mutate(CORE_EVENTS, ns, name, lambda e: e.update(
                count=e.get("count", 1) + 1, lastTimestamp=now)) is not None:
            return
        name = f"{meta['name']}.{next(_seq):016x}"
        self._names[key] = name
        involved = {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta["name"],
                    "uid": meta.get("uid"), "apiVersion": obj.get("apiVersion"),
                    "resourceVersion": meta.get("resourceVersion")}
        if field_path:
            involved["fieldPath"] = field_path
        involved = {k: v for k, v in involved.items() if v is not None}
        source = {"component": component, **({"host": host} if host else {})}
        self.store.create(CORE_EVENTS, {
            "metadata": {"name": name, "namespace": ns}, "involvedObject": involved, "reason": reason,
            "message": message, "source": source, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "type": type_, "eventTime": None, "reportingComponent": component, "reportingInstance": host or ""})
        self.store.create(NEW_EVENTS, {
            "metadata": {"name": name, "namespace": ns}, "regarding": involved, "reason": reason, "note": message,
            "type": type_, "eventTime": now.replace("Z", ".000000Z"), "reportingController": component,
            "reportingInstance": host or component, "action": reason,
            "deprecatedSource": source, "deprecatedFirstTimestamp": now, "deprecatedLastTimestamp": now,
            "deprecatedCount": 1})

    def for_object(self, obj: dict) -> list[dict]:
        uid = obj["metadata"].get("uid")
        return self.store.list(CORE_EVENTS, None, lambda e: e["involvedObject"].get("uid") == uid)[0]
