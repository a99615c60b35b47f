"""The one way tests run a task: `python -m invoke ...` in a subprocess, as a user runs it.

`invoke` runs a task to its end; `spawn` starts one a test then signals, reads line by line or gives a terminal;
`command` is the argv both use. No test writes `[sys.executable, "-m", "invoke", ...]` itself
(tests/support/tests/test_layout.py checks it), so how a task is started is decided here once.
"""
from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from tests.support import REPO_ROOT

ROOT = REPO_ROOT


def command(*args: str) -> list[str]:
    """The argv of `invoke ARGS` with this interpreter (the venv's invoke and the project's packages)."""
    return [sys.executable, "-m", "invoke", *args]


def environment(env: Mapping[str, str] | None = None, unset: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment without `unset`, plus `env`: what a task started from here sees."""
    removed = set(unset)
    return {**{key: value for key, value in os.environ.items() if key not in removed}, **(env or {})}


def spawn(*args: str, env: Mapping[str, str] | None = None, unset: Iterable[str] = (), cwd: Path = ROOT,
          **popen: Any) -> subprocess.Popen:
    """Start `invoke ARGS` and return at once; `popen` are Popen's own options (stdin, stdout, stderr, text,
    close_fds), so a test can wire the task to a pipe it closes or to a pseudo-terminal."""
    return subprocess.Popen(command(*args), cwd=cwd, env=environment(env, unset), **popen)


def invoke(*args: str, env: Mapping[str, str] | None = None, unset: Iterable[str] = (), stdin: str | None = None,
           cwd: Path = ROOT, timeout: float = 240, stdin_closed: bool = False,
           stdout: int | IO[Any] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS` to its end; `env` is added to (not instead of) this process's environment, `unset` names
    are removed from it. `stdin_closed` starts it with file descriptor 0 closed, as `<&-` in a shell does; `stdout`
    (a file or descriptor) takes the output instead of capturing it, as `> FILE` does."""
    argv = command(*args)
    if stdin_closed:
        argv = ["sh", "-c", 'exec "$@" <&-', "sh", *argv]
    return subprocess.run(argv, cwd=cwd, input=stdin, text=True, timeout=timeout, env=environment(env, unset),
                          stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE)


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Assert the task failed with `code` and one line on stderr (no traceback) holding every fragment."""
    err = result.stderr.strip()
    assert result.returncode == code, f"exit {result.returncode}, wanted {code}\nstdout: {result.stdout}\nstderr: {err}"
    assert "Traceback" not in result.stderr + (result.stdout or ""), result.stderr
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"wanted one line on stderr, got {len(lines)}:\n{err}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def invoke_into_reader(*args: str, lines: int, env: dict[str, str] | None = None, cwd: Path = ROOT,
                       timeout: float = 240) -> tuple[int, list[bytes], str]:
    """Run `invoke ARGS` with stdout into a reader that takes `lines` lines and closes the pipe, as `| head -N` does;
    lines=0 closes it before the task writes anything, so the task's first write meets the broken pipe (however fast
    the task). Returns (exit code, the lines read, stderr)."""
    read_end, write_end = os.pipe()
    if not lines:
        os.close(read_end)
    with spawn(*args, env=env, cwd=cwd, stdout=write_end, stderr=subprocess.PIPE,
               stdin=subprocess.DEVNULL) as process:
        os.close(write_end)
        taken: list[bytes] = []
        if lines:
            with os.fdopen(read_end, "rb") as reader:
                taken = [reader.readline() for _ in range(lines)]
        _, errors = process.communicate(timeout=timeout)
    return process.returncode, taken, errors.decode()


@functools.cache
def task_names() -> tuple[str, ...]:
    """Every task as `invoke --list` shows it to a user (dotted names for the namespaces), asked once per process."""
    listing = json.loads(invoke("--list", "--list-format=json").stdout)
    names = [task["name"] for task in listing["tasks"]]
    names += [f"{col['name']}.{task['name']}" for col in listing["collections"] for task in col["tasks"]]
    return tuple(names)
