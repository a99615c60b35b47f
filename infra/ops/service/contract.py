"""What a service promises, read from where it is declared: its manifests (infra/k8s/base/<svc>), its Dockerfile
and its contract.toml (how the check puts work in flight). One reader, so the check and the cluster agree.
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.ops.errors import Refused
from infra.ops.io import manifests

BASE = "base"  # services/base: the shared image, not a service
KINDS = ("http", "worker", "cron")
# Dependencies a service reaches, by the environment variable that carries its address (set by the manifest,
# directly or as NAME_FILE, a file of the mounted Secret).
NEEDS = {"DATABASE_URL": "postgres", "AMQP_URL": "rabbitmq"}


class UnknownService(Refused):
    """No such service: the message lists the valid ones."""


class BadContract(Refused):
    """The service's declarations cannot be read (no workload, no CMD, bad contract.toml)."""


@dataclass(frozen=True)
class Workload:
    """The parts of the service's pod spec the contract relies on."""

    kind: str                         # http | worker | cron (the base's app.kubernetes.io/component label)
    object_kind: str                  # Deployment | CronJob
    grace_s: int | None
    prestop_s: int
    env: dict[str, str]               # literal values; secret-fed variables map to ""
    liveness: str | None
    readiness: str | None
    probe_port: str | int | None
    ports: dict[str, int]
    pod_security: dict[str, Any]
    container_security: dict[str, Any]
    spec: dict[str, Any] = field(default_factory=dict)   # CronJob spec (or Deployment spec)

    @property
    def port(self) -> int | None:
        raw = self.env.get("PORT")
        return int(raw) if raw and raw.isdigit() else None

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(dep for var, dep in NEEDS.items() if var in self.env or f"{var}_FILE" in self.env)


@dataclass(frozen=True)
class Service:
    name: str
    directory: Path
    workload: Workload
    command: list[str]
    dockerfile: str
    work: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.workload.kind


def names(repo: Path) -> list[str]:
    """Services that can be checked: services/<svc> with a Dockerfile and a base in infra/k8s."""
    return sorted(p.parent.name for p in (repo / "services").glob("*/Dockerfile")
                  if p.parent.name != BASE and (repo / "infra/k8s/base" / p.parent.name / "kustomization.yaml").is_file())


def load(repo: Path, name: str) -> Service:
    valid = names(repo)
    if name not in valid:
        raise UnknownService(f"SVC {name!r} is not a service; choose from {', '.join(valid) or '(none)'} "
                             f"(a service has services/<svc>/Dockerfile and infra/k8s/base/<svc>)")
    directory = repo / "services" / name
    dockerfile = (directory / "Dockerfile").read_text()
    work: dict[str, Any] = {}
    if (directory / "contract.toml").is_file():
        try:
            work = tomllib.loads((directory / "contract.toml").read_text()).get("work") or {}
        except tomllib.TOMLDecodeError as error:
            raise BadContract(f"services/{name}/contract.toml: {error}; fix the TOML") from None
    return Service(name, directory, workload(repo, name), command(dockerfile, name), dockerfile, work)


def command(dockerfile: str, name: str) -> list[str]:
    """The final CMD in exec form: what the container runs, and so what the process check runs."""
    found = re.findall(r"^\s*CMD\s+(\[.*\])\s*$", dockerfile, flags=re.MULTILINE)
    try:
        cmd = json.loads(found[-1]) if found else None
    except json.JSONDecodeError:
        cmd = None
    if not (isinstance(cmd, list) and cmd and all(isinstance(part, str) for part in cmd)):
        raise BadContract(f"services/{name}/Dockerfile has no CMD in exec form (CMD [\"python\", \"-m\", \"{name}\"]); "
                          f"a shell-form CMD would not get SIGTERM")
    return cmd


def workload(repo: Path, name: str) -> Workload:
    base = repo / "infra/k8s/base" / name
    try:
        objects = [m.obj for m in manifests.render(base)]
    except manifests.RenderError as error:
        raise BadContract(f"infra/k8s/base/{name} does not render: {error}") from None
    found = next((o for o in objects if o.get("kind") in ("Deployment", "CronJob")), None)
    if found is None:
        raise BadContract(f"infra/k8s/base/{name} has no Deployment or CronJob")
    spec = found["spec"]
    template = spec["jobTemplate"]["spec"]["template"] if found["kind"] == "CronJob" else spec["template"]
    labels = template.get("metadata", {}).get("labels") or {}
    kind = labels.get("app.kubernetes.io/component") or ("cron" if found["kind"] == "CronJob" else "http")
    pod = template["spec"]
    container = next((c for c in pod.get("containers") or [] if c.get("name") == name), (pod.get("containers") or [{}])[0])
    env = {e["name"]: str(e.get("value", "")) for e in container.get("env") or []}
    pre_stop = ((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
    live = ((container.get("livenessProbe") or {}).get("httpGet")) or {}
    ready = ((container.get("readinessProbe") or {}).get("httpGet")) or {}
    return Workload(kind=kind, object_kind=found["kind"], grace_s=pod.get("terminationGracePeriodSeconds"),
                    prestop_s=int(pre_stop.get("seconds") or 0), env=env, liveness=live.get("path"),
                    readiness=ready.get("path"), probe_port=live.get("port"),
                    ports={p.get("name", ""): p.get("containerPort") for p in container.get("ports") or []},
                    pod_security=pod.get("securityContext") or {},
                    container_security=container.get("securityContext") or {}, spec=spec)
