"""Garbage collector (ownerReferences) and namespace lifecycle controller.

Dependents whose every owner is gone are deleted in the background, as with the default
`propagationPolicy: Background`; a Terminating namespace has its contents deleted and is
removed once empty.
"""
from __future__ import annotations

from .. import errors
from ..resources import RESOURCE_TYPES, lookup

NAMESPACES = lookup("", "v1", "namespaces")


class GarbageCollector:
    def __init__(self, cluster):
        self.c = cluster

    def sync(self) -> None:
        objects = []
        for rt in RESOURCE_TYPES:
            objects += [(rt, o) for o in self.c.store.list(rt)[0]]
        uids = {o["metadata"]["uid"] for _, o in objects}
        for rt, o in objects:
            refs = o["metadata"].get("ownerReferences") or []
            if refs and not any(r.get("uid") in uids for r in refs) and not o["metadata"].get("deletionTimestamp"):
                self._delete(rt, o)
        for ns in (o for rt, o in objects if rt is NAMESPACES and o["metadata"].get("deletionTimestamp")):
            name = ns["metadata"]["name"]
            content = [(rt, o) for rt, o in objects if rt.namespaced and o["metadata"].get("namespace") == name]
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
