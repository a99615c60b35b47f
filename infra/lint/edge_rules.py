"""Edge rules: a public route must be served by the class the platform installs, with a certificate for its
host, health-checked where the pod says it is ready, and let go of a pod before the pod stops serving.

Also refused: references to controllers that are gone or were never installed. ingress-nginx was retired in
March 2026 (no releases or security fixes after it: kubernetes.io/blog/2025/11/11/ingress-nginx-retirement,
announced 2025-11-11; checked 2026-12-05), and cert-manager is not part of the platform, so its issuer
annotations and resources would wait forever for a certificate nobody issues.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from infra.charts import INGRESS_CLASS
from infra.lint.findings import Finding
from infra.ops.io.manifests import Manifest

ALB = "alb.ingress.kubernetes.io/"
RETIRED_PREFIXES = {"nginx.ingress.kubernetes.io/": "ingress-nginx (retired March 2026)",
                    "cert-manager.io/": "cert-manager (not installed by the platform)",
                    "acme.cert-manager.io/": "cert-manager (not installed by the platform)"}
RETIRED_CLASSES = {"nginx", "ingress-nginx"}
RETIRED_NAMESPACES = {"ingress-nginx", "cert-manager"}
RETIRED_GROUPS = {"cert-manager.io", "acme.cert-manager.io"}
EDGE_FIX = "route it through class alb: see infra/k8s/base/api/ingress.yaml and docs/traffic-edge.md"


@dataclass(frozen=True)
class EdgeFacts:
    """What the overlay's stack serves publicly (its eks-platform:edge); `hostnames` None: unknown, not checked."""

    classes: frozenset[str]
    hostnames: frozenset[str] | None
    shield: bool = False
    stack_file: str = "Pulumi.<env>.yaml"

    @classmethod
    def of(cls, edge: Any, stack_file: str) -> EdgeFacts:
        if edge is None:
            return cls(frozenset(), frozenset(), stack_file=stack_file)
        return cls(frozenset({INGRESS_CLASS}), frozenset(edge.hostnames.values()), bool(edge.shield_advanced),
                   stack_file)


UNKNOWN = EdgeFacts(frozenset({INGRESS_CLASS}), None)


def check(manifests: Sequence[Manifest], facts: EdgeFacts = UNKNOWN) -> list[Finding]:
    findings = [Finding(m.source, m.resource, f"rules/{rule}", problem, fix)
                for m in manifests for rule, problem, fix in _retired(m)]
    for ingress in (m for m in manifests if m.kind == "Ingress"):
        findings += [Finding(ingress.source, ingress.resource, f"rules/{rule}", problem, fix)
                     for rule, problem, fix in _ingress(ingress, manifests, facts)]
    return findings


def _retired(m: Manifest) -> Iterator[tuple[str, str, str]]:
    annotations = (m.obj.get("metadata") or {}).get("annotations") or {}
    for key in annotations:
        for prefix, what in RETIRED_PREFIXES.items():
            if str(key).startswith(prefix):
                yield "edge-retired", f"annotation {key} needs {what}, which nothing on the platform runs", \
                    f"remove it; {EDGE_FIX}"
    if annotations.get("kubernetes.io/ingress.class") in RETIRED_CLASSES:
        yield "edge-retired", "kubernetes.io/ingress.class names ingress-nginx (retired March 2026)", \
            f"remove the annotation and set spec.ingressClassName: {INGRESS_CLASS}"
    group = str(m.obj.get("apiVersion", "")).split("/")[0]
    if group in RETIRED_GROUPS:
        yield "edge-retired", f"{m.kind} of {group}: cert-manager is not installed, nothing would act on it", \
            "remove it: certificates come from ACM through the stack's eks-platform:edge"
    if m.kind == "NetworkPolicy":
        for rule in (m.obj.get("spec") or {}).get("ingress") or []:
            for peer in rule.get("from") or []:
                namespace = ((peer.get("namespaceSelector") or {}).get("matchLabels") or {}).get(
                    "kubernetes.io/metadata.name")
                if namespace in RETIRED_NAMESPACES:
                    yield "edge-retired", f"allows traffic from namespace {namespace}, which the platform does not " \
                        f"run", "allow the load balancer instead: an ipBlock with the stack's VPC CIDR " \
                        "(see the api-from-load-balancer NetworkPolicy)"


def _ingress(ingress: Manifest, manifests: Sequence[Manifest], facts: EdgeFacts) -> Iterator[tuple[str, str, str]]:
    spec = ingress.obj.get("spec") or {}
    annotations = (ingress.obj.get("metadata") or {}).get("annotations") or {}
    name = spec.get("ingressClassName")
    if name in RETIRED_CLASSES:
        yield "edge-retired", f"ingressClassName {name}: ingress-nginx was retired in March 2026", \
            f"set spec.ingressClassName: {INGRESS_CLASS}"
        return
    if name not in facts.classes:
        installed = ", ".join(sorted(facts.classes)) or "none (the stack has no eks-platform:edge)"
        yield "edge-class", f"ingressClassName {name or '(unset)'} is not a class the platform installs " \
            f"(installed: {installed}), so nothing would serve this Ingress", \
            f"set spec.ingressClassName: {INGRESS_CLASS} and add eks-platform:edge to {facts.stack_file}" \
            if not facts.classes else f"set spec.ingressClassName: {INGRESS_CLASS}"
        return
    yield from _tls(ingress, spec, annotations, facts)
    yield from _targets(ingress, spec, annotations, manifests)
    if facts.shield and annotations.get(f"{ALB}shield-advanced-protection") != "true":
        yield "edge-shield", f"{facts.stack_file} turns Shield Advanced on (edge.shield_advanced) but this Ingress " \
            "does not ask for it", f'annotate {ALB}shield-advanced-protection: "true"'


