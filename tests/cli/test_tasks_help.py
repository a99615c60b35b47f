"""Every task answers `invoke TASK --help` with its usage, including tasks whose first argument is positional."""
from __future__ import annotations

import pytest

from tests.support.cli import invoke, task_names

TASKS = task_names()


def test_the_documented_tasks_exist():
    assert {"plan", "preview", "up", "lint", "new-service", "deploy", "rollback", "history", "nodes.migrate",
            "cluster.upgrade", "nat.rotate", "nat.status", "secrets.set", "secrets.list", "access.migrate",
            "ci.check", "platform.status"} <= set(TASKS)


@pytest.mark.parametrize("name", TASKS)
def test_task_help_after_the_task_name(name):
    result = invoke(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: inv[oke] [--core-opts] {name} ")
    assert "Docstring:" in result.stdout and "Options:" in result.stdout


@pytest.mark.parametrize("args", [("secrets.set", "-h"), ("secrets.set", "worker", "--help"),
                                  ("secrets.set", "--env", "dev", "--help")], ids=" ".join)
def test_two_positional_task_shows_help_wherever_help_lands(args):
    """invoke hands --help to whichever positional is still empty; the task answers with its help either way."""
    result = invoke(*args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: inv[oke] [--core-opts] secrets.set ") and "--service" in result.stdout
