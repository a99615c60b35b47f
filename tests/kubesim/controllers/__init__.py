"""The simulated control plane: one background loop running every controller in turn.

Controllers are level-triggered `sync()` methods reading the store, so ordering only affects
latency. The loop wakes on any store write or every TICK seconds (for time-based behaviour).
A controller with a `watches` tuple of type keys ("apps/deployments") is skipped while none of
those types changed, unless it is time-driven: `periodic = <wall seconds>` runs it at
least that often; this keeps an idle cluster cheap. Add a controller by appending it to `ControlPlane.loops`.
"""
from __future__ import annotations

import threading
import time
import traceback

from ..kubelet import Kubelet
from ..scheduler import Scheduler
from .collector import GarbageCollector
from .daemonset import DaemonSetController
from .deployment import DeploymentController
from .disruption import DisruptionController
from .endpoints import EndpointsController
from .job import JobController
from .replicaset import Availability, ReplicaSetController
from .statefulset import StatefulSetController

TICK = 0.01  # seconds of wall time between passes when nothing changes
GC_EVERY = 0.05


class ControlPlane:
    def __init__(self, cluster):
        self.c = cluster
        self.availability = Availability(cluster)
        self.loops = [DeploymentController(cluster), ReplicaSetController(cluster, self.availability),
                      StatefulSetController(cluster), DaemonSetController(cluster), JobController(cluster),
                      Scheduler(cluster), Kubelet(cluster), DisruptionController(cluster), EndpointsController(cluster)]
        self.collector = GarbageCollector(cluster)
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubesim-control-plane", daemon=True)
        self.passes = 0
        self.gc_passes = 0  # completed garbage-collector passes: tests wait on it to see "it had its chance"
        self._seen: dict[int, tuple[int, float]] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.c.store.changed.set()
        self._thread.join(timeout=30)  # returns as soon as the loop sees the stop

    def _run(self) -> None:
        last_gc = 0.0
        while not self._stop.is_set():
            self.c.store.changed.clear()
            self.run_once(gc=time.monotonic() - last_gc >= GC_EVERY)
            if time.monotonic() - last_gc >= GC_EVERY:
                last_gc = time.monotonic()
            self.c.store.changed.wait(TICK)
            time.sleep(0.002)  # coalesce bursts of writes

    def _due(self, loop, now: float) -> bool:
        """Run a controller only when a type it watches changed, or periodically if it is time-driven."""
        watches = getattr(loop, "watches", None)
        if watches is None:
            return True
        seen = max((self.c.store.type_rv.get(k, 0) for k in watches), default=0)
        last_seen, last_run = self._seen.get(id(loop), (-1, 0.0))
        period = getattr(loop, "periodic", None)
        if seen != last_seen or (period is not None and now - last_run >= period):
            self._seen[id(loop)] = (seen, now)
            return True
        return False

    def run_once(self, gc: bool = True, force: bool = False) -> None:
        self.passes += 1
        now = time.monotonic()
        for loop in self.loops + ([self.collector] if gc else []):
            if self._stop.is_set():
                return
            if not force and not self._due(loop, now):
                continue
            try:
                loop.sync()
                if loop is self.collector:
                    self.gc_passes += 1
            except Exception:  # keep the cluster alive; tests assert cluster.internal_errors is empty
                self.errors.append(traceback.format_exc())
                self.c.internal_errors.append(self.errors[-1])
