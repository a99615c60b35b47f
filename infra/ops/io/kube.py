"""Kubernetes API client from a kubeconfig (file path, or the default ~/.kube/config / KUBECONFIG), or from EKS.

One loader for every engine, so endpoints always come from the kubeconfig and never from code.
`Kube` (every engine's client) adds bounded tenacity retries on 429/5xx/connection errors to every call, so a
flaky API server slows a deploy down instead of failing it - and never hangs it. urllib3 itself does not retry:
one layer, one budget. `connect` (the CLI's way in) asks the server for /version first, so a wrong address,
a dead VPN or refused credentials are one line within EKS_PLATFORM_CONNECT_BUDGET_S, before any engine
starts. Objects are plain dicts (what kustomize renders), addressed by apiVersion/kind through `KINDS`.
"""
from __future__ import annotations

import base64
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from infra.ops import errors
from infra.ops.io.retry import connect_budget_s, notice, retrying
from infra.ops.io.retry import is_transient as is_transient  # engines (deploy, feed) import it from here


def _one_retry_layer(configuration: client.Configuration) -> client.Configuration:
    """urllib3 must not retry on its own (3 by default): Kube.call holds the only, bounded, budget."""
    configuration.retries = 0
    return configuration


class ExecPluginFailed(config.ConfigException, errors.Failed):
    """The kubeconfig's exec credential plugin (e.g. `aws eks get-token`) could not give credentials."""


class _PluginFailures(logging.Handler):
    """The kubernetes client reports a failing exec credential plugin with `logging.error` on the root logger (a
    stray "ERROR:root:..." line) and goes on without credentials; while a kubeconfig loads, those reports are
    collected here instead (root then has a handler, so logging prints nothing of its own)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "root":
            self.messages.append(record.getMessage())


def load_client(kubeconfig: str | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient for the kubeconfig's (or given) context; retries are the callers' (one budget).
    ExecPluginFailed, naming the plugin command, when its exec credential plugin cannot run."""
    configuration = client.Configuration()
    failures, root = _PluginFailures(), logging.getLogger()
    root.addHandler(failures)
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    finally:
        root.removeHandler(failures)
    if failures.messages:
        raise ExecPluginFailed(_plugin_failure(failures.messages[0]))
    return client.ApiClient(_one_retry_layer(configuration))


def _plugin_failure(message: str) -> str:
    """The client's words for a plugin that failed, as one line naming the command when the OS named it."""
    import re

    missing = re.search(r"\[Errno \d+\] ([^:]+): '(.+?)'", message)
    if missing:
        return f"its exec credential plugin {missing[2]!r} cannot run ({missing[1].lower()})"
    return f"its exec credential plugin failed ({(message.strip().splitlines() or ['no output'])[0]})"


T = TypeVar("T")
EKS_TOKEN_TTL_S = 600  # STS presigned URLs live 15 minutes; refresh well before that
K8S_AWS_ID = "x-k8s-aws-id"

# kind -> (plural, namespaced) for what services deploy plus what the engines touch.
KINDS: dict[str, tuple[str, bool]] = {
    "Namespace": ("namespaces", False), "ConfigMap": ("configmaps", True), "Secret": ("secrets", True),
    "Service": ("services", True), "ServiceAccount": ("serviceaccounts", True), "Pod": ("pods", True),
    "Deployment": ("deployments", True), "ReplicaSet": ("replicasets", True), "StatefulSet": ("statefulsets", True),
    "DaemonSet": ("daemonsets", True), "Job": ("jobs", True), "CronJob": ("cronjobs", True),
    "HorizontalPodAutoscaler": ("horizontalpodautoscalers", True),
    "PodDisruptionBudget": ("poddisruptionbudgets", True), "Ingress": ("ingresses", True),
    "NetworkPolicy": ("networkpolicies", True), "Lease": ("leases", True), "Role": ("roles", True),
    "RoleBinding": ("rolebindings", True), "PersistentVolumeClaim": ("persistentvolumeclaims", True),
}


class KubeError(RuntimeError, errors.Failed):
    """A Kubernetes call failed for good; the message names the object (or the server) and the API's reason."""


def api_reason(exc: ApiException) -> str:
    """The API server's own message from an error response (Status.message), else the HTTP reason."""
    import json

    try:
        return json.loads(exc.body or "{}").get("message") or f"{exc.status} {exc.reason}"
    except (ValueError, AttributeError):
        return f"{exc.status} {exc.reason}"


def ref(obj: dict[str, Any]) -> str:
    """Kind/namespace/name, how errors and reports name an object."""
    meta = obj.get("metadata") or {}
    return "/".join(p for p in (obj.get("kind", "?"), meta.get("namespace"), meta.get("name", "?")) if p)


def object_path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    if kind not in KINDS:
        raise KubeError(f"kind {kind} is not supported by the deploy engine; supported: {', '.join(sorted(KINDS))}")
    plural, namespaced = KINDS[kind]
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespaced:
        base += f"/namespaces/{namespace}"
    return f"{base}/{plural}" + (f"/{name}" if name else "")


