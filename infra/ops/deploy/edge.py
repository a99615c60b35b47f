"""The public check of a deploy: GET https://<host><readiness path> through the real edge (DNS, ALB, TLS).

The in-cluster smoke check proves the pods answer; this proves what a client gets: the name resolves, the load
balancer presents a certificate valid for the name, and routes to a ready pod. It retries within its own budget
(a pod that just became Ready takes a health-check interval or two to be in service at the ALB) and is skipped,
with a line saying so, where the name does not resolve from where the deploy runs (a private runner, offline
tests): the in-cluster check then stands alone.
"""
from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from infra.ops.deploy.rollout import Reason, Verdict
from infra.ops.deploy.target import pod_spec, workload
from infra.ops.errors import Failed

PASSED, FAILED, SKIPPED = Reason.EdgeCheckPassed, Reason.EdgeCheckFailed, Reason.EdgeCheckSkipped
Resolver = Callable[[str, int], list[str]]


class NotServed(Failed):
    """The edge answered, but not with 2xx (or not at all): another try within the budget, then the verdict."""


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to from here (the system resolver, as a client would use)."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


@dataclass(frozen=True)
class PublicCheck:
    """GET https://host:port/path through the edge; `cafile` None trusts the system's CAs (ACM's chain is public)."""

    host: str
    path: str
    port: int = 443
    budget_s: float = 60.0
    request_timeout_s: float = 5.0
    cafile: str | None = None
    resolver: Resolver = resolve

    @property
    def url(self) -> str:
        port = "" if self.port == 443 else f":{self.port}"
        return f"https://{self.host}{port}{self.path}"

    def run(self) -> Verdict:
        started = time.monotonic()
        try:
            addresses = self.resolver(self.host, self.port)
        except (socket.gaierror, UnicodeError) as error:
            return Verdict(True, SKIPPED, message=f"public check skipped: {self.host} does not resolve from here "
                                                  f"({error}); only the in-cluster check ran")
        last = "no answer"
        try:
            for attempt in Retrying(retry=retry_if_exception_type(NotServed), stop=stop_after_delay(self.budget_s),
                                    wait=wait_exponential_jitter(multiplier=0.5, max=5, jitter=0.5), reraise=True):
                with attempt:
                    last = self._get(addresses)
        except NotServed as error:
            return Verdict(False, FAILED, message=f"GET {self.url} through the edge: {error} (for "
                                                  f"{self.budget_s:g}s)", elapsed_s=time.monotonic() - started)
        return Verdict(True, PASSED, message=f"GET {self.url} answered {last}", elapsed_s=time.monotonic() - started)

    def _get(self, addresses: list[str]) -> str:
        """One GET against the first address that connects, verifying the certificate for the host name."""
        failure = "no address"
        for address in addresses:
            pool = urllib3.HTTPSConnectionPool(
                address, self.port, server_hostname=self.host, assert_hostname=self.host, cert_reqs="CERT_REQUIRED",
                ca_certs=self.cafile, timeout=urllib3.Timeout(self.request_timeout_s), retries=False)
            try:
                response = pool.request("GET", self.path, headers={"Host": self.host}, redirect=False)
            except urllib3.exceptions.SSLError as error:
                failure = f"TLS failed at {address}: {_tls_reason(error)}"
                continue
            except urllib3.exceptions.HTTPError as error:
                failure = f"no answer from {address} ({type(error).__name__})"
                continue
            finally:
                pool.close()
            if 200 <= response.status < 300:
                return f"{response.status}"
            raise NotServed(f"answered {response.status} {response.reason or ''}".rstrip())
        raise NotServed(failure)


def _tls_reason(error: BaseException) -> str:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or "certificate verify failed"
        if isinstance(cause, ssl.SSLError):
            return cause.reason or str(cause)
        cause = cause.__cause__ or cause.__context__ or next(
            (arg for arg in getattr(cause, "args", ()) if isinstance(arg, BaseException)), None)
    return str(error)


def readiness_path(objects: list[dict[str, Any]], service: str) -> str | None:
    """The HTTP readiness path of the service's workload in the applied objects (what the ALB health-checks too)."""
    found = workload(objects, service)
    probe = next((c["readinessProbe"]["httpGet"] for c in pod_spec(found or {}).get("containers") or []
                  if (c.get("readinessProbe") or {}).get("httpGet")), None)
    return str(probe.get("path") or "/") if probe is not None else None


def public_check(objects: list[dict[str, Any]], service: str, host: str, budget_s: float = 60.0) -> Verdict:
    """The public check of a deployed service whose stack gives it `host` (eks-platform:edge.hostnames)."""
    path = readiness_path(objects, service)
    if path is None:
        return Verdict(True, SKIPPED, message=f"public check skipped: {service} has no HTTP readiness probe")
    return PublicCheck(host, path, budget_s=budget_s).run()
