"""`invoke new-service`: a new service's code, Dockerfile, base and overlay entries, passing `invoke lint` and
`invoke service.check` untouched.

The code and Dockerfile are a copy of the reference service of the same kind (services/api, worker, scheduler),
renamed: the reference services are the one source, so a generated service keeps the contract exactly as they
do. The base comes from templates that carry every default of the convention (probes, limits, PDB, preStop,
GRACE_SECONDS, security context, spread, network policy, logging config); overlays gain the service through
in-place edits (ruamel.yaml round-trip), so their comments and order survive.
"""
from __future__ import annotations

import difflib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from infra.identity import BASE_REPOSITORY
from infra.ops.errors import Refused
from infra.ops.io.manifests import K8S_ROOT, SHARED, shown_path
from infra.ops.io.text import NotUtf8, read_utf8

TEMPLATES = Path(__file__).resolve().parent / "templates"
KINDS = {
    "http": ("serviceaccount.yaml", "deployment.yaml", "service.yaml", "ingress.yaml", "hpa.yaml", "pdb.yaml",
             "networkpolicy.yaml"),
    "worker": ("serviceaccount.yaml", "deployment.yaml", "pdb.yaml", "networkpolicy.yaml"),
    "cron": ("serviceaccount.yaml", "cronjob.yaml", "pdb.yaml", "networkpolicy.yaml"),
}
# DNS-1035 label (Service names must start with a letter), short enough for CronJob's 52-character limit
# and the pod-name suffixes Deployments add.
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
WORKER_REPLICAS = 2
# The CD workflow deploys what its path filters and dispatch choices name; a new service joins both.
CD_WORKFLOW = Path(".github/workflows/cd.yml")
DEFAULT_TAG = "0.1.0"
# The reference service each kind is generated from (services/<reference>), and the shared base every image
# builds on: a change there redeploys every service, so each CD filter lists it too.
REFERENCE = {"http": "api", "worker": "worker", "cron": "scheduler"}
SHARED_BASE_PATH = "services/base/**"


# Namespace names Kubernetes keeps for itself; with anything starting "kube-" they are not service names.
RESERVED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


class ScaffoldError(Refused):
    """Bad input for new-service: the message names the argument and the fix."""


@dataclass(frozen=True)
class FileChange:
    """One file the scaffold creates or updates, with its full new content."""

    path: Path
    content: str
    created: bool


def check_request(name: str, kind: str, k8s_root: Path = K8S_ROOT) -> None:
    """Refuse bad names, unknown kinds and services that exist already."""
    if not kind:
        raise ScaffoldError(f"--kind is required; use one of {', '.join(KINDS)}")
    if kind not in KINDS:
        raise ScaffoldError(f"--kind {kind!r} is not a service kind; use one of {', '.join(KINDS)}")
    if not _NAME.match(name):
        raise ScaffoldError(f"NAME {name!r} is not a valid service name; use 1-40 lowercase letters, digits and '-' "
                            f"(DNS-1123), starting with a letter and not ending with '-'")
    if name in (SHARED, BASE_REPOSITORY):  # base/shared in the manifests; the base image's ECR repository
        raise ScaffoldError(f"NAME {name!r} is reserved for the shared base; pick another name")
    if name in RESERVED_NAMESPACES or name.startswith("kube-"):
        raise ScaffoldError(f"NAME {name!r} is reserved: Kubernetes uses default and kube-* for its own namespaces "
                            f"and objects, and a service named so reads as one; pick another name")
    if (k8s_root / "base" / name).exists():
        raise ScaffoldError(f"NAME {name!r}: service exists already (infra/k8s/base/{name}); pick another name")
    if (k8s_root.parent.parent / "services" / name).exists():
        raise ScaffoldError(f"NAME {name!r}: services/{name} exists already; pick another name or remove it")
    if not (k8s_root.parent.parent / "services" / REFERENCE[kind] / "Dockerfile").is_file():
        raise ScaffoldError(f"--kind {kind}: the reference service services/{REFERENCE[kind]} is missing, so there is "
                            f"no code to generate from; restore it from git")
    overlays = sorted((k8s_root / "overlays").glob("*/kustomization.yaml"))
    if not overlays:
        raise ScaffoldError(f"no overlays under {k8s_root / 'overlays'}; create overlays/<env>/kustomization.yaml first")
    for path in overlays:
        if f"../../base/{name}" in _text(path):
            raise ScaffoldError(f"NAME {name!r}: {path.parent.name} overlay already lists base/{name}; "
                                f"remove the stale entry or pick another name")


def _text(path: Path) -> str:
    """A file the scaffold reads or edits; ScaffoldError naming it when it is not UTF-8 (before anything is written)."""
    try:
        return read_utf8(path)
    except NotUtf8 as error:
        raise ScaffoldError(f"{shown_path(path)} is {error}; save it as UTF-8 before adding a service") from None


