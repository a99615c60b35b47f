"""Kubernetes objects as the kubesim tests write them, and the check that a Deployment rolled out, shared by the
emulator's own test modules (tests/kubesim/tests/)."""
from __future__ import annotations


def deployment(name="web", image="repo/app:1", replicas=3, surge="25%", unavailable="25%", **spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}, **spec}}


def rolled_out(apps, name="web", ns="default"):
    d = apps.read_namespaced_deployment(name, ns)
    s = d.status
    if s is None:
        return False
    return (s.observed_generation == d.metadata.generation and (s.updated_replicas or 0) == d.spec.replicas
            and (s.replicas or 0) == d.spec.replicas and (s.available_replicas or 0) == d.spec.replicas) and d
