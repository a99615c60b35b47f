"""What a deploy changes and how to put it back: clean objects, diffs, snapshots, apply and restore.

A rollback must return the cluster to exactly what ran before, without stealing fields from anyone: the
snapshot keeps only the fields some field manager set (never server defaults or allocations), and drops
those other managers own alone (an HPA's replicas, another tool's annotations), so re-applying it with
our field manager changes back only what the deploy changed.
"""
from __future__ import annotations

import copy
import difflib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

import yaml

from infra.ops.deploy.rollout import REVISION
from infra.ops.deploy.target import WORKLOADS
from infra.ops.io import manifests
from infra.ops.io.kube import Kube, ref

SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink",
                 "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences")
SERVER_ANNOTATIONS = (REVISION, "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas")


def clean(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as one would apply it: without status and server-owned metadata."""
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta = out.get("metadata") or {}
    for key in SERVER_FIELDS:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    for key in SERVER_ANNOTATIONS:
        annotations.pop(key, None)
    if "annotations" in meta and not annotations:
        del meta["annotations"]
    return out


_REDACTION_KEY = secrets.token_bytes(16)  # per process: equal values match in a diff, none can be guessed back


def redact(obj: dict[str, Any]) -> dict[str, Any]:
    """Secret values replaced by a keyed fingerprint: diffs show that a value changed, never the value."""
    if obj.get("kind") != "Secret":
        return obj
    out = copy.deepcopy(obj)
    for key in ("data", "stringData"):
        if out.get(key):
            out[key] = {k: f"[redacted {hmac.new(_REDACTION_KEY, str(v).encode(), 'sha256').hexdigest()[:8]}]"
                        for k, v in out[key].items()}
    return out


def diff(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """Unified diff of one object (clean, redacted YAML); [] when nothing changes."""
    old = yaml.safe_dump(redact(clean(before)), sort_keys=True).splitlines() if before else []
    new = yaml.safe_dump(redact(clean(after)), sort_keys=True).splitlines()
    return list(difflib.unified_diff(old, new, f"live/{ref(after)}", f"deploy/{ref(after)}", lineterm="", n=3))


def _field_sets(live: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """fieldsV1 per field manager, from managedFields (status subresource left out)."""
    sets: dict[str, list[dict[str, Any]]] = {}
    for entry in (live.get("metadata") or {}).get("managedFields") or []:
        if entry.get("subresource") != "status":
            sets.setdefault(entry.get("manager", ""), []).append(entry.get("fieldsV1") or {})
    return sets


def _owns(field_sets: list[dict[str, Any]], *path: str) -> bool:
    for fields in field_sets:
        node: Any = fields
        for step in path:
            node = node.get(f"f:{step}") if isinstance(node, dict) else None
        if node is not None:
            return True
    return False


def _union(trees: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tree in trees:
        for key, sub in tree.items():
            out[key] = _union([out.get(key) or {}, sub or {}])
    return out


def extract(value: Any, fields: dict[str, Any]) -> Any:
    """The part of `value` a fieldsV1 tree covers ("f:name", 'k:{"name":"api"}' list items, 'v:' set items)."""
    if not fields or set(fields) == {"."}:
        return copy.deepcopy(value)
    if isinstance(value, dict):
        return {key[2:]: extract(value[key[2:]], sub) for key, sub in fields.items()
                if key.startswith("f:") and key[2:] in value}
    if isinstance(value, list):
        out = []
        for item in value:
            for key, sub in fields.items():
                if key.startswith("k:") and isinstance(item, dict):
                    want = json.loads(key[2:])
                    if all(item.get(k) == v for k, v in want.items()):
                        out.append({**extract(item, sub), **want})
                elif key.startswith("v:") and json.loads(key[2:]) == item:
                    out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(value)


def restorable(live: dict[str, Any], manager: str) -> dict[str, Any]:
    """The live object as a rollback re-applies it: the fields some manager set (not server defaults or
    allocations such as a Service's clusterIP), minus those other managers own and we do not.

    Re-applying either kind would make our manager their owner, and the next deploy (which does not set
    them) would delete them: an HPA's spec.replicas reset, another tool's annotations gone, an allocated
    field re-allocated.
    """
    sets = _field_sets(live)
    out = clean(live)
    if sets:
        kept = extract(out, _union([f for fields in sets.values() for f in fields]))
        out = {**kept, "apiVersion": out["apiVersion"], "kind": out["kind"],
               "metadata": {**kept.get("metadata", {}), **{k: out["metadata"][k] for k in ("name", "namespace")
                                                           if k in out["metadata"]}}}
    mine = sets.pop(manager, [])
    others = [f for fields in sets.values() for f in fields]
    if _owns(others, "spec", "replicas") and not _owns(mine, "spec", "replicas"):
        (out.get("spec") or {}).pop("replicas", None)
    meta = out.get("metadata") or {}
    for kind in ("annotations", "labels"):
        for key in list(meta.get(kind) or {}):
            if _owns(others, "metadata", kind, key) and not _owns(mine, "metadata", kind, key):
                del meta[kind][key]
    return out


@dataclass(frozen=True)
class Snapshot:
    """What ran before a deploy: each object as a rollback re-applies it (None when the deploy creates it)."""

    before: dict[str, dict[str, Any] | None]

    @classmethod
    def capture(cls, kube: Kube, objects: list[dict[str, Any]], manager: str) -> Snapshot:
        return cls({ref(o): (restorable(live, manager) if (live := kube.get(o)) else None) for o in objects})


def apply_all(kube: Kube, objects: list[dict[str, Any]], manager: str, force: bool = False,
              dry_run: bool = False, into: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Server-side apply in order (config before workloads), returning what the server stored (or would).

    `into` collects each result as it lands, so after a failure midway the caller knows what to put back.
    """
    done = into if into is not None else []
    for obj in sorted(objects, key=lambda o: o["kind"] in WORKLOADS):
        done.append(kube.apply(obj, manager, force=force, dry_run=dry_run))
    return done


def restore(kube: Kube, snapshot: Snapshot, objects: list[dict[str, Any]], manager: str, service: str) -> None:
    """Put back exactly the captured objects; delete the ones this deploy created - except shared ones
    (another service's first deploy may be using them by now)."""
    for obj in objects:
        before = snapshot.before.get(ref(obj))
        if before is not None:
            kube.apply(before, manager, force=True)
        elif (obj["metadata"].get("labels") or {}).get(manifests.NAME_LABEL) == service:
            kube.delete(obj)
