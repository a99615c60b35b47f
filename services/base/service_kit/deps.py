"""A dependency (database, broker) connected in the background with backoff, so startup never blocks on it.

The process serves /healthz at once; readiness reports the dependency down until the first connection is made,
and again whenever the service reports it lost (`lost()`), after which the same loop reconnects.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_when_event_set, wait_exponential_jitter

T = TypeVar("T")
log = logging.getLogger("service_kit.deps")


class Dependency(Generic[T]):
    """`connect()` retried with exponential backoff and jitter until it returns, in a daemon thread."""

    def __init__(self, name: str, connect: Callable[[], T], stop: threading.Event,
                 close: Callable[[T], None] | None = None, max_wait_s: float = 5.0) -> None:
        self.name = name
        self._connect = connect
        self._close = close
        self._stop = stop
        self._max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._wanted.set()
        self.resource: T | None = None
        self.error = "not connected yet"
        self.attempts = 0

    @property
    def up(self) -> bool:
        return self.resource is not None

    def state(self) -> dict[str, object]:
        """For /health: is it up, and if not, why."""
        return {"up": self.up, **({} if self.up else {"error": self.error, "attempts": self.attempts})}

    def start(self) -> Dependency[T]:
        threading.Thread(target=self._loop, name=f"connect-{self.name}", daemon=True).start()
        return self

    def wait(self, timeout_s: float | None = None) -> T | None:
        """Block until connected (or timeout/shutdown); the resource or None."""
        deadline_step = 0.1
        waited = 0.0
        while self.resource is None and not self._stop.is_set() and (timeout_s is None or waited < timeout_s):
            self._stop.wait(deadline_step)
            waited += deadline_step
        return self.resource

    def lost(self, error: BaseException) -> None:
        """The service saw the connection fail: mark it down and let the loop reconnect."""
        with self._lock:
            resource, self.resource = self.resource, None
            self.error = _short(error)
        if resource is not None:
            log.warning("%s connection lost: %s; reconnecting", self.name, self.error)
            if self._close is not None:
                try:
                    self._close(resource)
                except Exception:  # noqa: BLE001 - closing a broken connection may fail too
                    pass
        self._wanted.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait(0.5)
            if not self._wanted.is_set() or self._stop.is_set():
                continue
            self._wanted.clear()
            try:
                for attempt in Retrying(retry=retry_if_exception_type(Exception), reraise=True,
                                        wait=wait_exponential_jitter(initial=0.2, max=self._max_wait_s, jitter=0.2),
                                        stop=stop_when_event_set(self._stop), before_sleep=self._before_sleep):
                    with attempt:
                        self.attempts += 1
                        resource = self._connect()
            except Exception as error:  # noqa: BLE001 - only reached when stopping
                self.error = _short(error)
                return
            with self._lock:
                self.resource = resource
                self.error = ""
            log.info("%s connected after %d attempt(s)", self.name, self.attempts)
            self.attempts = 0

    def _before_sleep(self, state) -> None:
        error = state.outcome.exception()
        self.error = _short(error)
        level = logging.WARNING if state.attempt_number in (1, 10) or state.attempt_number % 50 == 0 else logging.DEBUG
        log.log(level, "%s not reachable (attempt %d): %s; retrying in %.1f s", self.name, state.attempt_number,
                self.error, state.next_action.sleep if state.next_action else 0)


def _short(error: BaseException | None) -> str:
    text = str(error or "").strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
