"""Workloads for node-lifecycle tests and the drain bench, created through the official client on kubesim.

Also a PDB watchdog that samples the emulator's pods and counts moments when a budget is violated,
measured independently of the API server's own enforcement.
"""
from __future__ import annotations

import threading
import time

from kubernetes import client

NAMESPACE = "apps-dev"


def namespace(api: client.ApiClient, name: str = NAMESPACE) -> None:
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})


def _template(app: str, grace: int | None = None) -> dict:
    spec: dict = {"containers": [{"name": app, "image": f"{app}:1"}]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": {"labels": {"app": app}}, "spec": spec}


def deployment(api: client.ApiClient, app: str, replicas: int, ns: str = NAMESPACE, grace: int | None = None,
               max_unavailable: int | None = None, min_available: int | None = None) -> None:
    client.AppsV1Api(api).create_namespaced_deployment(ns, {"metadata": {"name": app}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": app}}, "template": _template(app, grace)}})
    budget(api, app, ns, max_unavailable, min_available)


def budget(api: client.ApiClient, app: str, ns: str = NAMESPACE, max_unavailable: int | None = None,
           min_available: int | None = None) -> None:
    if max_unavailable is None and min_available is None:
        return
    spec: dict = {"selector": {"matchLabels": {"app": app}}}
    if max_unavailable is not None:
        spec["maxUnavailable"] = max_unavailable
    if min_available is not None:
        spec["minAvailable"] = min_available
    client.PolicyV1Api(api).create_namespaced_pod_disruption_budget(ns, {"metadata": {"name": app}, "spec": spec})


def statefulset(api: client.ApiClient, app: str, replicas: int, ns: str = NAMESPACE,
                min_available: int | None = None) -> None:
    """A StatefulSet whose pods each hold a zone-bound volume (volumeClaimTemplates)."""
    client.AppsV1Api(api).create_namespaced_stateful_set(ns, {"metadata": {"name": app}, "spec": {
        "replicas": replicas, "serviceName": app, "selector": {"matchLabels": {"app": app}},
        "template": _template(app),
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
    budget(api, app, ns, min_available=min_available)


def daemonset(api: client.ApiClient, app: str, ns: str = NAMESPACE) -> None:
    client.AppsV1Api(api).create_namespaced_daemon_set(ns, {"metadata": {"name": app}, "spec": {
        "selector": {"matchLabels": {"app": app}}, "template": _template(app)}})


def running(cluster, ns: str = NAMESPACE) -> list[dict]:
    return [p for p in cluster.pods(ns) if (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


def wait_running(cluster, count: int, ns: str = NAMESPACE, timeout: float = 60.0) -> None:
    cluster.wait_for(lambda: len([p for p in running(cluster, ns) if _ready(p)]) >= count, timeout=timeout,
                     message=f"{count} Ready pods in {ns}")


def _ready(pod: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def zone_of(cluster, node_name: str) -> str:
    node = next(n for n in cluster.nodes() if n["metadata"]["name"] == node_name)
    return node["metadata"]["labels"]["topology.kubernetes.io/zone"]


class BudgetWatch:
    """Samples healthy pods per app every few ms; counts samples below what each budget guarantees."""

    def __init__(self, cluster, guarantees: dict[str, int], ns: str = NAMESPACE, every: float = 0.005):
        self.cluster, self.guarantees, self.ns, self.every = cluster, guarantees, ns, every
        self.violations: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BudgetWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            pods = self.cluster.pods(self.ns)
            for app, minimum in self.guarantees.items():
                healthy = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get("app") == app
                              and _ready(p) and not p["metadata"].get("deletionTimestamp"))
                if healthy < minimum:
                    self.violations.append(f"{app}: {healthy} healthy < {minimum} at {time.monotonic():.3f}")
            self.samples += 1
            time.sleep(max(self.every, 2 * (time.monotonic() - began)))  # leave the emulator most of the CPU

