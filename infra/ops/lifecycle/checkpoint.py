"""Progress of long operations kept in a ConfigMap in the cluster they change.

The state lives next to what it describes, so a migration interrupted on one laptop can be resumed
(or rolled back) from another, and two operators see the same progress.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infra.ops.io.retry import kube_retry

MANAGED_BY = {"app.kubernetes.io/managed-by": "eks-platform"}


@dataclass
class Checkpoint:
    """One operation's state (a JSON object) in ConfigMap `eks-platform-<name>`."""

    api: client.ApiClient
    name: str
    namespace: str = "kube-system"
    exists: bool = field(default=False, init=False)  # as this process last loaded, saved or cleared it

    @property
    def configmap(self) -> str:
        return f"eks-platform-{self.name}"

    @property
    def _core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @kube_retry
    def load(self) -> dict[str, Any] | None:
        try:
            found = self._core.read_namespaced_config_map(self.configmap, self.namespace)
        except ApiException as error:
            if error.status == 404:
                self.exists = False
                return None
            raise
        state = json.loads((found.data or {}).get("state", "null"))
        self.exists = state is not None
        return state

    def resumable(self, resume: bool, what: str, progress: Callable[[dict[str, Any]], str], hint: str,
                  refused: type[Exception]) -> dict[str, Any] | None:
        """The saved state to resume from; refuses starting over a run in progress, or resuming nothing."""
        state = self.load()
        if state and not resume:
            raise refused(f"{what} is already in progress ({progress(state)}); {hint}")
        if resume and not state:
            raise refused(f"no {what} to resume; run without --resume")
        return state

    @kube_retry
    def save(self, state: dict[str, Any]) -> None:
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=self.configmap, namespace=self.namespace, labels=MANAGED_BY),
            data={"state": json.dumps(state, sort_keys=True)})
        try:
            self._core.replace_namespaced_config_map(self.configmap, self.namespace, body)
        except ApiException as error:
            if error.status != 404:
                raise
            self._core.create_namespaced_config_map(self.namespace, body)
        self.exists = True

    @kube_retry
    def clear(self) -> None:
        try:
            self._core.delete_namespaced_config_map(self.configmap, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
        self.exists = False
