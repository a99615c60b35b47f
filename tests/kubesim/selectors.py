"""Label and field selectors: the query-string forms and the LabelSelector object form."""
from __future__ import annotations

import re

from .errors import bad_request

_SET_RE = re.compile(r"^\s*([^\s!=<>(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top(expr: str) -> list[str]:
    """Split on commas outside parentheses ('a in (x,y),b=c' -> two terms)."""
    parts, depth, cur = [], 0, ""
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(expr: str | None):
    """Return a predicate over a labels dict for a `labelSelector` query string."""
    if not expr:
        return lambda labels: True
    tests = []
    for term in _split_top(expr):
        m = _SET_RE.match(term)
        if m:
            key, op, vals = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                tests.append(lambda L, k=key, vs=vals: k in L and L[k] in vs)
            else:
                tests.append(lambda L, k=key, vs=vals: k not in L or L[k] not in vs)
        elif "!=" in term:
            k, v = (s.strip() for s in term.split("!=", 1))
            tests.append(lambda L, k=k, v=v: L.get(k) != v)
        elif "==" in term or "=" in term:
            k, v = (s.strip() for s in re.split("==?", term, maxsplit=1))
            tests.append(lambda L, k=k, v=v: L.get(k) == v)
        elif term.startswith("!"):
            key = term[1:].strip()
            tests.append(lambda L, k=key: k not in L)
        elif re.match(r"^[A-Za-z0-9./_-]+$", term):
            tests.append(lambda L, k=term: k in L)
        else:
            raise bad_request(f"unable to parse requirement: invalid label selector {expr!r}")
    return lambda labels: all(t(labels or {}) for t in tests)


def match_label_selector(selector: dict | None, labels: dict | None) -> bool:
    """metav1.LabelSelector semantics: matchLabels AND matchExpressions; an empty selector matches all."""
    if selector is None:
        return False
    labels = labels or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        if not _match_expression(e, labels):
            return False
    return True


def _match_expression(e: dict, labels: dict) -> bool:
    key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels:
        try:
            a, b = int(labels[key]), int(values[0])
        except (ValueError, IndexError):
            return False
        return a > b if op == "Gt" else a < b
    return False


def match_node_selector_term(term: dict, labels: dict, fields: dict | None = None) -> bool:
    """A NodeSelectorTerm (node affinity / PV node affinity): all expressions must hold."""
    exprs = term.get("matchExpressions") or []
    field_exprs = term.get("matchFields") or []
    if not exprs and not field_exprs:
        return False
    return (all(_match_expression(e, labels) for e in exprs)
            and all(_match_expression(e, fields or {}) for e in field_exprs))


def _get_path(obj: dict, dotted: str):
    cur = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def parse_field_selector(expr: str | None):
    """Return a predicate over an object for a `fieldSelector` (=, ==, != on dotted paths)."""
    if not expr:
        return lambda obj: True
    tests = []
    for term in _split_top(expr):
        if "!=" in term:
            path, value = term.split("!=", 1)
            neg = True
        elif "=" in term:
            path, value = re.split("==?", term, maxsplit=1)
            neg = False
        else:
            raise bad_request(f'invalid field selector: "{term}"')
        path, value = path.strip(), value.strip()

        def test(obj, path=path, value=value, neg=neg):
            actual = _get_path(obj, path)
            actual = "" if actual is None else (str(actual).lower() if isinstance(actual, bool) else str(actual))
            return (actual != value) if neg else (actual == value)
        tests.append(test)
    return lambda obj: all(t(obj) for t in tests)
