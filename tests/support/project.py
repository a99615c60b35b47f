"""A scratch copy of what a task needs to run (tasks.py, the Pulumi project and stack files, infra/): a test edits
the copy's stack files and runs the task in it (tests/support/cli.py, cwd=the copy), the real files untouched.
The bad-input tables use a git copy of the whole project instead (tests/support/bad_input.py)."""
from __future__ import annotations

import shutil
from pathlib import Path

from tests.support import REPO_ROOT

TASK_FILES = ("tasks.py", "Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml", "__main__.py")


def copy_task_files(target: Path, *extra: str) -> Path:
    """TASK_FILES, `extra` files of the repository root and infra/ into `target`; returns `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in (*TASK_FILES, *extra):
        shutil.copy(REPO_ROOT / name, target / name)
    shutil.copytree(REPO_ROOT / "infra", target / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    return target
