"""The project's own rules for rendered workloads: the defaults every service must keep (see
docs/manifests-and-lint.md). Each rule looks at one overlay's rendered objects and names the fix."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from infra.lint import edge_rules
from infra.lint.edge_rules import EdgeFacts
from infra.lint.findings import Finding
from infra.ops.io.manifests import NAME_LABEL, Manifest

SERVING_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
WORKLOAD_KINDS = (*SERVING_KINDS, "CronJob", "Job")
REQUIRED_LABELS = (NAME_LABEL, "app.kubernetes.io/part-of", "app.kubernetes.io/version")
ZONE_KEY = "topology.kubernetes.io/zone"
LOGGING_CONFIG = "logging-config"


@dataclass(frozen=True)
class Workload:
    """A rendered object that runs pods, with its pod template reached whatever the kind."""

    manifest: Manifest

    @property
    def template(self) -> dict[str, Any]:
        spec = self.manifest.obj.get("spec") or {}
        if self.manifest.kind == "CronJob":
            spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        return spec.get("template") or {}

    @property
    def pod(self) -> dict[str, Any]:
        return self.template.get("spec") or {}

    @property
    def pod_labels(self) -> dict[str, str]:
        return (self.template.get("metadata") or {}).get("labels") or {}

    @property
    def containers(self) -> list[dict[str, Any]]:
        return list(self.pod.get("containers") or [])

    @property
    def all_containers(self) -> list[dict[str, Any]]:
        return [*(self.pod.get("initContainers") or []), *self.containers]

    @property
    def serving(self) -> bool:
        return self.manifest.kind in SERVING_KINDS


Rule = Callable[[Workload, Sequence[Manifest]], Iterator[tuple[str, str, str]]]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    """Register a rule; it yields (rule id, problem, fix) for one workload."""
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn
    return register


def check(manifests: Sequence[Manifest], edge: EdgeFacts = edge_rules.UNKNOWN) -> list[Finding]:
    """Run every rule over every workload in one rendered overlay, then the namespace-wide default deny and the
    edge rules (`edge`: what the overlay's stack serves publicly)."""
    findings = []
    for manifest in manifests:
        if manifest.kind not in WORKLOAD_KINDS:
            continue
        workload = Workload(manifest)
        for name, fn in RULES.items():
            try:
                found = list(fn(workload, manifests))
            except (TypeError, ValueError, AttributeError, KeyError) as error:  # a field of the wrong shape or type
                found = [(name, f"cannot check: a field has the wrong type or shape ({type(error).__name__}: "
                                f"{error})", "fix the object so it matches the Kubernetes API (the schema check "
                                             "names the field)")]
            findings += [Finding(manifest.source, manifest.resource, f"rules/{rule_id}", problem, fix)
                         for rule_id, problem, fix in found]
    return findings + _default_deny(manifests) + edge_rules.check(manifests, edge)


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    match = (selector or {}).get("matchLabels") or {}
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def _sleep_seconds(container: dict[str, Any]) -> int:
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    return int((pre_stop.get("sleep") or {}).get("seconds") or 0)


@rule("probes")
def probes(w: Workload, _: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    for c in w.containers:
        name = c.get("name", "?")
        needed = ["livenessProbe", "readinessProbe"] if w.serving else ["livenessProbe"]
        for probe in needed:
            if not c.get(probe):
                path = "/healthz (process only)" if probe == "livenessProbe" else "/readyz (own critical deps)"
                yield "probes", f"container {name} has no {probe}", f"add {probe} httpGet {path} with timeoutSeconds"
            elif "timeoutSeconds" not in c[probe]:
                yield "probes", f"container {name} {probe} has no explicit timeoutSeconds", \
                    f"set {probe}.timeoutSeconds (e.g. 2)"
        live, ready = c.get("livenessProbe"), c.get("readinessProbe")
        if live and ready and live.get("httpGet") and live.get("httpGet") == ready.get("httpGet"):
            yield "probes-split", f"container {name} liveness and readiness probe the same endpoint", \
                "liveness on /healthz (process only), readiness on /readyz (deps): a dependency outage must " \
                "not restart pods"


def _quantity(value: Any) -> Decimal | None:
    """A resource quantity ("512Mi", "0.5Gi", "250m") as a number, by the client's own parser (imported only when
    rules run); None when it is not one (schema reports it)."""
    from kubernetes.utils.quantity import parse_quantity  # type: ignore[import-untyped, unused-ignore]

    try:
        return parse_quantity(value)
    except (ValueError, TypeError):
        return None


@rule("resources")
def resources(w: Workload, _: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    for c in w.all_containers:
        name, res = c.get("name", "?"), c.get("resources") or {}
        for section in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in (res.get(section) or {})]
            if missing:
                yield "resources", f"container {name} has no {section} for {', '.join(missing)}", \
                    f"set resources.{section}.{missing[0]} (requests = what it needs, limits = the ceiling)"
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        memory = [_quantity(requests.get("memory")), _quantity(limits.get("memory"))]
        if None not in memory and memory[0] != memory[1]:
            yield "resources-memory", f"container {name} memory limit {limits['memory']} differs from its request " \
                f"{requests['memory']}", "set resources.limits.memory equal to resources.requests.memory (memory " \
                "is not throttled but OOM-killed: a pod must not rely on memory its node did not reserve)"
        cpu_request, cpu_limit = _quantity(requests.get("cpu")), _quantity(limits.get("cpu"))
        if cpu_request is not None and cpu_limit is not None and cpu_limit < cpu_request:
            yield "resources", f"container {name} cpu limit {limits['cpu']} is below its request {requests['cpu']}", \
                "raise resources.limits.cpu to at least the request (the API server refuses it otherwise)"


def _service_account(w: Workload, manifests: Sequence[Manifest]) -> Manifest | None:
    name = w.pod.get("serviceAccountName") or "default"
    return next((m for m in manifests if m.kind == "ServiceAccount" and m.name == name
                 and m.namespace == w.manifest.namespace), None)


@rule("service-account-token")
def service_account_token(w: Workload, manifests: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    """No pod gets a Kubernetes API token it does not use; the pod's setting wins over its ServiceAccount's."""
    fix = "set automountServiceAccountToken: false in the pod spec (mount a projected token only where a " \
          "service really calls the API)"
    mounted = w.pod.get("automountServiceAccountToken")
    if mounted is True:
        yield "service-account-token", "the pod mounts a service-account token (automountServiceAccountToken: true)", \
            fix
    elif mounted is None:
        account = _service_account(w, manifests)
        if account is None or account.obj.get("automountServiceAccountToken") is not False:
            who = f"ServiceAccount {account.name}" if account else \
                f"ServiceAccount {w.pod.get('serviceAccountName') or 'default'} (not in the overlay)"
            yield "service-account-token", f"the pod mounts a service-account token: neither the pod nor {who} " \
                f"sets automountServiceAccountToken: false", fix


@rule("prestop")
def prestop(w: Workload, _: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    grace = w.pod.get("terminationGracePeriodSeconds")
    if grace is None:
        yield "prestop", "terminationGracePeriodSeconds is not set", \
            "set terminationGracePeriodSeconds to preStop + the longest in-flight work"
    for c in w.containers:
        if not (c.get("lifecycle") or {}).get("preStop"):
            yield "prestop", f"container {c.get('name', '?')} has no preStop hook", \
                "add lifecycle.preStop.sleep.seconds so in-flight work drains before SIGTERM"
        elif grace is not None and _sleep_seconds(c) >= int(grace):
            yield "prestop", f"container {c.get('name', '?')} preStop sleeps {_sleep_seconds(c)} s, not less " \
                f"than terminationGracePeriodSeconds {grace}", "raise terminationGracePeriodSeconds above the preStop"


@rule("security")
def security(w: Workload, _: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    pod_ctx = w.pod.get("securityContext") or {}
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if w.pod.get(host):
            yield "security", f"pod uses {host}", f"remove {host}"
    for c in w.all_containers:
        name, ctx = c.get("name", "?"), c.get("securityContext") or {}
        if ctx.get("privileged"):
            yield "security", f"container {name} is privileged", "set securityContext.privileged: false"
        if ctx.get("allowPrivilegeEscalation") is not False:
            yield "security", f"container {name} allows privilege escalation", \
                "set securityContext.allowPrivilegeEscalation: false"
        if not ctx.get("readOnlyRootFilesystem"):
            yield "security", f"container {name} root filesystem is writable", \
                "set securityContext.readOnlyRootFilesystem: true (mount an emptyDir for /tmp)"
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            yield "security", f"container {name} may run as root", "set securityContext.runAsNonRoot: true"
        caps = ctx.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []) or caps.get("add"):
            yield "security", f"container {name} keeps Linux capabilities", "set capabilities.drop: [ALL], add none"
        seccomp = (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            yield "security", f"container {name} has no seccomp profile", "set seccompProfile.type: RuntimeDefault"


@rule("image-tag")
def image_tag(w: Workload, _: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    for c in w.all_containers:
        image = str(c.get("image", ""))
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if "@" not in image and tag in ("", "latest"):
            yield "image-tag", f"container {c.get('name', '?')} image {image!r} is {'latest' if tag else 'untagged'}", \
                "pin an immutable tag (the git SHA) via kustomize images: newTag"


@rule("pdb")
def pdb(w: Workload, manifests: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    budgets = [m for m in manifests if m.kind == "PodDisruptionBudget"
               and m.namespace == w.manifest.namespace and _selects(m.obj.get("spec", {}).get("selector"), w.pod_labels)]
    if not budgets:
        yield "pdb", "no PodDisruptionBudget selects its pods", \
            f"add a policy/v1 PodDisruptionBudget selecting {NAME_LABEL}: {w.pod_labels.get(NAME_LABEL, '?')}"
        return
    if not w.serving:
        return
    replicas = _floor_replicas(w, manifests)
    for budget in budgets:
        spec = budget.obj.get("spec") or {}
        blocked = (str(spec.get("maxUnavailable", "")) in ("0", "0%")
                   or isinstance(spec.get("minAvailable"), int) and spec["minAvailable"] >= replicas
                   or spec.get("minAvailable") == "100%")
        if blocked:
            yield "pdb-blocks-drain", f"PodDisruptionBudget {budget.name} allows no eviction at {replicas} " \
                f"replica(s), so node drains and upgrades hang", "use maxUnavailable: 1"


def _hpa(w: Workload, manifests: Sequence[Manifest]) -> Manifest | None:
    for m in manifests:
        target = (m.obj.get("spec") or {}).get("scaleTargetRef") or {}
        if m.kind == "HorizontalPodAutoscaler" and m.namespace == w.manifest.namespace \
                and target.get("kind") == w.manifest.kind and target.get("name") == w.manifest.name:
            return m
    return None


def _floor_replicas(w: Workload, manifests: Sequence[Manifest]) -> int:
    hpa = _hpa(w, manifests)
    if hpa is not None:
        return int(hpa.obj["spec"].get("minReplicas", 1))
    return int((w.manifest.obj.get("spec") or {}).get("replicas", 1))


@rule("rollout")
def rollout(w: Workload, manifests: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    spec = w.manifest.obj.get("spec") or {}
    if w.manifest.kind == "Deployment":
        for field, fix in (("revisionHistoryLimit", "keep a few ReplicaSets to roll back to, e.g. 5"),
                           ("progressDeadlineSeconds", "fail a stuck rollout, e.g. 300")):
            if field not in spec:
                yield "rollout", f"{field} is not set deliberately", f"set spec.{field} ({fix})"
        if "replicas" in spec and _hpa(w, manifests) is not None:
            yield "hpa-owns-replicas", "spec.replicas is set although an HPA scales this Deployment, so every " \
                "deploy resets the scale", "remove spec.replicas (and any kustomize replicas: entry); set HPA bounds"
    if w.manifest.kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        if spec.get("concurrencyPolicy") not in ("Forbid", "Replace"):
            yield "cron-bounds", "concurrencyPolicy allows overlapping runs", "set concurrencyPolicy: Forbid"
        if "activeDeadlineSeconds" not in job:
            yield "cron-bounds", "a hung run is never stopped", "set jobTemplate.spec.activeDeadlineSeconds"


@rule("spread")
def spread(w: Workload, _: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    keys = [c.get("topologyKey") for c in w.pod.get("topologySpreadConstraints") or []]
    if ZONE_KEY not in keys:
        yield "spread", "pods are not spread across zones", \
            f"add topologySpreadConstraints with topologyKey {ZONE_KEY}, maxSkew 1"


@rule("labels")
def labels(w: Workload, _: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    for where, present in (("metadata.labels", w.manifest.labels), ("pod template labels", w.pod_labels)):
        missing = [label for label in REQUIRED_LABELS if label not in present]
        if missing:
            yield "labels", f"{where} lack {', '.join(missing)}", \
                "set them with the kustomization's labels: (includeTemplates: true)"


@rule("network-policy")
def network_policy(w: Workload, manifests: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    own = [m for m in manifests if m.kind == "NetworkPolicy" and m.namespace == w.manifest.namespace
           and _selects((m.obj.get("spec") or {}).get("podSelector"), w.pod_labels)]
    if not own:
        yield "network-policy", "no NetworkPolicy allows its traffic (the namespace denies by default)", \
            "add a NetworkPolicy selecting its pods with the ingress/egress it needs"


@rule("logging-config")
def logging_config(w: Workload, _: Sequence[Manifest]) -> Iterator[tuple[str, str, str]]:
    volumes = {v.get("name"): ((v.get("configMap") or {}).get("name") or "") for v in w.pod.get("volumes") or []}
    shared = {name for name, cm in volumes.items() if cm.startswith(LOGGING_CONFIG)}
    for c in w.containers:
        if not any(m.get("name") in shared for m in c.get("volumeMounts") or []):
            yield "logging-config", f"container {c.get('name', '?')} does not mount the shared logging-config", \
                "mount ConfigMap logging-config at /etc/logging (readOnly)"


def _default_deny(manifests: Sequence[Manifest]) -> list[Finding]:
    """Each namespace with workloads needs a policy that selects every pod and denies both directions."""
    findings = []
    for namespace in sorted({m.namespace or "" for m in manifests if m.kind in WORKLOAD_KINDS}):
        denies = [m for m in manifests if m.kind == "NetworkPolicy" and (m.namespace or "") == namespace
                  and not (m.obj.get("spec") or {}).get("podSelector")
                  and {"Ingress", "Egress"} <= set((m.obj.get("spec") or {}).get("policyTypes") or [])
                  and not (m.obj["spec"].get("ingress") or m.obj["spec"].get("egress"))]
        if not denies:
            source = next(m.source for m in manifests if (m.namespace or "") == namespace)
            findings.append(Finding(source, f"Namespace/{namespace}", "rules/default-deny",
                                    "no default-deny NetworkPolicy in the namespace",
                                    "include base/shared (NetworkPolicy default-deny: podSelector {}, "
                                    "policyTypes [Ingress, Egress])"))
    return findings
