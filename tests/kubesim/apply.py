"""Server-side apply and managedFields bookkeeping.

Field ownership follows the structured-merge-diff model closely enough for deploy engines:
- a field set is a set of paths; path elements use the fieldsV1 spelling ("f:spec",
  'k:{"name":"app"}' for associative-list items, 'v:"x"' for set items), and a list item
  path ending in "." means the item itself is owned;
- apply: conflicts arise where another manager owns a field whose value the applied config
  changes (409 unless force=true, which moves ownership); fields this manager applied before
  but dropped now are removed from the object unless someone else still owns them;
- update (POST/PUT/PATCH): the fields that changed move to the updating manager.
Lists without merge keys (see merge.MERGE_KEYS) are atomic, as in Kubernetes.
"""
from __future__ import annotations

import json

from .errors import ApiError
from .merge import list_key
from .store import clone, now_iso

_IGNORED_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                 "managedFields", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"}

Path = tuple[str, ...]


def field_set(obj: dict, include_status: bool = False) -> set[Path]:
    out: set[Path] = set()
    for k, v in obj.items():
        if k in ("apiVersion", "kind") or (k == "status" and not include_status):
            continue
        if k == "metadata":
            for mk, mv in (v or {}).items():
                if mk not in _IGNORED_META:
                    _walk(mv, ("f:metadata", f"f:{mk}"), mk, out)
            continue
        _walk(v, (f"f:{k}",), k, out)
    return out


def _walk(v, path: Path, name: str, out: set[Path]) -> None:
    if isinstance(v, dict) and v:
        for k, sub in v.items():
            _walk(sub, path + (f"f:{k}",), k, out)
    elif isinstance(v, list) and v and list_key(name, v) is not False:
        key = list_key(name, v)
        for item in v:
            if key is None:
                out.add(path + ("v:" + json.dumps(item, separators=(",", ":")),))
            elif isinstance(item, dict) and key in item:
                ipath = path + (_item_key(key, item),)
                out.add(ipath + (".",))
                for k, sub in item.items():
                    _walk(sub, ipath + (f"f:{k}",), k, out)
    else:
        out.add(path)


def _item_key(key: str, item: dict) -> str:
    return "k:" + json.dumps({key: item[key]}, separators=(",", ":"))


def to_fields_v1(paths: set[Path]) -> dict:
    root: dict = {}
    for p in sorted(paths):
        node = root
        for el in p:
            node = node.setdefault(el, {})
    return root


def from_fields_v1(doc: dict, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for k, v in (doc or {}).items():
        if k == ".":
            out.add(prefix + (".",))
        elif v:
            out |= from_fields_v1(v, prefix + (k,))
        else:
            out.add(prefix + (k,))
    return out


def value_at(obj, path: Path):
    """Value at a field path, or a sentinel when absent."""
    cur = obj
    for el in path:
        if el == ".":
            return cur
        if el.startswith("f:"):
            if not isinstance(cur, dict) or el[2:] not in cur:
                return _MISSING
            cur = cur[el[2:]]
        elif el.startswith("k:"):
            want = json.loads(el[2:])
            cur = next((i for i in cur or [] if isinstance(i, dict)
                        and all(i.get(a) == b for a, b in want.items())), _MISSING) if isinstance(cur, list) else _MISSING
            if cur is _MISSING:
                return cur
        elif el.startswith("v:"):
            val = json.loads(el[2:])
            return val if isinstance(cur, list) and val in cur else _MISSING
    return cur


_MISSING = object()


def _remove_at(obj, path: Path) -> None:
    parent = obj
    for el in path[:-1]:
        parent = value_at(parent, (el,))
        if parent is _MISSING:
            return
    last = path[-1]
    if last == ".":  # remove the list item itself: path[-2] is the k: element
        container = value_at(obj, path[:-3] + (path[-3],)) if len(path) >= 3 else _MISSING
        if isinstance(container, list):
            want = json.loads(path[-2][2:])
            container[:] = [i for i in container if not (isinstance(i, dict)
                                                         and all(i.get(a) == b for a, b in want.items()))]
        return
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("v:") and isinstance(parent, list):
        val = json.loads(last[2:])
        if val in parent:
            parent.remove(val)


def merge_applied(live, applied, name: str = ""):
    """Merge an applied configuration into the live object (maps merge, associative lists merge by key)."""
    if isinstance(applied, dict) and isinstance(live, dict):
        out = clone(live)
        for k, v in applied.items():
            out[k] = merge_applied(out.get(k), v, k) if k in out else clone(v)
        return out
    if isinstance(applied, list) and isinstance(live, list) and list_key(name, applied + live) is not False:
        key = list_key(name, applied + live)
        out = [clone(x) for x in live]
        for item in applied:
            if key is None:
                if item not in out:
                    out.append(clone(item))
                continue
            idx = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item.get(key)), None)
            if idx is None:
                out.append(clone(item))
            else:
                out[idx] = merge_applied(out[idx], item, name)
        return out
    return clone(applied)


# -- managedFields ----------------------------------------------------------------------------------
def _entries(obj: dict) -> list[dict]:
    return obj.get("metadata", {}).get("managedFields") or []


