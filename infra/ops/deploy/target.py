"""The service catalog for deploys: which services and envs exist, the image tag, and the rendered objects.

A service is a directory of infra/k8s/base, an env an overlay of infra/k8s/overlays; the objects a deploy
applies are the env overlay rendered by kustomize with the image set through `images:`, checked before
anything touches the cluster.
"""
from __future__ import annotations

import copy
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.ops.deploy.history import CHANGE_CAUSE
from infra.ops.errors import Refused
from infra.ops.io import manifests
from infra.ops.io.kube import KINDS, ref

REPO = manifests.REPO
MANAGER_PREFIX = "eks-platform-deploy"
WORKLOADS = ("Deployment", "CronJob")


# The OCI distribution spec's tag grammar: what a registry accepts after the colon.
OCI_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class BadInput(Refused):
    """Wrong service, env, tag or manifests: exit 2, nothing changed."""


@dataclass(frozen=True)
class Target:
    """A service in an environment: where its overlay is and which namespace it runs in."""

    service: str
    env: str
    overlay: Path
    namespace: str

    @property
    def manager(self) -> str:
        return f"{MANAGER_PREFIX}-{self.service}"


def resolve(service: str, env: str, k8s_root: Path = manifests.K8S_ROOT) -> Target:
    """The service and env as the kustomize tree knows them; BadInput listing valid names otherwise."""
    services, envs = manifests.services(k8s_root), manifests.overlays(k8s_root)
    if service not in services:
        raise BadInput(f"service {service!r} is not in infra/k8s/base; use one of: {', '.join(services)}")
    if env not in envs:
        raise BadInput(f"--env {env!r} has no overlay in infra/k8s/overlays; use one of: {', '.join(envs)}")
    overlay = k8s_root / "overlays" / env
    namespace = (yaml.safe_load((overlay / "kustomization.yaml").read_text()) or {}).get("namespace")
    if not namespace:
        raise BadInput(f"infra/k8s/overlays/{env}/kustomization.yaml sets no namespace; add `namespace: apps-{env}`")
    return Target(service, env, overlay, namespace)


def check_tag(tag: str | None) -> str | None:
    """--tag as given, when it is an OCI tag (None: build the current commit); BadInput naming the rule otherwise."""
    if tag is None:
        return None
    if not tag:
        raise BadInput("--tag is empty; name an image tag already in ECR (e.g. --tag 3f2c9a1b7e0d), or omit --tag to "
                       "build the current commit")
    if not OCI_TAG.fullmatch(tag):
        raise BadInput(f"--tag {tag!r} is not an OCI image tag: 1-128 letters, digits, '_', '.' or '-', not starting "
                       f"with '.' or '-' ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}}); e.g. --tag 3f2c9a1b7e0d")
    return tag


def run_git(args: list[str], cwd: Path, missing: str) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in cwd; BadInput saying "git not found on PATH; install git or `missing`" when there is none."""
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BadInput(f"git not found on PATH; install git or {missing}") from None


def git_tag(repo: Path = REPO, allow_dirty: bool = False) -> str:
    """The image tag for the working tree: the short commit SHA; BadInput on a dirty tree unless allowed."""
    def git(*args: str) -> str:
        done = run_git(list(args), repo, "deploy an image with --tag")
        if done.returncode != 0:
            raise BadInput(f"{repo} is not a git checkout ({done.stderr.strip() or 'git failed'}); deploy an "
                           f"existing image with --tag")
        return done.stdout.strip()

    sha = git("rev-parse", "--short=12", "HEAD")
    dirty = git("status", "--porcelain")
    if dirty and not allow_dirty:
        count = len(dirty.splitlines())
        raise BadInput(f"the working tree has {count} uncommitted change(s), so the git SHA would not describe "
                       f"the image; commit them, or pass --allow-dirty")
    return sha


def workload(objects: list[dict[str, Any]], service: str) -> dict[str, Any] | None:
    return next((o for o in objects if o.get("kind") in WORKLOADS and o["metadata"].get("name") == service), None)


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec") or {}


def service_image(objects: list[dict[str, Any]], service: str) -> str:
    """The image the service's workload runs (its container named like the service, else the first)."""
    found = workload(objects, service)
    if found is None:
        raise BadInput(f"the overlay renders no Deployment or CronJob named {service}; check "
                       f"infra/k8s/base/{service}")
    containers = pod_spec(found).get("containers") or []
    container = next((c for c in containers if c.get("name") == service), containers[0] if containers else None)
    if not container or not container.get("image"):
        raise BadInput(f"{ref(found)} has no container image; set `image: {service}` in infra/k8s/base/{service}")
    return container["image"]


def image_name(image: str) -> str:
    """registry/repo without :tag or @digest."""
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def rendered_image_name(target: Target) -> str:
    """The image name kustomize renders for the service before our override: the overlay's `images:` entry for
    it (newName), else the base's bare `image: <service>`."""
    entries = (yaml.safe_load((target.overlay / "kustomization.yaml").read_text()) or {}).get("images") or []
    entry: dict[str, Any] = next((e for e in entries if e.get("name") == target.service), {})
    return entry.get("newName") or target.service


def render(target: Target, image: str) -> list[dict[str, Any]]:
    """The service's objects from the env overlay with its image set through kustomize `images:`."""
    try:
        rendered = manifests.service_objects(manifests.render(target.overlay, images={rendered_image_name(target):
                                                                                      image}), target.service)
    except manifests.RenderError as exc:
        raise BadInput(f"kustomize cannot render infra/k8s/overlays/{target.env}: {exc}") from None
    objects = [m.obj for m in rendered]
    validate(objects, target, image)
    return objects


def validate(objects: list[dict[str, Any]], target: Target, image: str) -> None:
    """The rendered objects are deployable: known kinds, named, in the env's namespace, with the new image."""
    problems = []
    for obj in objects:
        kind, meta = obj.get("kind"), obj.get("metadata") or {}
        if not obj.get("apiVersion") or not meta.get("name"):
            problems.append(f"an object of kind {kind} has no apiVersion or metadata.name")
        elif kind not in KINDS:
            problems.append(f"{ref(obj)}: kind {kind} is not deployable by `invoke deploy`")
        elif KINDS[kind][1] and meta.get("namespace") != target.namespace:
            problems.append(f"{ref(obj)} is in namespace {meta.get('namespace')!r}, not {target.namespace!r}")
    if not problems and service_image(objects, target.service) != image:
        problems.append(f"the image was not set: {target.service} runs {service_image(objects, target.service)}")
    if problems:
        raise BadInput(f"infra/k8s/overlays/{target.env} renders objects deploy refuses: " + "; ".join(problems))


def with_change_cause(objects: list[dict[str, Any]], service: str, cause: str) -> list[dict[str, Any]]:
    out = copy.deepcopy(objects)
    found = workload(out, service)
    if found is not None:
        found["metadata"].setdefault("annotations", {})[CHANGE_CAUSE] = cause
    return out
