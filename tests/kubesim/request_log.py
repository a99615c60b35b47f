"""`RequestLog`: the (method, path, status) of every HTTP request, safe to read while requests are served.

The server records a request before it writes the response, so a client that has its answer always
finds the entry; readers iterate over a snapshot, never over a deque another thread is appending to.
"""
from __future__ import annotations

import threading
from collections import deque


class RequestLog:
    def __init__(self, maxlen: int = 5000):
        self._lock = threading.Lock()
        self._entries: deque = deque(maxlen=maxlen)

    def append(self, entry: tuple[str, str, int]) -> None:
        with self._lock:
            self._entries.append(entry)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def snapshot(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return list(self._entries)

    def __iter__(self):
        return iter(self.snapshot())

    def __getitem__(self, index):
        return self.snapshot()[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
