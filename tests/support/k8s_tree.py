"""A private copy of infra/k8s per test, and small edits to seed broken manifests into it."""
from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from infra.ops.io.manifests import K8S_ROOT
from infra.versions import KubeVersion

# Both stacks run this version today; tests pin it so a stack upgrade does not change what they assert.
VERSIONS = {"dev": KubeVersion.parse("1.31"), "prod": KubeVersion.parse("1.31")}
FAST_CHECKS = ("yamllint", "render", "schema", "deprecations", "rules")


def copy_tree(tmp_path: Path) -> Path:
    """infra/k8s copied under tmp_path/infra/k8s; returns the copy's root."""
    root = tmp_path / "infra" / "k8s"
    shutil.copytree(K8S_ROOT, root)
    return root


def edit(path: Path, change: Callable[[list[dict[str, Any]]], None]) -> None:
    """Load every document of a YAML file, let `change` mutate them, write them back in the house style."""
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    docs = [d for d in yaml.load_all(path.read_text()) if d]
    change(docs)
    with path.open("w") as out:
        yaml.dump_all(docs, out)


def container(docs: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    """The first container of the first object of that kind (CronJob: its job's pod)."""
    obj = next(d for d in docs if d["kind"] == kind)
    spec = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
    return spec["template"]["spec"]["containers"][0]


def pod(docs: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    obj = next(d for d in docs if d["kind"] == kind)
    spec = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
    return spec["template"]["spec"]
