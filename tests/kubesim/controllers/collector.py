"""Garbage collector (ownerReferences) and namespace lifecycle controller.

Dependents whose every owner is gone are deleted (`propagationPolicy: Background`, the default);
an owner deleted with `Foreground` keeps a `foregroundDeletion` finalizer until its dependents
are gone; a Terminating namespace has its contents deleted and is removed once empty.
"""
from __future__ import annotations

from .. import errors
from ..resources import RESOURCE_TYPES, by_key, lookup
from ..store import FOREGROUND

NAMESPACES = lookup("", "v1", "namespaces")


class GarbageCollector:
    def __init__(self, cluster):
        self.c = cluster

    def sync(self) -> None:
        uids, owned, foreground = self.c.store.ownership()
        for key, ns, name, owners, deleting in owned:
            if not deleting and not any(u in uids for u in owners):
                self._delete(by_key(key), {"metadata": {"namespace": ns or None, "name": name}})
        for key, ns, name, uid in foreground:  # dependents first; the owner goes when none is left
            dependents = [(by_key(k), n, m, d) for k, n, m, owners, d in owned if uid in owners]
            for rt, dns, dname, deleting in dependents:
                if not deleting:
                    self._delete(rt, {"metadata": {"namespace": dns or None, "name": dname}},
                                 None if rt.kind == "Pod" else "Foreground")
            if not dependents:
                self._release(by_key(key), ns or None, name)
        for ns in self.c.store.list(NAMESPACES, None, lambda o: bool(o["metadata"].get("deletionTimestamp")))[0]:
            name = ns["metadata"]["name"]
            content = [(rt, o) for rt in RESOURCE_TYPES if rt.namespaced for o in self.c.store.list(rt, name)[0]]
            for rt, o in content:
                if not o["metadata"].get("deletionTimestamp"):
                    self._delete(rt, o)
            if not content:
                try:
                    self.c.store.delete(NAMESPACES, None, name)
                except errors.ApiError:
                    pass

    def _delete(self, rt, o, propagation: str | None = None) -> None:
        try:
            self.c.api.delete(rt, o["metadata"].get("namespace"), o["metadata"]["name"],
                              {"propagationPolicy": propagation} if propagation else None)
        except errors.ApiError:
            pass

    def _release(self, rt, ns, name) -> None:
        """Drop the foregroundDeletion finalizer; with no finalizer left the object is gone."""
        cur = self.c.store.get(rt, ns, name)
        if cur is None:
            return
        out = self.c.store.put(rt, ns, name, ("metadata", "finalizers"),
                               [f for f in cur["metadata"].get("finalizers") or [] if f != FOREGROUND])
        if out is not None and not out["metadata"].get("finalizers"):
            try:
                self.c.store.delete(rt, ns, name)
            except errors.ApiError:
                pass