@dataclass
class Kube:
    """An API client plus the retry budget every call gets."""

    api: client.ApiClient
    retry_budget_s: float = 30.0
    request_timeout_s: float = 15.0
    _typed: dict[Callable[..., Any], Any] = field(default_factory=dict, repr=False)

    @property
    def server(self) -> str:
        """The API server's URL, as the kubeconfig (or EKS) gave it."""
        return str(self.api.configuration.host)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(*args, **kwargs) with transient failures retried for at most retry_budget_s, announced while waiting."""
        kwargs.setdefault("_request_timeout", self.request_timeout_s)
        try:
            for attempt in retrying(self.retry_budget_s, f"the Kubernetes API at {self.server}"):
                with attempt:
                    return fn(*args, **kwargs)
        finally:
            notice(None)
        raise AssertionError("unreachable")  # pragma: no cover

    def reach(self, budget_s: float, attempt_timeout_s: float = 5.0, cluster: str | None = None) -> str:
        """GET /version until it answers, for at most budget_s; the server's version, or one-line KubeError.

        Run once at connect time so an unreachable server or refused credentials are reported before an
        engine starts, instead of as the first of many failing calls.
        """
        started = time.monotonic()
        tries = 0

        def version(**_: Any) -> dict[str, Any]:  # its own timeout: what is left of the budget
            nonlocal tries
            tries += 1
            left = budget_s - (time.monotonic() - started)
            timeout = max(0.5, min(attempt_timeout_s, left))
            return self.api.call_api("/version", "GET", header_params={"Accept": "application/json"},
                                     response_type="object", auth_settings=["BearerToken"],
                                     _return_http_data_only=True, _request_timeout=(timeout, timeout))

        probe = Kube(self.api, retry_budget_s=budget_s)
        try:
            found = probe.call(version)
        except urllib3.exceptions.LocationValueError as error:
            raise KubeError(f"the kubeconfig's server {self.server!r} is not a usable URL ({error}); fix it or "
                            f"pass --kubeconfig") from None
        except (ApiException, urllib3.exceptions.HTTPError) as error:
            spent = time.monotonic() - started
            tried = f"{tries} attempts in {spent:.0f} s" if tries > 1 else ""
            raise KubeError(str(errors.kube_failure(error, server=self.server, cluster=cluster, tried=tried))) from None
        return str((found or {}).get("gitVersion", "?"))

    def typed(self, cls: Callable[[client.ApiClient], T]) -> T:
        """A typed API group (client.CoreV1Api, client.AppsV1Api...) sharing this client."""
        if cls not in self._typed:
            self._typed[cls] = cls(self.api)
        return self._typed[cls]

    @property
    def core(self) -> client.CoreV1Api:
        return self.typed(client.CoreV1Api)

    @property
    def apps(self) -> client.AppsV1Api:
        return self.typed(client.AppsV1Api)

    def request(self, method: str, path: str, body: Any = None, query: list[tuple[str, Any]] | None = None,
                content_type: str = "application/json") -> dict[str, Any]:
        """A raw API call returning the decoded JSON body (objects stay plain dicts)."""
        return self.call(self.api.call_api, path, method, query_params=query or [],
                         header_params={"Content-Type": content_type, "Accept": "application/json"},
                         body=body, response_type="object", auth_settings=["BearerToken"],
                         _return_http_data_only=True)

    def get(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """The live version of a rendered object, or None when it does not exist."""
        meta = obj["metadata"]
        try:
            return self.request("GET", object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"),
                                                   meta["name"]))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KubeError(f"reading {ref(obj)}: {api_reason(exc)}") from None

    def apply(self, obj: dict[str, Any], manager: str, force: bool = False, dry_run: bool = False) -> dict[str, Any]:
        """Server-side apply `obj` as field manager `manager`; dry_run asks the server to only compute the result."""
        meta = obj["metadata"]
        query: list[tuple[str, Any]] = [("fieldManager", manager)]
        if force:
            query.append(("force", "true"))
        if dry_run:
            query.append(("dryRun", "All"))
        try:
            return self.request("PATCH", object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"),
                                                     meta["name"]),
                                body=obj, query=query, content_type="application/apply-patch+yaml")
        except ApiException as exc:
            hint = " (another field manager owns these fields; rerun with --force-conflicts to take them)" \
                if exc.status == 409 else ""
            raise KubeError(f"applying {ref(obj)}: {api_reason(exc)}{hint}") from None

    def delete(self, obj: dict[str, Any]) -> None:
        """Delete an object (foreground for workloads); gone already is fine."""
        meta = obj["metadata"]
        try:
            self.request("DELETE", object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]),
                         body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:
                raise KubeError(f"deleting {ref(obj)}: {api_reason(exc)}") from None


def from_kubeconfig(path: str | None = None, context: str | None = None) -> Kube:
    """A retrying Kube from a kubeconfig file (path, else $KUBECONFIG, else ~/.kube/config)."""
    import yaml  # what the kubernetes client parses kubeconfigs with

    where = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
    fix = "fix it (e.g. `aws eks update-kubeconfig --name CLUSTER`), pass --kubeconfig or set KUBECONFIG"
    try:
        return Kube(load_client(path, context))
    except yaml.MarkedYAMLError as exc:  # the message only, never the file's text: it may hold a token
        line = f", line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise KubeError(f"kubeconfig {where} is not valid YAML ({exc.problem}{line}); {fix}") from None
    except yaml.YAMLError as exc:
        raise KubeError(f"kubeconfig {where} is not valid YAML ({type(exc).__name__}); {fix}") from None
    except ExecPluginFailed as exc:
        raise KubeError(f"kubeconfig {where}: {exc}; install it (for `aws eks get-token`: the AWS CLI) or fix the "
                        f"user's exec.command, or pass another --kubeconfig") from None
    except (config.ConfigException, OSError) as exc:
        raise KubeError(f"cannot load kubeconfig {where}: {errors.first_line(exc)}; {fix}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # valid YAML, not a kubeconfig's shape
        raise KubeError(f"kubeconfig {where} is not a kubeconfig ({type(exc).__name__}: {exc}); {fix}") from None


def eks_token(cluster_name: str, session: Any) -> str:
    """A bearer token for an EKS cluster, as `aws eks get-token` makes it: a presigned STS GetCallerIdentity URL
    carrying the cluster name in a signed x-k8s-aws-id header."""
    from infra.ops.io import aws

    sts = aws.client("sts", session.region_name, session=session)

    def _move_id_to_context(params: dict, context: dict, **_: Any) -> None:
        if K8S_AWS_ID in params:
            context[K8S_AWS_ID] = params.pop(K8S_AWS_ID)

    def _sign_id_header(request: Any, **_: Any) -> None:
        if K8S_AWS_ID in request.context:
            request.headers[K8S_AWS_ID] = request.context[K8S_AWS_ID]

    sts.meta.events.register("provide-client-params.sts.GetCallerIdentity", _move_id_to_context)
    sts.meta.events.register("before-sign.sts.GetCallerIdentity", _sign_id_header)
    url = sts.generate_presigned_url("get_caller_identity", Params={K8S_AWS_ID: cluster_name},
                                     ExpiresIn=60, HttpMethod="GET")
    return "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def from_eks(cluster_name: str, region: str, session: Any = None,
             clock: Callable[[], float] = time.monotonic) -> Kube:
    """A client for an EKS cluster from `describe_cluster` (endpoint + CA) and an STS token refreshed before expiry.

    The first token is issued at once, whatever `clock` reads (time.monotonic starts near 0 on a fresh boot).
    """
    from infra.ops.io import aws

    session = session or aws.session(region)
    eks = aws.client("eks", region, session=session)
    try:
        cluster = eks.describe_cluster(name=cluster_name)["cluster"]
    except eks.exceptions.ResourceNotFoundException:
        raise KubeError(f"EKS cluster {cluster_name!r} not found in {region}; check eks-platform:cluster.name "
                        f"or pass --kubeconfig") from None
    configuration = _one_retry_layer(client.Configuration())
    configuration.host = cluster["endpoint"]
    ca = (cluster.get("certificateAuthority") or {}).get("data")
    if ca:
        with tempfile.NamedTemporaryFile("wb", prefix="eks-ca-", suffix=".crt", delete=False) as handle:
            handle.write(base64.b64decode(ca))
        configuration.ssl_ca_cert = handle.name
    issued_at: list[float] = []  # when the current token was made; empty: none yet

    def refresh(conf: client.Configuration) -> None:
        now = clock()
        if not issued_at or now - issued_at[0] >= EKS_TOKEN_TTL_S:
            conf.api_key = {"authorization": eks_token(cluster_name, session)}
            conf.api_key_prefix = {"authorization": "Bearer"}
            issued_at[:] = [now]

    refresh(configuration)
    configuration.refresh_api_key_hook = refresh
    return Kube(client.ApiClient(configuration))


def connect(kubeconfig: str | None, cluster_name: str, region: str, budget_s: float | None = None) -> Kube:
    """--kubeconfig or $KUBECONFIG when given, else straight from EKS for the stack's cluster; checked reachable.

    The check (GET /version) waits at most `budget_s` (default EKS_PLATFORM_CONNECT_BUDGET_S) for a server
    that does not answer, showing what it waits for on a terminal.
    """
    budget_s = connect_budget_s() if budget_s is None else budget_s
    kube = from_kubeconfig(kubeconfig) if kubeconfig or os.environ.get("KUBECONFIG") else from_eks(cluster_name, region)
    kube.reach(budget_s, cluster=cluster_name)
    return kube