def plan(name: str, kind: str, k8s_root: Path = K8S_ROOT) -> list[FileChange]:
    """Every file the scaffold would write, without writing anything (the --dry-run view)."""
    check_request(name, kind, k8s_root)
    base = k8s_root / "base" / name
    files = KINDS[kind]
    values = {"name": name, "kind": kind, "version": DEFAULT_TAG,
              "resources": "\n".join(f"  - {f}" for f in files)}
    changes = [FileChange(base / "kustomization.yaml", _fill("common/kustomization.yaml", values), True)]
    changes += [FileChange(base / f, _fill(_template_path(kind, f), values), True) for f in files]
    changes += service_code(k8s_root.parent.parent, name, kind)
    workflow = k8s_root.parent.parent / CD_WORKFLOW
    if workflow.is_file():
        changes.append(FileChange(workflow, _add_to_cd(workflow, name), False))
    for kustomization in sorted((k8s_root / "overlays").glob("*/kustomization.yaml")):
        env = kustomization.parent.name
        host = f"{name}.{env}.example.com"
        patch = _fill(f"overlay/{kind}.yaml", {**values, "env": env, "host": host})
        changes.append(FileChange(kustomization.parent / "patches" / f"{name}.yaml", patch, True))
        changes.append(FileChange(kustomization, _add_to_overlay(kustomization, name, kind), False))
    clobbered = [shown_path(c.path) for c in changes if c.created and c.path.exists()]
    if clobbered:
        raise ScaffoldError(f"NAME {name!r}: {clobbered[0]} exists already; remove the leftover or pick another name")
    return changes


def apply(changes: list[FileChange]) -> None:
    """Write the planned files (new files first, overlay edits last, so a failure leaves overlays intact)."""
    for change in sorted(changes, key=lambda c: not c.created):
        change.path.parent.mkdir(parents=True, exist_ok=True)
        change.path.write_text(change.content)


def describe(changes: list[FileChange]) -> list[str]:
    """One line per new file and a unified diff per edited one, for --dry-run and the summary."""
    lines = []
    for change in changes:
        shown = shown_path(change.path)
        if change.created:
            lines.append(f"create {shown} ({len(change.content.splitlines())} lines)")
            continue
        lines.append(f"update {shown}")
        lines += difflib.unified_diff(_text(change.path).splitlines(), change.content.splitlines(),
                                      f"a/{shown}", f"b/{shown}", lineterm="", n=1)
    return lines


def service_code(repo: Path, name: str, kind: str) -> list[FileChange]:
    """services/<name>: the reference service of `kind` copied, its package and name rewritten."""
    reference = REFERENCE[kind]
    source = repo / "services" / reference
    package = name.replace("-", "_")
    changes = []
    for path in sorted(source.rglob("*")):
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        relative = path.relative_to(source)
        if relative.parts[0] == reference and len(relative.parts) > 1:
            relative = Path(package, *relative.parts[1:])
        text = rename(_text(path), relative, reference, name, package, kind)
        changes.append(FileChange(repo / "services" / name / relative, text, True))
    init = next((c for c in changes if c.path == repo / "services" / name / package / "__init__.py"), None)
    if init is None or f'SERVICE = "{name}"' not in init.content:
        raise ScaffoldError(f"services/{reference} has no {reference}/__init__.py with SERVICE = \"{reference}\"; "
                            f"restore the reference service from git")
    return changes


def rename(text: str, relative: Path, reference: str, name: str, package: str, kind: str) -> str:
    """The few places a reference service names itself: SERVICE in its package, `-m <package>`, the Dockerfile."""
    text = text.replace(f"python -m {reference}", f"python -m {package}")
    if relative == Path(package, "__init__.py"):
        text = re.sub(r'^""".*?"""', f'"""{name}: generated by `invoke new-service --kind {kind}` from services/'
                      f'{reference}; replace its example work with yours, keeping the contract."""', text, count=1,
                      flags=re.DOTALL)
        text = text.replace(f'SERVICE = "{reference}"', f'SERVICE = "{name}"')
    elif relative == Path("Dockerfile"):
        text = text.replace(f"COPY {reference} /app/{reference}", f"COPY {package} /app/{package}")
        text = text.replace(f'"-m", "{reference}"]', f'"-m", "{package}"]')
        text = text.replace(f'org.opencontainers.image.title="{reference}"', f'org.opencontainers.image.title="{name}"')
        text = re.sub(r'org\.opencontainers\.image\.description="[^"]*"',
                      f'org.opencontainers.image.description="{name} ({kind}), generated from services/{reference}"',
                      text)
        text = re.sub(rf"^# {re.escape(reference)}:", f"# {name}:", text, flags=re.MULTILINE)
    return text


def _template_path(kind: str, filename: str) -> str:
    return f"{kind}/{filename}" if (TEMPLATES / kind / filename).exists() else f"common/{filename}"


