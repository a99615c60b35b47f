"""`invoke test|fmt`: the dev loop, running the commands CI runs (.ci/run), so a green laptop means a green CI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from invoke import Collection
from invoke.exceptions import Exit

from infra.cli.common import fail, task

ROOT = Path(__file__).resolve().parents[2]
# What ruff looks at: the folders .ci/run checks, and services/ where it exists.
SOURCES = ("infra", "tests", "tasks.py", "bench", "services")


def areas(tests: Path | None = None) -> list[str]:
    """The folders of tests/ that hold tests: what --area accepts."""
    tests = tests or ROOT / "tests"
    return sorted(folder.name for folder in tests.iterdir()
                  if folder.is_dir() and next(folder.rglob("test_*.py"), None) is not None)


def _run(command: list[str]) -> None:
    """Run a tool from the repository root with this terminal; its exit code becomes the task's."""
    code = subprocess.run(command, cwd=ROOT, check=False).returncode
    if code:
        raise Exit(code=code)


@task(help={"area": "one folder of tests/ to run, e.g. --area deploy (default: the whole suite)",
            "k": "only tests whose names match this pytest -k expression, e.g. -k 'rollback and not prod'"})
def test(c, area=None, k=None):
    """Run the tests as CI does (pytest on both cores), on one tests/<area> folder when given."""
    command = [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider"]
    if area is not None:
        valid = areas()
        if area not in valid:
            raise fail(f"--area {area!r} is not a folder of tests/; use one of: {', '.join(valid)}")
        command.append(f"tests/{area}")
    if k is not None:
        command += ["-k", _keyword_expression(k)]
    _run(command)


def _keyword_expression(k: str) -> str:
    """-k as pytest will read it, checked first with pytest's own parser: a bad expression is one line now, not an
    INTERNALERROR after the whole suite was collected. (`_pytest.mark.expression` is what `pytest -k` compiles
    with; tests/cli/test_dev_tasks.py pins it.)"""
    from _pytest.mark.expression import Expression

    try:
        Expression.compile(k)
    except SyntaxError as error:
        raise fail(f"-k {k!r} is not a pytest -k expression ({error.msg} at column {error.offset}); e.g. "
                   f"-k 'rollback and not prod'") from None
    return k


@task(help={"check": "change nothing: list what ruff finds and exit 1 if anything (what CI runs)"})
def fmt(c, check=False):
    """Apply ruff's fixes (import order, pyupgrade, ...) to infra, tests, tasks.py and bench; --check only reports.

    Exit 1 when a finding is left that ruff cannot fix by itself."""
    paths = [name for name in SOURCES if (ROOT / name).exists()]
    _run([sys.executable, "-m", "ruff", "check", *([] if check else ["--fix"]), *paths])


ns = Collection(test, fmt)
