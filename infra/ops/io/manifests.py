"""The kustomize tree (infra/k8s): which services and overlays exist, and their rendered objects.

Rendering always goes through `kubectl kustomize`, the same renderer `kubectl apply -k` uses, so what
lint checks and what deploy applies are the same bytes. Image overrides and source tracking are done by
a throwaway kustomization that wraps the overlay, never by editing the tree.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.ops.errors import Refused

REPO = Path(__file__).resolve().parents[3]
K8S_ROOT = REPO / "infra" / "k8s"
SHARED = "shared"  # base/shared: objects every service in the namespace uses (logging config, default deny)
NAME_LABEL = "app.kubernetes.io/name"
ORIGIN = "config.kubernetes.io/origin"
RENDER_TIMEOUT_S = 60
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: parsing is most of a render
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class RenderError(Refused):
    """kustomize refused an overlay (the repository's input, so exit 2); the message is kustomize's own error line."""


@dataclass(frozen=True)
class Manifest:
    """One rendered object and the file it came from (relative to the repo when inside it)."""

    obj: dict[str, Any]
    source: str

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind", "?"))

    @property
    def name(self) -> str:
        return str((self.obj.get("metadata") or {}).get("name", "?"))

    @property
    def namespace(self) -> str | None:
        return (self.obj.get("metadata") or {}).get("namespace")

    @property
    def resource(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @property
    def labels(self) -> dict[str, str]:
        return (self.obj.get("metadata") or {}).get("labels") or {}


def overlays(k8s_root: Path = K8S_ROOT) -> list[str]:
    """Overlay names (one per environment), e.g. ['dev', 'prod']."""
    return sorted(p.parent.name for p in (k8s_root / "overlays").glob("*/kustomization.yaml"))


def services(k8s_root: Path = K8S_ROOT) -> list[str]:
    """Service names: every base except the shared one."""
    return sorted(p.parent.name for p in (k8s_root / "base").glob("*/kustomization.yaml") if p.parent.name != SHARED)


def kustomize(directory: Path) -> str:
    """`kubectl kustomize DIR` output, or RenderError with kustomize's message."""
    try:
        done = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True,
                              errors="replace", timeout=RENDER_TIMEOUT_S, check=False)
    except FileNotFoundError:
        raise RenderError("kubectl is not on PATH; install kubectl (it bundles kustomize)") from None
    if done.returncode != 0:
        raise RenderError(kustomize_error(done.stderr) or f"kubectl kustomize exited {done.returncode}")
    return done.stdout


def kustomize_error(stderr: str) -> str:
    """kustomize's own message from kubectl's stderr, on one line.

    kubectl logs it through klog as `... "command failed" err="..."` (a Go-quoted string), or, when the message
    spans lines, as `err=<` followed by tab-indented lines and a closing ` >`; older kubectl print `error: ...`.
    """
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        if line.rstrip().endswith("err=<"):
            body = []
            for part in lines[index + 1:]:
                if part.strip() == ">":
                    break
                body.append(part.strip())
            return _one_line(" ".join(body))
        quoted = re.search(r'\berr=("(?:[^"\\]|\\.)*")', line)
        if quoted:
            try:
                return _one_line(json.loads(quoted.group(1)))
            except json.JSONDecodeError:
                return _one_line(quoted.group(1)[1:-1])
    meaningful = [line.strip() for line in lines if line.strip() and line.strip() != ">"]
    return _one_line(meaningful[-1].removeprefix("error: ").removeprefix("Error: ")) if meaningful else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def shown_path(path: Path) -> str:
    """A path as findings and messages show it: relative to the repo when inside it."""
    path = path.resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def render(overlay_dir: Path, images: Mapping[str, str] | None = None) -> list[Manifest]:
    """Render an overlay; `images` maps an image name as the overlay renders it to "newName[:tag]", ":tag" or "@digest".

    Each Manifest records its source file (from kustomize's origin annotation, which is then removed, so the
    objects are exactly what `kubectl apply -k` would send plus the image overrides).
    """
    overlay_dir = overlay_dir.resolve()
    if not (overlay_dir / "kustomization.yaml").is_file():
        raise RenderError(f"{shown_path(overlay_dir)} has no kustomization.yaml")
    with tempfile.TemporaryDirectory(prefix="kustomize-") as scratch:
        wrapper: dict[str, Any] = {"resources": [os.path.relpath(overlay_dir, scratch)],
                                   "buildMetadata": ["originAnnotations"]}
        if images:
            wrapper["images"] = [_image_entry(name, ref) for name, ref in images.items()]
        Path(scratch, "kustomization.yaml").write_text(yaml.safe_dump(wrapper))
        try:
            text = kustomize(Path(scratch))
        except RenderError as error:
            raise RenderError(_about_overlay(str(error), overlay_dir)) from None
        return [_manifest(obj, Path(scratch), overlay_dir) for obj in yaml.load_all(text, Loader=_LOADER) if obj]


def _about_overlay(message: str, overlay_dir: Path) -> str:
    """kustomize's message without the layer our wrapper adds ("accumulating resources from '<scratch>' ...
    recursed accumulation of path '<overlay>': "), with paths shown relative to the repo."""
    for marker in (f"accumulation of path '{overlay_dir}': ", f"make target for path '{overlay_dir}': "):
        if marker in message:
            message = message.split(marker, 1)[1]
            break
    return message.replace(f"{REPO}/", "")


def _image_entry(name: str, ref: str) -> dict[str, str]:
    if "@" in ref:
        new_name, _, digest = ref.partition("@")
        return {"name": name, **({"newName": new_name} if new_name else {}), "digest": digest}
    new_name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "")
    entry = {"name": name}
    if new_name:
        entry["newName"] = new_name
    if tag:
        entry["newTag"] = tag
    return entry


def _manifest(obj: dict[str, Any], scratch: Path, overlay_dir: Path) -> Manifest:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    origin = yaml.safe_load(annotations.pop(ORIGIN, "") or "") or {}
    if not annotations and "annotations" in obj.get("metadata", {}):
        del obj["metadata"]["annotations"]
    where = origin.get("path") or origin.get("configuredIn")
    source = (scratch / where).resolve() if where else overlay_dir / "kustomization.yaml"
    return Manifest(obj=obj, source=shown_path(source))


def service_objects(manifests: Iterable[Manifest], service: str) -> list[Manifest]:
    """What deploying one service applies: its own objects plus the shared ones they reference."""
    return [m for m in manifests if m.labels.get(NAME_LABEL) in (service, SHARED)]


def to_yaml(manifests: Iterable[Manifest]) -> str:
    """Multi-document YAML of the objects, for `kubectl apply -f -` or a scanner."""
    return yaml.dump_all([m.obj for m in manifests], Dumper=_DUMPER, sort_keys=False)
