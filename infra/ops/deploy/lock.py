"""One deploy at a time per service and environment: a coordination.k8s.io Lease held for the deploy.

The Lease lives in the cluster (not on a laptop), so CI and people see each other. It has an expiry and is
renewed while the deploy runs: a deploy that is killed outright stops renewing and its Lease expires, so
it never blocks the service forever. Takeover of an expired Lease and release both go through the
Lease's resourceVersion, so two deploys racing for it cannot both win.
"""
from __future__ import annotations

import getpass
import os
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client.exceptions import ApiException

from infra.ops.errors import Failed
from infra.ops.io.kube import Kube, KubeError, api_reason

LEASE_S = 60  # a holder that stops renewing for this long has lost the lock


class LockHeld(Failed):
    """Another deploy holds the lock; the message says who and since when."""


def identity() -> str:
    """Who is deploying: the CI actor when in GitHub Actions, else user@host, plus the pid."""
    actor = os.environ.get("GITHUB_ACTOR")
    who = f"{actor} (GitHub Actions run {os.environ.get('GITHUB_RUN_ID', '?')})" if actor else \
        f"{getpass.getuser()}@{socket.gethostname()}"
    return f"{who} pid {os.getpid()}"


def _micro(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@dataclass
class DeployLock:
    """The Lease `deploy-<service>` in the service's namespace; use as a context manager."""

    kube: Kube
    namespace: str
    service: str
    holder: str = field(default_factory=identity)
    lease_s: int = LEASE_S
    _lease: dict[str, Any] | None = field(default=None, init=False)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @property
    def name(self) -> str:
        return f"deploy-{self.service}"

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases"

    def _body(self, now: datetime, version: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace,
                                "labels": {"app.kubernetes.io/name": self.service,
                                           "app.kubernetes.io/managed-by": "eks-platform-deploy"}}
        if version:
            meta["resourceVersion"] = version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": self.holder, "leaseDurationSeconds": self.lease_s,
                         "acquireTime": _micro(now), "renewTime": _micro(now)}}

    def acquire(self) -> None:
        """Take the Lease, or take over an expired one; LockHeld when someone else holds a live one."""
        now = datetime.now(UTC)
        try:
            self._lease = self.kube.request("POST", self.path, body=self._body(now))
        except ApiException as exc:
            if exc.status != 409:
                raise KubeError(f"taking lease {self.namespace}/{self.name}: {api_reason(exc)}") from None
            self._take_over(now)
        self._stop.clear()
        threading.Thread(target=self._renew_loop, name=f"lease-{self.name}", daemon=True).start()

    def _take_over(self, now: datetime) -> None:
        current = self.kube.request("GET", f"{self.path}/{self.name}")
        spec = current.get("spec") or {}
        renewed = _parse(spec.get("renewTime")) or _parse(spec.get("acquireTime"))
        duration = int(spec.get("leaseDurationSeconds") or self.lease_s)
        if spec.get("holderIdentity") == self.holder:  # our own create, retried after its answer was lost
            self._lease = current
            return
        if spec.get("holderIdentity") and renewed and renewed + timedelta(seconds=duration) > now:
            since = _parse(spec.get("acquireTime")) or renewed
            raise LockHeld(f"a deploy of {self.service} in {self.namespace} is in progress by "
                           f"{spec['holderIdentity']} since {since:%Y-%m-%d %H:%M:%S} UTC (lease "
                           f"{self.namespace}/{self.name}, expires {duration}s after its last renewal); wait for it "
                           f"to finish")
        try:
            self._lease = self.kube.request("PUT", f"{self.path}/{self.name}",
                                            body=self._body(now, current["metadata"]["resourceVersion"]))
        except ApiException as exc:
            if exc.status == 409:  # someone else took it over between our read and write
                raise LockHeld(f"a deploy of {self.service} in {self.namespace} just took the expired lease "
                               f"{self.namespace}/{self.name}; wait for it to finish") from None
            raise KubeError(f"taking over lease {self.namespace}/{self.name}: {api_reason(exc)}") from None

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.renew()
            except (KubeError, ApiException):
                continue  # the next attempt may succeed; expiry is long enough for a few misses

    def renew(self) -> None:
        with self._lock:
            if self._lease is None:
                return
            body = self._body(datetime.now(UTC), self._lease["metadata"]["resourceVersion"])
            body["spec"]["acquireTime"] = self._lease["spec"]["acquireTime"]
            try:
                self._lease = self.kube.request("PUT", f"{self.path}/{self.name}", body=body)
            except ApiException as exc:
                raise KubeError(f"renewing lease {self.namespace}/{self.name}: {api_reason(exc)}") from None

    def release(self) -> None:
        """Delete the Lease if it is still ours (precondition on its uid and resourceVersion)."""
        self._stop.set()
        with self._lock:
            lease, self._lease = self._lease, None
        if lease is None:
            return
        meta = lease["metadata"]
        try:
            self.kube.request("DELETE", f"{self.path}/{self.name}", body={
                "apiVersion": "v1", "kind": "DeleteOptions",
                "preconditions": {"uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}})
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise KubeError(f"releasing lease {self.namespace}/{self.name}: {api_reason(exc)}") from None

    def __enter__(self) -> DeployLock:
        self.acquire()
        return self

    def __exit__(self, *_: Any) -> None:
        self.release()
