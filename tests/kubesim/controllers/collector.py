"""Garbage collector (ownerReferences) and namespace lifecycle controller.

Dependents whose every owner is gone are deleted in the background, as with the default
`propagationPolicy: Background`; a Terminating namespace has its contents deleted and is
removed once empty.
"""
from __future__ import annotations

from .. import errors
from ..resources import RESOURCE_TYPES, by_key, lookup

NAMESPACES = lookup("", "v1", "namespaces")


class GarbageCollector:
    def __init__(self, cluster):
        self.c = cluster

    def sync(self) -> None:
        uids, owned = self.c.store.ownership()
        for key, ns, name, owners, deleting in owned:
            if not deleting and not any(u in uids for u in owners):
                self._delete(by_key(key), {"metadata": {"namespace": ns or None, "name": name}})
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

    def _delete(self, rt, o) -> None:
        try:
            self.c.api.delete(rt, o["metadata"].get("namespace"), o["metadata"]["name"])
        except errors.ApiError:
            pass