def _entry_paths(e: dict) -> set[Path]:
    return from_fields_v1(e.get("fieldsV1") or {})


def _set_entries(obj: dict, entries: list[dict]) -> None:
    entries = [e for e in entries if e.get("fieldsV1")]
    if entries:
        obj["metadata"]["managedFields"] = entries
    else:
        obj["metadata"].pop("managedFields", None)


def _entry(manager: str, operation: str, api_version: str, paths: set[Path], subresource: str | None) -> dict:
    e = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": now_iso(),
         "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(paths)}
    if subresource:
        e["subresource"] = subresource
    return e


def _fmt(path: Path) -> str:
    out = ""
    for el in path:
        if el.startswith("f:"):
            out += "." + el[2:]
        elif el.startswith("k:"):
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(el[2:]).items()) + "]"
        elif el.startswith("v:"):
            out += "[=" + el[2:] + "]"
    return out


def _manager_id(e: dict) -> str:
    """How structured-merge-diff names a manager in conflicts: `"hpa" using apps/v1` for updaters."""
    out = json.dumps(e["manager"])
    if e.get("subresource"):
        out += f' with subresource "{e["subresource"]}"'
    if e.get("operation") == "Update":
        out += f" using {e.get('apiVersion', '')}"
    return out


def _conflict_message(conflicts: list[tuple[str, Path]]) -> str:
    if len(conflicts) == 1:
        return f"Apply failed with 1 conflict: conflict with {conflicts[0][0]}: {_fmt(conflicts[0][1])}"
    lines = []
    for manager in sorted({m for m, _ in conflicts}):
        lines.append(f"conflicts with {manager}:")
        lines += [f"- {_fmt(p)}" for m, p in conflicts if m == manager]
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def apply(live: dict | None, applied: dict, manager: str, force: bool, subresource: str | None = None) -> dict:
    """Return the new object for a server-side apply of `applied` by `manager` over `live`."""
    api_version = applied.get("apiVersion", "")
    mine = field_set(applied, include_status=subresource == "status")
    if live is None:
        obj = clone(applied)
        obj.setdefault("metadata", {}).pop("managedFields", None)
        _set_entries(obj, [_entry(manager, "Apply", api_version, mine, subresource)])
        return obj
    entries = [clone(e) for e in _entries(live)]
    conflicts: list[tuple[str, Path]] = []
    for e in entries:
        if e["manager"] == manager and e.get("operation") == "Apply":
            continue
        for p in _entry_paths(e) & mine:
            if p[-1] != "." and value_at(live, p) != value_at(applied, p):
                conflicts.append((_manager_id(e), p))
    if conflicts and not force:
        raise ApiError(409, "Conflict", _conflict_message(sorted(conflicts)), {"causes": [
            {"reason": "FieldManagerConflict", "message": f"conflict with {m}", "field": _fmt(p)}
            for m, p in sorted(conflicts)]})
    taken = {p for _, p in conflicts}
    previous = set()
    others: list[dict] = []
    for e in entries:
        if e["manager"] == manager and e.get("operation") == "Apply" and e.get("subresource") == subresource:
            previous = _entry_paths(e)
            continue
        rest = _entry_paths(e) - taken
        if rest:
            e["fieldsV1"] = to_fields_v1(rest)
            others.append(e)
    still_owned = set().union(*(_entry_paths(e) for e in others)) if others else set()
    obj = merge_applied(live, {k: v for k, v in applied.items() if k != "status" or subresource == "status"})
    obj["metadata"]["managedFields"] = live["metadata"].get("managedFields")
    kept = still_owned | mine
    # whole list items (".") first: removing their key field first would leave an unmatchable {} behind
    for p in sorted(previous - kept, key=lambda q: (q[-1] != ".", -len(q))):
        node = p[:-1] if p[-1] == "." else p
        if not any(q[:len(node)] == node for q in kept):
            _remove_at(obj, p)
    _set_entries(obj, others + [_entry(manager, "Apply", api_version, mine, subresource)])
    return obj


def record_update(old: dict | None, new: dict, manager: str, subresource: str | None = None) -> None:
    """After a non-apply write, give `manager` the fields that changed (in place on `new`)."""
    include_status = subresource == "status"
    new_fields = field_set(new, include_status)
    if old is None:
        changed = new_fields
        entries = []
    else:
        old_fields = field_set(old, include_status)
        changed = {p for p in new_fields if value_at(old, p) != value_at(new, p)}
        removed = old_fields - new_fields
        entries = [clone(e) for e in _entries(old)]
        for e in entries:
            e["fieldsV1"] = to_fields_v1(_entry_paths(e) - changed - removed)
    if not changed:
        _set_entries(new, entries)
        return
    mine = next((e for e in entries if e["manager"] == manager and e.get("operation") == "Update"
                 and e.get("subresource") == subresource), None)
    if mine is None:
        entries.append(_entry(manager, "Update", new.get("apiVersion", ""), changed, subresource))
    else:
        mine["fieldsV1"] = to_fields_v1(_entry_paths(mine) | changed)
        mine["time"] = now_iso()
    _set_entries(new, entries)
