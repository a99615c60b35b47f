"""Progress of long operations kept in a ConfigMap in the cluster they change.

The state lives next to what it describes, so a migration interrupted on one laptop can be resumed
(or rolled back) from another, and two operators see the same progress. `Checkpoint` is the phase
runner's store (infra.ops.lifecycle.phases) for migrations and upgrades, each reading its state back against
its own `Progress` model; `stops` is how either of them ends early: a one-line error that offers --resume only
when this checkpoint holds progress.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from infra.ops.io.kube import Kube
from infra.ops.lifecycle.errors import RESUMABLE
from infra.ops.lifecycle.phases import Progress, ResumeHint, read_state

MANAGED_BY = {"app.kubernetes.io/managed-by": "eks-platform"}


@dataclass
class Checkpoint:
    """One operation's state (a JSON object of `shape`) in ConfigMap `eks-platform-<name>`."""

    kube: Kube
    name: str
    shape: type[Progress] = Progress
    namespace: str = "kube-system"
    exists: bool = field(default=False, init=False)  # as this process last loaded, saved or cleared it

    @property
    def configmap(self) -> str:
        return f"eks-platform-{self.name}"

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.configmap}"

    def load(self) -> dict[str, Any] | None:
        try:
            found = self.kube.call(self.kube.core.read_namespaced_config_map, self.configmap, self.namespace)
        except ApiException as error:
            if error.status == 404:
                self.exists = False
                return None
            raise
        state = read_state((found.data or {}).get("state"), self.shape, self.where, self.repair)
        self.exists = True
        return state

    @property
    def repair(self) -> str:
        """How an operator fixes or drops a state that cannot be read."""
        kubectl = f"kubectl -n {self.namespace}"
        return (f"Fix its data.state (`{kubectl} edit configmap {self.configmap}`), or delete it to start over "
                f"(`{kubectl} delete configmap {self.configmap}`)")

    def save(self, state: dict[str, Any]) -> None:
        body = client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=self.configmap, namespace=self.namespace, labels=MANAGED_BY),
            data={"state": json.dumps(state, sort_keys=True)})
        try:
            self.kube.call(self.kube.core.replace_namespaced_config_map, self.configmap, self.namespace, body)
        except ApiException as error:
            if error.status != 404:
                raise
            self.kube.call(self.kube.core.create_namespaced_config_map, self.namespace, body)
        self.exists = True

    def clear(self) -> None:
        try:
            self.kube.call(self.kube.core.delete_namespaced_config_map, self.configmap, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
        self.exists = False


def resume_hint(resume_command: str) -> ResumeHint:
    """A migration's or upgrade's next step after a failure (RESUMABLE) or Ctrl-C."""
    return ResumeHint(kept=f"progress is checkpointed: fix the cause, then {resume_command}",
                      lost="nothing was checkpointed: fix the cause, then rerun", failures=RESUMABLE,
                      interrupts=True)


@contextmanager
def stops(checkpoint: Checkpoint, resume_command: str) -> Iterator[None]:
    """Around each entry point of a migration or upgrade: failures gain the resume hint (RESUMABLE), Ctrl-C
    becomes Interrupted with it."""
    with resume_hint(resume_command).around(checkpoint):
        yield