def _tls(ingress: Manifest, spec: dict[str, Any], annotations: dict[str, Any],
         facts: EdgeFacts) -> Iterator[tuple[str, str, str]]:
    tls_hosts = {str(host) for entry in spec.get("tls") or [] for host in entry.get("hosts") or []}
    explicit = f"{ALB}certificate-arn" in annotations
    for entry in spec.get("tls") or []:
        if entry.get("secretName"):
            yield "edge-tls", f"tls secretName {entry['secretName']}: the ALB never reads Secrets, so no " \
                f"certificate comes from it", "drop secretName: the class serves the stack's ACM certificate"
    for host in sorted({str(r.get("host")) for r in spec.get("rules") or [] if r.get("host")}):
        if host not in tls_hosts:
            yield "edge-tls", f"host {host} is not under spec.tls, so it has no certificate source", \
                f"list {host} under spec.tls[].hosts"
        elif not explicit and facts.hostnames is not None and host not in facts.hostnames:
            yield "edge-tls", f"host {host} is not covered by the stack's certificate (edge.hostnames in " \
                f"{facts.stack_file})", f"add `{ingress.name}: {host}` to eks-platform:edge.hostnames in " \
                f"{facts.stack_file}, then `pulumi up` (the certificate is reissued with it)"


def _targets(ingress: Manifest, spec: dict[str, Any], annotations: dict[str, Any],
             manifests: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    if annotations.get(f"{ALB}target-type") != "ip":
        yield "edge-target", "target type is not ip: traffic would hop through a NodePort on every node", \
            f"annotate {ALB}target-type: ip"
    ports = _listen_ports(annotations.get(f"{ALB}listen-ports"))
    if ("HTTPS", 443) not in ports or annotations.get(f"{ALB}ssl-redirect") != "443":
        yield "edge-tls", "the load balancer must listen on 443 and redirect 80 to it", \
            f"""annotate {ALB}listen-ports: '[{{"HTTP": 80}}, {{"HTTPS": 443}}]' and {ALB}ssl-redirect: "443\""""
    delay = _deregistration_delay(annotations.get(f"{ALB}target-group-attributes"))
    for service in sorted({p["backend"]["service"]["name"] for r in spec.get("rules") or []
                           for p in (r.get("http") or {}).get("paths") or []
                           if (p.get("backend") or {}).get("service")}):
        pods = _backend_pods(service, ingress.namespace, manifests)
        for container in pods:
            ready = ((container.get("readinessProbe") or {}).get("httpGet") or {}).get("path")
            health = annotations.get(f"{ALB}healthcheck-path")
            if ready and health != ready:
                yield "edge-health", f"health check path {health or '(default /)'} is not {service}'s readiness " \
                    f"path {ready}: the ALB would send traffic to pods Kubernetes holds back", \
                    f"annotate {ALB}healthcheck-path: {ready}"
            sleep = int(((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds") or 0)
            if delay is None or delay >= sleep:
                shown = "the default 300 s" if delay is None else f"{delay} s"
                yield "edge-drain", f"deregistration delay {shown} is not shorter than {service}'s preStop sleep " \
                    f"{sleep} s: the ALB can still send requests when the pod gets SIGTERM", \
                    f"set {ALB}target-group-attributes: deregistration_delay.timeout_seconds=<less than {sleep}>" \
                    " (and write the arithmetic beside it)"


def _listen_ports(raw: Any) -> set[tuple[str, int]]:
    try:
        return {(protocol, int(port)) for entry in json.loads(str(raw)) for protocol, port in entry.items()}
    except (ValueError, TypeError, AttributeError):
        return set()


def _deregistration_delay(raw: Any) -> int | None:
    for pair in str(raw or "").split(","):
        key, _, value = pair.strip().partition("=")
        if key == "deregistration_delay.timeout_seconds" and value.strip().isdigit():
            return int(value)
    return None


def _backend_pods(service: str, namespace: str | None, manifests: Sequence[Manifest]) -> list[dict[str, Any]]:
    """The containers of the workloads the Service selects (in the Ingress's namespace)."""
    found = next((m for m in manifests if m.kind == "Service" and m.name == service and m.namespace == namespace), None)
    selector = ((found.obj.get("spec") or {}).get("selector") or {}) if found else {}
    containers: list[dict[str, Any]] = []
    for m in manifests:
        if m.kind not in ("Deployment", "StatefulSet") or m.namespace != namespace or not selector:
            continue
        template = (m.obj.get("spec") or {}).get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in selector.items()):
            containers += (template.get("spec") or {}).get("containers") or []
    return containers
