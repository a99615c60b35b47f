"""The service proxy (`/api/v1/namespaces/{ns}/services/{svc}:{port}/proxy/{path}`), scripted per test.

Answers, in order: the most recent matching script that still has uses left; else 404 if the
Service does not exist; else 503 "no endpoints available" when no Ready pod matches its
selector (what the real proxy says); else 200 "ok", standing in for a healthy app.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from . import errors
from .api import is_pod_ready
from .resources import lookup
from .selectors import match_label_selector

SERVICES, PODS = lookup("", "v1", "services"), lookup("", "v1", "pods")


@dataclass
class ProxyScript:
    namespace: str
    service: str
    port: str | None
    path: str | None
    status: int
    body: str
    times: int | None
    content_type: str
    method: str | None = None
    hits: int = 0


def _norm(path: str | None) -> str | None:
    return None if path is None else "/" + path.lstrip("/")


class ServiceProxy:
    def __init__(self, store):
        self.store = store
        self._lock = threading.Lock()
        self._scripts: list[ProxyScript] = []
        self.calls: list[tuple[str, str, str, str | None, str]] = []  # (method, ns, service, port, path)

    def script(self, namespace, service, port=None, path="/", status=200, body="ok", times=None,
               content_type=None, method=None) -> ProxyScript:
        if not isinstance(body, str):
            body, content_type = json.dumps(body), content_type or "application/json"
        s = ProxyScript(namespace, service, None if port is None else str(port), _norm(path), status, body, times,
                        content_type or "text/plain; charset=utf-8", method)
        with self._lock:
            self._scripts.append(s)
        return s

    def answer(self, method: str, ns: str, svc_spec: str, path: str) -> tuple[int, bytes, str]:
        parts = svc_spec.split(":")
        if len(parts) == 3:  # scheme:name:port
            parts = parts[1:]
        name, port = parts[0], (parts[1] if len(parts) > 1 and parts[1] else None)
        path = _norm(path) or "/"
        self.calls.append((method, ns, name, port, path))
        with self._lock:
            for s in reversed(self._scripts):
                if s.namespace == ns and s.service == name and (s.port is None or port is None or s.port == port) \
                        and (s.path is None or s.path == path) and (s.method is None or s.method == method):
                    s.hits += 1
                    if s.times is not None:
                        s.times -= 1
                        if s.times <= 0:
                            self._scripts.remove(s)
                    return s.status, s.body.encode(), s.content_type
        svc = self.store.get(SERVICES, ns, name)
        if svc is None:
            e = errors.not_found(SERVICES, name)
            return e.code, json.dumps(e.status()).encode(), "application/json"
        selector = (svc.get("spec") or {}).get("selector") or {}
        ready = self.store.list(PODS, ns, lambda p: bool(selector) and is_pod_ready(p) and not p["metadata"].get(
            "deletionTimestamp") and match_label_selector({"matchLabels": selector}, p["metadata"].get("labels")))[0]
        if not ready:
            e = errors.ApiError(503, "ServiceUnavailable", f'no endpoints available for service "{name}"')
            return e.code, json.dumps(e.status()).encode(), "application/json"
        return 200, b"ok", "text/plain; charset=utf-8"
