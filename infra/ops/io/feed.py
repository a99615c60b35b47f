"""Watch streams of several Kubernetes collections merged into one queue, surviving drops.

A watch can end at any time (server timeout, dropped connection, 410 Gone after a compaction). Each
stream resumes from the last resourceVersion it saw; after a 410 it re-lists and hands the tracker a
SYNC with the full current set, so deletions missed while disconnected are not lost. Objects stay
plain dicts, so the tracker reads exactly what the API server sent.
"""
from __future__ import annotations

import json
import queue
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from infra.ops.io.kube import Kube, api_reason, is_transient

WATCH_TIMEOUT_S = 30  # the server ends each watch after this; we resume from the last resourceVersion
MAX_BACKOFF_S = 1.0


@dataclass(frozen=True)
class Source:
    """One collection to follow, e.g. the pods of a Deployment in a namespace."""

    kind: str
    path: str
    query: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Change:
    """What a stream reports: ADDED/MODIFIED/DELETED with an object, SYNC with the full list, or FAILED."""

    type: str
    kind: str
    obj: Any = None


@dataclass
class Feed:
    """Background watchers for `sources`, all feeding `changes`; close() stops them."""

    kube: Kube
    sources: list[Source]
    changes: queue.Queue = field(default_factory=queue.Queue)
    _closed: threading.Event = field(default_factory=threading.Event)
    _responses: dict[str, Any] = field(default_factory=dict)

    def __enter__(self) -> Feed:
        for source in self.sources:
            threading.Thread(target=self._follow, args=(source,), name=f"watch-{source.kind}", daemon=True).start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        for response in list(self._responses.values()):
            # Shut the socket down rather than close() the response: close() waits for the reading thread.
            sock = getattr(getattr(response, "connection", None), "sock", None)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _follow(self, source: Source) -> None:
        version: str | None = None
        backoff = 0.05
        while not self._closed.is_set():
            try:
                if version is None:
                    listing = self.kube.request("GET", source.path, query=list(source.query))
                    version = listing["metadata"].get("resourceVersion") or "0"
                    self.changes.put(Change("SYNC", source.kind, listing.get("items") or []))
                version = self._stream(source, version)
                backoff = 0.05
            except ApiException as exc:
                if exc.status == 410:
                    version = None
                elif is_transient(exc):
                    time.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                else:
                    self.changes.put(Change("FAILED", source.kind, f"watching {source.kind}: {api_reason(exc)}"))
                    return
            except Exception:  # noqa: BLE001 - a dropped or closed stream breaks in many ways; resume or stop
                if self._closed.is_set():
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _stream(self, source: Source, version: str) -> str | None:
        """Follow one watch request until it ends; returns the version to resume from (None: re-list)."""
        query = [*source.query, ("watch", "true"), ("resourceVersion", version), ("allowWatchBookmarks", "true"),
                 ("timeoutSeconds", str(WATCH_TIMEOUT_S))]
        response = self.kube.api.call_api(source.path, "GET", query_params=query,
                                          header_params={"Accept": "application/json"},
                                          auth_settings=["BearerToken"], _preload_content=False,
                                          _return_http_data_only=True,
                                          _request_timeout=(5, WATCH_TIMEOUT_S + 10))
        self._responses[source.kind] = response
        try:
            buffer = b""
            for chunk in response.stream(4096, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            return None
                        raise ApiException(status=obj.get("code") or 500, reason=obj.get("message", "watch error"))
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event.get("type") != "BOOKMARK":
                        self.changes.put(Change(event["type"], source.kind, obj))
                if self._closed.is_set():
                    break
        finally:
            self._responses.pop(source.kind, None)
            response.release_conn()
        return version
