"""Is the cluster healthy enough to take the next step? Nodes Ready, Deployments available,
StatefulSets ready. Every long operation checks this between steps, so a problem stops it early.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from kubernetes import client

from infra.ops.io.kube import Kube
from infra.ops.lifecycle.errors import NotHealthy as NotHealthy  # raised here; callers import it from here


def is_ready(node: client.V1Node) -> bool:
    conditions = (node.status and node.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def unready_nodes(kube: Kube, selector: str | None = None) -> list[str]:
    nodes = kube.call(kube.core.list_node, label_selector=selector or "").items
    return sorted(node.metadata.name for node in nodes if not is_ready(node))


def unhealthy_workloads(kube: Kube) -> list[str]:
    """Deployments with fewer available replicas than wanted, StatefulSets with fewer ready ones."""
    problems = []
    for kind, listing, field, word in (
            ("Deployment", kube.apps.list_deployment_for_all_namespaces, "available_replicas", "available"),
            ("StatefulSet", kube.apps.list_stateful_set_for_all_namespaces, "ready_replicas", "ready")):
        for workload in kube.call(listing).items:
            wanted = workload.spec.replicas if workload.spec.replicas is not None else 1
            have = getattr(workload.status, field, None) or 0
            if have < wanted:
                problems.append(f"{kind} {workload.metadata.namespace}/{workload.metadata.name} {have}/{wanted} {word}")
    return problems


def wait_until(check: Callable[[], list[str]], what: str, timeout: float, poll: float = 1.0,
               on_event: Callable[[str, str], None] | None = None) -> None:
    """Poll `check` (a list of problems) until it is empty or the time is up; report each change of state."""
    deadline = time.monotonic() + timeout
    shown: list[str] | None = None
    while True:
        problems = check()
        if not problems:
            return
        if on_event and problems != shown:
            on_event("waiting", f"{what}: {_summary(problems)}")
            shown = problems
        if time.monotonic() > deadline:
            raise NotHealthy(f"{what} not reached after {timeout:.0f}s: {_summary(problems)}")
        time.sleep(poll)


def _summary(problems: list[str]) -> str:
    return "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")


def wait_healthy(kube: Kube, what: str, timeout: float, poll: float = 1.0,
                 on_event: Callable[[str, str], None] | None = None) -> None:
    """Every node Ready, every Deployment available, every StatefulSet ready."""
    wait_until(lambda: unready_nodes(kube) + unhealthy_workloads(kube), what, timeout, poll, on_event)
