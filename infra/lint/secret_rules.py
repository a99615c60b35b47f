"""Secret keys a workload reads must be keys the stack declares.

External Secrets writes `<service>-secrets` with exactly the keys of `eks-platform:secrets.services.<service>`
(infra/components/secrets.py). A pod that reads another key starts, then fails at its first connect (a
`*_FILE` path that does not exist) or never starts (`secretKeyRef` to a missing key): both only show on the
cluster. This rule catches it at lint time, per overlay against the stack of the same name.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infra.lint.findings import Finding
from infra.lint.workload_rules import WORKLOAD_KINDS, Workload
from infra.ops.io.manifests import Manifest

SUFFIX = "-secrets"
RULE = "rules/secret-declared"


@dataclass(frozen=True)
class SecretFacts:
    """The keys each service's Secret will hold in one stack (`declared` None: the stack is unreadable)."""

    declared: Mapping[str, frozenset[str]] | None
    stack_file: str = "Pulumi.<env>.yaml"

    @classmethod
    def of(cls, secrets: Any, stack_file: str) -> SecretFacts:
        services = secrets.services if secrets is not None else {}
        return cls({service: frozenset(keys) for service, keys in services.items()}, stack_file)


UNKNOWN = SecretFacts(None)


def check(manifests: Sequence[Manifest], facts: SecretFacts = UNKNOWN) -> list[Finding]:
    """One finding per (workload, Secret, key) read but not declared."""
    if facts.declared is None:
        return []
    findings = []
    for manifest in (m for m in manifests if m.kind in WORKLOAD_KINDS):
        for secret, key in sorted(set(_keys_read(Workload(manifest)))):
            service = secret.removesuffix(SUFFIX)
            declared = facts.declared.get(service)
            if declared is None:
                findings.append(Finding(manifest.source, manifest.resource, RULE,
                                        f"reads Secret {secret}, but {facts.stack_file} declares no secrets for "
                                        f"service {service!r}, so External Secrets never writes it",
                                        f"declare eks-platform:secrets.services.{service} in {facts.stack_file}"))
            elif key not in declared:
                have = ", ".join(sorted(declared)) or "none"
                findings.append(Finding(manifest.source, manifest.resource, RULE,
                                        f"reads key {key!r} of Secret {secret}, which {facts.stack_file} does not "
                                        f"declare (declared: {have}), so the pod finds no such key",
                                        f"declare eks-platform:secrets.services.{service}.{key} in "
                                        f"{facts.stack_file}, or read a declared key"))
    return findings


def _keys_read(workload: Workload) -> Iterator[tuple[str, str]]:
    """(Secret name, key) for every key of a `<service>-secrets` Secret the pod reads: volume items, env
    `secretKeyRef`, and env values that are file paths under the Secret's mount."""
    volumes = {v.get("name"): (v.get("secret") or {}) for v in workload.pod.get("volumes") or []
               if (v.get("secret") or {}).get("secretName", "").endswith(SUFFIX)}
    for source in volumes.values():
        for item in source.get("items") or []:
            yield source["secretName"], item.get("key", "")
    for container in workload.all_containers:
        mounts = {m.get("mountPath", "").rstrip("/"): volumes[m.get("name")]
                  for m in container.get("volumeMounts") or [] if m.get("name") in volumes}
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
            if str(ref.get("name", "")).endswith(SUFFIX):
                yield ref["name"], str(ref.get("key", ""))
            value = str(env.get("value") or "")
            for path, source in mounts.items():
                if value.startswith(f"{path}/") and not source.get("items"):
                    yield source["secretName"], value.removeprefix(f"{path}/").split("/")[0]