def _fill(template: str, values: dict[str, str]) -> str:
    return Template((TEMPLATES / template).read_text()).substitute(values)


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 120
    return yaml


def _add_to_overlay(kustomization: Path, name: str, kind: str) -> str:
    """The overlay kustomization with the service's base, image, replicas (workers) and patch added."""
    yaml = _yaml()
    doc = _kustomization(yaml, kustomization)
    doc.setdefault("resources", []).append(f"../../base/{name}")
    images = doc.setdefault("images", [])
    registry, tag = _registry_and_tag(images, kustomization.parent.name)
    images.append({"name": name, "newName": f"{registry}/{name}", "newTag": DoubleQuotedScalarString(tag)})
    if kind == "worker":
        doc.setdefault("replicas", []).append({"name": name, "count": WORKER_REPLICAS})
    doc.setdefault("patches", []).append({"path": f"patches/{name}.yaml"})
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _kustomization(yaml: YAML, path: Path):
    """The overlay's kustomization.yaml as a map whose lists the scaffold appends to; ScaffoldError naming the file
    (and the line) when it is not YAML or not that shape, before anything is written."""
    from ruamel.yaml import YAMLError

    shown = shown_path(path)
    try:
        doc = yaml.load(_text(path))
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}: {getattr(error, 'problem', None) or 'invalid'})" if mark else ""
        raise ScaffoldError(f"{shown} is not valid YAML{where}; fix it (`kubectl kustomize {shown_path(path.parent)}` "
                            f"shows the error) before adding a service") from None
    if not isinstance(doc, dict):
        raise ScaffoldError(f"{shown} is not a kustomization (a map of resources, images, patches); fix it before "
                            f"adding a service")
    for key in ("resources", "images", "replicas", "patches"):
        if key in doc and not isinstance(doc[key], list):
            raise ScaffoldError(f"{shown}: {key} is not a list; fix it before adding a service")
    if not all(isinstance(image, dict) for image in doc.get("images") or []):
        raise ScaffoldError(f"{shown}: an entry of images is not a map (name, newName, newTag); fix it before adding "
                            f"a service")
    return doc


def _add_to_cd(workflow: Path, name: str) -> str:
    """cd.yml with the service's path filter and workflow_dispatch choice added, edited as text.

    A text edit keeps the workflow byte-for-byte elsewhere (a YAML round-trip would restyle it); the result is
    parsed back and checked, so a layout this cannot edit is refused instead of half-edited.
    """
    from infra.lint.workflows import SERVICE_PATHS

    lines = _text(workflow).splitlines(keepends=True)
    shown = shown_path(workflow)
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "filters: |")
        end, indent = start + 1, None
        for index in range(start + 1, len(lines)):
            if not lines[index].strip():
                continue
            depth = len(lines[index]) - len(lines[index].lstrip())
            indent = depth if indent is None else indent
            if depth < indent:
                break
            end = index + 1
        pad = " " * (indent or 0)
        paths = [*(p.format(svc=name) for p in SERVICE_PATHS), SHARED_BASE_PATH]
        lines[end:end] = [f"{pad}{name}:\n", *(f"{pad}  - '{p}'\n" for p in paths)]
        service = next(i for i, line in enumerate(lines) if line.strip() == "service:"
                       and i > next(j for j, x in enumerate(lines) if x.strip() == "workflow_dispatch:"))
        option = next(i for i in range(service, len(lines)) if lines[i].lstrip().startswith("options: ["))
    except StopIteration:
        raise ScaffoldError(f"cannot find the path filters and the workflow_dispatch `service` options in {shown}; "
                            f"add {name} there by hand") from None
    head, _, rest = lines[option].partition("[")
    choices = sorted({*(c.strip() for c in rest.split("]")[0].split(",") if c.strip()), name})
    lines[option] = f"{head}[{', '.join(choices)}]\n"
    text = "".join(lines)
    doc = YAML(typ="safe").load(text)
    filters = YAML(typ="safe").load(next(step["with"]["filters"] for job in doc["jobs"].values()
                                         for step in job.get("steps", []) if "filters" in step.get("with", {})))
    triggers = doc.get("on", doc.get(True)) or {}  # YAML 1.1 readers turn the `on` key into True
    if name not in filters or name not in triggers["workflow_dispatch"]["inputs"]["service"]["options"]:
        raise ScaffoldError(f"could not add {name} to {shown}; add its path filter and dispatch choice by hand")
    return text


def _registry_and_tag(images: list, env: str) -> tuple[str, str]:
    """The registry the overlay already uses (one per environment), or the stack's region's ECR placeholder."""
    for image in images:
        if "/" in str(image.get("newName", "")):
            return str(image["newName"]).rsplit("/", 1)[0], str(image.get("newTag", DEFAULT_TAG))
    from infra.config import load_stack_config

    region = load_stack_config(env).region
    return f"000000000000.dkr.ecr.{region}.amazonaws.com", DEFAULT_TAG
