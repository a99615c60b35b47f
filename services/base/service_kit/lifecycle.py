"""SIGTERM with a deadline: stop taking work, finish what is in hand before the kubelet's SIGKILL, or give it back.

The kubelet sends SIGTERM after the preStop hook and SIGKILL terminationGracePeriodSeconds after the pod's
deletion began, so the process has GRACE_SECONDS (= grace period - preStop sleep, set by the manifest) from
SIGTERM. The deadline keeps a margin below that to hand work back and flush logs. A second signal means "now".
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("service_kit.lifecycle")
# Time kept back from GRACE_SECONDS to give work back (nack, rollback) and flush the last log lines.
MARGIN_SECONDS = 1.0
EXIT_ABANDONED = 3


class Shutdown:
    """The process's shutdown state: `requested` is set by the first SIGTERM/SIGINT, with a deadline."""

    def __init__(self, grace_s: float, margin_s: float = MARGIN_SECONDS) -> None:
        self.grace_s = grace_s
        self.margin_s = min(margin_s, grace_s / 2)
        self.requested = threading.Event()
        self.forced = threading.Event()
        self.deadline: float | None = None
        self.listeners: list[Callable[[], None]] = []

    def install(self) -> Shutdown:
        """Take SIGTERM and SIGINT in a thread of their own, before any other thread starts.

        A Python signal handler runs in the main thread only between bytecodes, so a main thread blocked in a
        C call (a database round trip) would not turn readiness off until the call returned. Blocked in every
        thread and taken with sigwait, the signal is seen at once whatever the main thread is doing.
        """
        wanted = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, wanted)  # inherited by every thread started after this

        def wait() -> None:
            while True:
                self.request(signal.Signals(signal.sigwait(wanted)).name)

        threading.Thread(target=wait, name="signals", daemon=True).start()
        return self

    def request(self, why: str = "SIGTERM") -> None:
        if self.requested.is_set():
            self.forced.set()
            log.warning("%s again: stopping now", why)
            return
        self.deadline = time.monotonic() + max(self.grace_s - self.margin_s, 0.0)
        self.requested.set()
        log.info("%s: stopping; in-flight work has %.1f s", why, self.remaining(), extra={
            "fields": {"grace_seconds": self.grace_s}})
        for listener in self.listeners:
            listener()

    def remaining(self) -> float:
        """Seconds left before the deadline (inf before a shutdown was requested)."""
        return float("inf") if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        return self.forced.is_set() or (self.deadline is not None and time.monotonic() >= self.deadline)

    def watchdog(self, busy: Callable[[], str | None], give_back: Callable[[str], None] | None = None) -> None:
        """At the deadline, if `busy()` still names in-flight work, log it and exit EXIT_ABANDONED at once.

        Exiting closes the process's connections: the broker requeues an unacked message, the database rolls
        back an open transaction. That is what SIGKILL would do a moment later, but logged and on our terms.
        """
        def watch() -> None:
            self.requested.wait()
            while not self.expired:
                self.forced.wait(min(self.remaining(), 0.5) or 0.01)
            work = busy()
            if work is None:
                return
            if give_back is not None:
                give_back(work)
            log.error("grace period over with %s in flight: giving it back and exiting", work,
                      extra={"fields": {"outcome": "abandoned"}})
            for handler in logging.getLogger().handlers:
                handler.flush()
            sys.stdout.flush()
            os._exit(EXIT_ABANDONED)

        threading.Thread(target=watch, name="shutdown-watchdog", daemon=True).start()
