"""The .github/ tree as data for the tests: parsed workflows and actions, and a scratch copy to seed mistakes into."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from infra.ops.io.manifests import REPO

GITHUB = REPO / ".github"
WORKFLOWS = {p.stem: p for p in sorted((GITHUB / "workflows").glob("*.yml"))}
ACTIONS = {p.parent.name: p for p in sorted((GITHUB / "actions").glob("*/action.yml"))}
THIRD_PARTY = re.compile(r"^\s*-?\s*uses:\s*(?P<ref>[\w.-]+/[\w./-]+@\S+)(?P<rest>.*)$")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    if True in data:  # PyYAML reads a bare `on:` key as the boolean True (YAML 1.1)
        data["on"] = data.pop(True)
    return data


def jobs(name: str) -> dict[str, dict[str, Any]]:
    return load(WORKFLOWS[name])["jobs"]


def steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of a workflow (all jobs) or of a composite action."""
    if "runs" in doc:
        return doc["runs"].get("steps", [])
    return [step for job in doc["jobs"].values() for step in job.get("steps", [])]


def scripts() -> dict[str, str]:
    """'file: step' -> run script, for every run step of every workflow and action."""
    found = {}
    for path in [*WORKFLOWS.values(), *ACTIONS.values()]:
        for i, step in enumerate(steps(load(path))):
            if "run" in step:
                found[f"{path.relative_to(REPO)}: {step.get('name', i)}"] = step["run"]
    return found


def scratch_repo(tmp_path: Path) -> Path:
    """A copy of what `ci.check` reads (.github, service bases, requirements, stack files) to break on purpose."""
    root = tmp_path / "repo"
    shutil.copytree(GITHUB, root / ".github")
    shutil.copytree(REPO / "infra" / "k8s" / "base", root / "infra" / "k8s" / "base")
    for name in ("requirements.txt", *(p.name for p in REPO.glob("Pulumi.*.yaml"))):
        shutil.copy(REPO / name, root / name)
    return root
