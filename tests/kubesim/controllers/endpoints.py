"""Endpoints controller: each Service with a selector gets an Endpoints object listing its pods.

Ready pods go to `addresses`, unready ones to `notReadyAddresses`, with the Service's ports
resolved to container ports (named targetPorts looked up on the pod), as the real controller does.
"""
from __future__ import annotations

from ..api import is_pod_ready
from ..resources import lookup
from ..selectors import match_label_selector

SERVICES, ENDPOINTS, PODS = lookup("", "v1", "services"), lookup("", "v1", "endpoints"), lookup("", "v1", "pods")


def _target_port(port: dict, pod: dict):
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, str):
        for c in pod["spec"].get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("name") == target:
                    return p["containerPort"]
        return None
    return target


class EndpointsController:
    watches = ("core/services", "core/pods", "core/endpoints")

    def __init__(self, cluster):
        self.c = cluster

    def sync(self) -> None:
        services, _ = self.c.store.list(SERVICES)
        if not services:
            return
        pods, _ = self.c.store.list(PODS, None, lambda p: bool((p.get("status") or {}).get("podIP"))
                                    and not p["metadata"].get("deletionTimestamp"))
        for svc in services:
            selector = (svc.get("spec") or {}).get("selector")
            if selector:
                self._sync(svc, [p for p in pods if p["metadata"]["namespace"] == svc["metadata"]["namespace"]
                                 and match_label_selector({"matchLabels": selector}, p["metadata"].get("labels"))])

    def _sync(self, svc: dict, pods: list[dict]) -> None:
        meta = svc["metadata"]
        subsets = []
        for port in svc["spec"].get("ports") or []:
            ready, unready = [], []
            number = None
            for pod in pods:
                number = _target_port(port, pod)
                if number is None:
                    continue
                addr = {"ip": pod["status"]["podIP"], "nodeName": pod["spec"].get("nodeName"),
                        "targetRef": {"kind": "Pod", "namespace": meta["namespace"], "name": pod["metadata"]["name"],
                                      "uid": pod["metadata"]["uid"]}}
                (ready if is_pod_ready(pod) else unready).append(addr)
            if ready or unready:
                subset = {"ports": [{k: v for k, v in {"name": port.get("name"), "port": number,
                                                        "protocol": port.get("protocol", "TCP")}.items() if v}]}
                if ready:
                    subset["addresses"] = sorted(ready, key=lambda a: a["ip"])
                if unready:
                    subset["notReadyAddresses"] = sorted(unready, key=lambda a: a["ip"])
                subsets.append(subset)
        current = self.c.store.get(ENDPOINTS, meta["namespace"], meta["name"])
        if current is None:
            self.c.store.create(ENDPOINTS, {"metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                                         "labels": dict(meta.get("labels") or {})},
                                            "subsets": subsets})
        elif current.get("subsets") != subsets:
            self.c.store.put(ENDPOINTS, meta["namespace"], meta["name"], ("subsets",), subsets)
