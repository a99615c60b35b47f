"""Patch semantics: JSON merge patch (RFC 7386), strategic merge patch, JSON patch (RFC 6902).

Strategic merge needs each list's patch strategy and merge key, which the real server reads
from the Go structs. kubesim keeps a small table for the list fields the engines and kubectl
touch (containers by name, env by name, ports by containerPort/port, ...); any other list is
atomic (replaced), which is also what the real server does for lists without a merge key.
The same table gives the associative-list keys used by server-side apply.
"""
from __future__ import annotations

import jsonpatch

from .errors import ApiError, bad_request
from .store import clone

# field name -> merge key (None = merge as a set of primitives)
MERGE_KEYS: dict[str, str | None] = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "imagePullSecrets": "name", "conditions": "type", "ownerReferences": "uid", "taints": "key",
    "hostAliases": "ip", "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
    "finalizers": None, "ports": "port",  # container ports are keyed by containerPort, see list_key()
    "addresses": "type", "images": None,
}


def list_key(field: str, items: list) -> str | None | bool:
    """Merge key for list `field`; False when the list is atomic."""
    if field not in MERGE_KEYS:
        return False
    key = MERGE_KEYS[field]
    if field == "ports" and any(isinstance(i, dict) and "containerPort" in i for i in items):
        return "containerPort"
    return key


# -- JSON merge patch ------------------------------------------------------------------------------
def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return clone(patch)
    out = clone(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# -- strategic merge patch --------------------------------------------------------------------------
def strategic_merge(target, patch, field: str = ""):
    if not isinstance(patch, dict):
        return clone(patch)
    if patch.get("$patch") == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = clone(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            out[name] = [x for x in out.get(name) or [] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list):
            out[k] = _merge_list(k, out.get(k), v)
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v, k)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = v
    if retain is not None:
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_list(field: str, current, patch: list):
    key = list_key(field, patch + (current or []))
    if key is False:
        return [clone(x) for x in patch if not (isinstance(x, dict) and x.get("$patch"))]
    current = [clone(x) for x in current or []]
    if key is None:  # set of primitives
        return current + [x for x in patch if x not in current]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            if isinstance(item, dict) and item.get("$patch") == "replace":
                return [clone(x) for x in patch if x is not item]
            raise bad_request(f"map: {item!r} does not contain declared merge key: {key}")
        idx = next((i for i, c in enumerate(current) if isinstance(c, dict) and c.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                current.pop(idx)
        elif idx is None:
            current.append({k: clone(v) for k, v in item.items() if k != "$patch"})
        else:
            current[idx] = strategic_merge(current[idx], item, field)
    return current


# -- JSON patch -------------------------------------------------------------------------------------
def json_patch(target: dict, ops: list) -> dict:
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    try:
        return jsonpatch.JsonPatch(ops).apply(clone(target))
    except jsonpatch.JsonPatchTestFailed as e:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {e}") from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError, TypeError) as e:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: {e}") from None
