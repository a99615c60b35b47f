"""In-memory object store with resourceVersions, uid/generation bookkeeping and watch fan-out.

Like etcd behind kube-apiserver: one global, monotonically increasing resourceVersion; every
write appends to a bounded event history so watches can resume from a resourceVersion, and
watches older than the retained history get 410 Gone (call `compact()` to force that in tests).
All methods return copies, so callers can never mutate stored state behind the store's back.
"""
from __future__ import annotations

import pickle
import queue
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from . import errors
from .resources import RESOURCE_TYPES, ResourceType, by_key

HISTORY = 5000
FOREGROUND = "foregroundDeletion"
_GENERATION_GROUPS = {"apps", "batch", "policy", "autoscaling", "networking.k8s.io"}


def clone(o):
    """Deep copy for JSON-shaped data (pickle round-trip: the fastest deep copy in CPython)."""
    if isinstance(o, (dict, list)):
        return pickle.loads(pickle.dumps(o, pickle.HIGHEST_PROTOCOL))
    return o


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tracks_generation(rt: ResourceType) -> bool:
    return rt.group in _GENERATION_GROUPS


@dataclass
class Event:
    rv: int
    type: str  # ADDED / MODIFIED / DELETED
    key: str  # ResourceType.key
    obj: dict
    old: dict | None


@dataclass(eq=False)
class Subscription:
    key: str
    namespace: str | None
    events: queue.Queue[Event | None] = field(default_factory=queue.Queue)
    closed: bool = False


