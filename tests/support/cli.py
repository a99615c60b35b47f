"""The one way tests run a task: `python -m invoke ...` in a subprocess, as a user runs it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT

ROOT = REPO_ROOT


def invoke(*args: str, env: dict[str, str] | None = None, stdin: str | None = None, cwd: Path = ROOT,
           timeout: float = 240, stdin_closed: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `invoke ARGS`; `env` is added to (not instead of) this process's environment. `stdin_closed` starts it
    with file descriptor 0 closed, as `<&-` in a shell does."""
    command = [sys.executable, "-m", "invoke", *args]
    if stdin_closed:
        command = ["sh", "-c", 'exec "$@" <&-', "sh", *command]
    return subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """Assert the task failed with `code` and one line on stderr (no traceback) holding every fragment."""
    err = result.stderr.strip()
    assert result.returncode == code, f"exit {result.returncode}, wanted {code}\nstdout: {result.stdout}\nstderr: {err}"
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
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
    with subprocess.Popen([sys.executable, "-m", "invoke", *args], cwd=cwd, stdout=write_end, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}) as process:
        os.close(write_end)
        taken: list[bytes] = []
        if lines:
            with os.fdopen(read_end, "rb") as reader:
                taken = [reader.readline() for _ in range(lines)]
        _, errors = process.communicate(timeout=timeout)
    return process.returncode, taken, errors.decode()