class Store:
    def __init__(self):
        self.lock = threading.RLock()
        self._objects = _TypeIndex()  # (type key, namespace, name) -> object, listable per type
        self._rv = 1
        self._history: deque[Event] = deque(maxlen=HISTORY)
        self._compacted_rv = 1  # watches may resume from any rv >= this
        self._subs: list[Subscription] = []
        self.changed = threading.Event()  # set on every write; the controller loop waits on it
        self.type_rv: dict[str, int] = {}  # type key -> resourceVersion of its last change

    # -- reads ---------------------------------------------------------------------------------
    @property
    def resource_version(self) -> str:
        return str(self._rv)

    def get(self, ref, namespace: str | None = None, name: str | None = None) -> dict | None:
        """get(rt, ns, name) or get("deployments/default/web") / get("nodes/n1"): a copy or None."""
        rt, namespace, name = self._resolve(ref, namespace, name)
        with self.lock:
            obj = self._objects.get((rt.key, namespace or "", name))
            return clone(obj) if obj is not None else None

    def list(self, ref, namespace: str | None = None, predicate=None) -> tuple[list[dict], str]:
        rt = ref if isinstance(ref, ResourceType) else by_key(ref)
        with self.lock:
            items = [clone(o) for (ns, _), o in self._objects.of_type(rt.key).items()
                     if (namespace is None or ns == namespace) and (predicate is None or predicate(o))]
            rv = str(self._rv)
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, rv

    def ownership(self) -> tuple[set[str], list[tuple], list[tuple]]:
        """All uids; (type key, namespace, name, owner uids, deleting) of objects with owners; and
        (type key, namespace, name, uid) of objects waiting in foreground deletion.

        Read without copying: the garbage collector runs this often over every object.
        """
        with self.lock:
            uids, owned, foreground = set(), [], []
            for key, o in self._objects.all():
                meta = o["metadata"]
                uids.add(meta["uid"])
                refs = meta.get("ownerReferences")
                if refs:
                    owned.append((key, meta.get("namespace", ""), meta["name"], [r.get("uid") for r in refs],
                                  bool(meta.get("deletionTimestamp"))))
                if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
                    foreground.append((key, meta.get("namespace", ""), meta["name"], meta["uid"]))
            return uids, owned, foreground

    def _resolve(self, ref, namespace, name):
        if isinstance(ref, ResourceType):
            return ref, namespace, name
        parts = ref.split("/")
        for i in range(len(parts), 0, -1):  # longest prefix that names a type: "apps/deployments/ns/name"
            prefix = "/".join(parts[:i])
            rt = _type_by_alias(prefix)
            if rt:
                rest = parts[i:]
                if rt.namespaced:
                    namespace, name = (rest + [namespace, name])[:2] if rest else (namespace, name)
                else:
                    name = rest[0] if rest else name
                return rt, namespace, name
        raise KeyError(ref)

    # -- writes ---------------------------------------------------------------------------------
    def create(self, rt: ResourceType, obj: dict) -> dict:
        meta = obj.setdefault("metadata", {})
        ns = meta.get("namespace", "") if rt.namespaced else ""
        with self.lock:
            k = (rt.key, ns, meta["name"])
            if k in self._objects:
                raise errors.already_exists(rt, meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_iso()
            if tracks_generation(rt):
                meta["generation"] = 1
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            return self._commit(rt, k, obj, None, "ADDED")

    def replace(self, rt: ResourceType, obj: dict, expect_rv: str | None = None) -> dict:
        """Store `obj` over the existing object; 409 if `expect_rv` is given and stale."""
        meta = obj["metadata"]
        with self.lock:
            k = (rt.key, meta.get("namespace", "") if rt.namespaced else "", meta["name"])
            old = self._objects.get(k)
            if old is None:
                raise errors.not_found(rt, meta["name"])
            if expect_rv and expect_rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(rt, meta["name"])
            for f in ("uid", "creationTimestamp"):
                meta[f] = old["metadata"][f]
            if tracks_generation(rt):
                gen = old["metadata"].get("generation", 1)
                if obj.get("spec") != old.get("spec") or (
                        meta.get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp")):
                    gen += 1
                meta["generation"] = gen
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            if _same(obj, old):
                return clone(old)
            return self._commit(rt, k, obj, old, "MODIFIED")

    def mutate(self, ref, namespace: str | None, name: str, fn) -> dict | None:
        """Atomically apply fn(obj) (in place) to the stored object; write only if it changed.

        Controllers use this for read-modify-write without racing HTTP clients. Returns the
        resulting object, or None if it does not exist (or fn returned False).
        """
        rt, namespace, name = self._resolve(ref, namespace, name)
        with self.lock:
            cur = self._objects.get((rt.key, namespace or "", name))
            if cur is None:
                return None
            new = clone(cur)
            if fn(new) is False:
                return None
            if _same(new, cur):
                return clone(cur)
            return self.replace(rt, new)

    def put(self, ref, namespace: str | None, name: str, path: tuple[str, ...], value) -> dict | None:
        """Atomically set one (nested) field, e.g. put(rt, ns, name, ("status",), {...})."""
        def assign(obj):
            for key in path[:-1]:
                obj = obj.setdefault(key, {})
            obj[path[-1]] = value
        return self.mutate(ref, namespace, name, assign)

    def delete(self, rt: ResourceType, namespace: str | None, name: str) -> dict:
        """Remove the object now (graceful deletion/finalizers are the API layer's job)."""
        with self.lock:
            k = (rt.key, namespace or "" if rt.namespaced else "", name)
            old = self._objects.get(k)
            if old is None:
                raise errors.not_found(rt, name)
            del self._objects[k]
            self._rv += 1
            gone = clone(old)
            gone["metadata"]["resourceVersion"] = str(self._rv)
            self._emit(Event(self._rv, "DELETED", rt.key, gone, old))
            return clone(gone)

    def _commit(self, rt, k, obj, old, typ) -> dict:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        stored = clone(obj)
        self._objects[k] = stored
        self._emit(Event(self._rv, typ, rt.key, stored, old))
        return clone(stored)

    def _emit(self, ev: Event) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].rv
        self._history.append(ev)
        self.type_rv[ev.key] = ev.rv
        for sub in self._subs:
            if sub.key == ev.key and (sub.namespace is None or sub.namespace == ev.obj["metadata"].get("namespace")):
                sub.events.put(ev)
        self.changed.set()

    # -- watch ----------------------------------------------------------------------------------
    def subscribe(self, rt: ResourceType, namespace: str | None, since_rv: str | None,
                  predicate=None) -> tuple[Subscription, list[Event]]:
        """Register a watcher; returns it plus the backlog to send first.

        since_rv None/"0": synthetic ADDED events for current objects (the "get state and watch" form).
        since_rv N: every change after N, or 410 if N was compacted away.
        """
        with self.lock:
            sub = Subscription(rt.key, namespace)
            if since_rv in (None, "", "0"):
                items, _ = self.list(rt, namespace, predicate)
                backlog = [Event(int(o["metadata"]["resourceVersion"]), "ADDED", rt.key, o, None) for o in items]
            else:
                try:
                    rv = int(since_rv)
                except ValueError:
                    raise errors.bad_request(f'invalid resource version "{since_rv}"') from None
                if rv < self._compacted_rv:
                    raise errors.gone(f"too old resource version: {rv} ({self._compacted_rv})")
                backlog = [e for e in self._history if e.rv > rv and e.key == rt.key and (
                    namespace is None or e.obj["metadata"].get("namespace") == namespace)]
            self._subs.append(sub)
            return sub, backlog

    def unsubscribe(self, sub: Subscription) -> None:
        with self.lock:
            if sub in self._subs:
                self._subs.remove(sub)
        sub.closed = True
        sub.events.put(None)

    def close_watches(self) -> int:
        """End every open watch (used by the drop_watches fault)."""
        with self.lock:
            subs, self._subs = self._subs, []
        for s in subs:
            s.closed = True
            s.events.put(None)
        return len(subs)

    def compact(self) -> None:
        """Forget the change history: watches from any older resourceVersion now get 410 Gone."""
        with self.lock:
            self._history.clear()
            self._compacted_rv = self._rv


class _TypeIndex:
    """Objects grouped by type, so listing pods never walks thousands of events."""

    def __init__(self):
        self._types: dict[str, dict[tuple[str, str], dict]] = {}

    def of_type(self, key: str) -> dict[tuple[str, str], dict]:
        return self._types.get(key, {})

    def get(self, k: tuple[str, str, str]):
        return self._types.get(k[0], {}).get(k[1:])

    def __contains__(self, k) -> bool:
        return k[1:] in self._types.get(k[0], {})

    def __setitem__(self, k, obj) -> None:
        self._types.setdefault(k[0], {})[k[1:]] = obj

    def __delitem__(self, k) -> None:
        del self._types[k[0]][k[1:]]

    def all(self):
        for key, objs in self._types.items():
            for o in objs.values():
                yield key, o


def _same(a: dict, b: dict) -> bool:
    """Equal ignoring resourceVersion (a no-op write must not bump it)."""
    ma, mb = dict(a.get("metadata", {})), dict(b.get("metadata", {}))
    ma.pop("resourceVersion", None)
    mb.pop("resourceVersion", None)
    return ma == mb and {k: v for k, v in a.items() if k != "metadata"} == {k: v for k, v in b.items() if k != "metadata"}


def _type_by_alias(alias: str) -> ResourceType | None:
    a = alias.lower()
    for t in RESOURCE_TYPES:
        names = {t.plural, t.singular, t.key, t.qualified, *t.short_names}
        if a in names:
            # prefer core events over events.k8s.io for bare "events"
            return t
    return None
