"""The one place that shells out to `docker`, so tests can put a fake executable on PATH.

Registry passwords go in on stdin (`--password-stdin`), never on the command line, where `ps` and CI
logs would show them.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from infra.ops.errors import Failed


class DockerError(Failed):
    """A docker command failed or docker is missing; the message says which (never a password)."""


@dataclass
class Docker:
    """`docker` with the calls a deploy needs: registry login and `buildx build --push`."""

    executable: str = "docker"
    calls: list[list[str]] = field(default_factory=list)

    def _run(self, args: list[str], stdin: str | None = None, capture: bool = True) -> str:
        binary = shutil.which(self.executable)
        if not binary:
            raise DockerError(f"`{self.executable}` not found on PATH; install Docker with buildx, or deploy an "
                              f"image that is already pushed with --tag")
        command = [binary, *args]
        self.calls.append(command)
        done = subprocess.run(command, input=stdin, text=True, check=False,
                              stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE)
        if done.returncode != 0:
            lines = [line for line in (done.stderr or "").splitlines() if line.strip()]
            raise DockerError(f"`docker {' '.join(args[:2])}` failed (exit {done.returncode})"
                              + (f": {lines[-1]}" if lines else ""))
        return done.stdout or ""

    def login(self, registry: str, username: str, password: str) -> None:
        self._run(["login", "--username", username, "--password-stdin", registry], stdin=password)

    def build_push(self, context: Path, image: str, dockerfile: Path | None = None, platform: str = "linux/amd64",
                   labels: dict[str, str] | None = None, build_args: dict[str, str] | None = None) -> None:
        """Build `context` for `platform` and push it as `image` in one buildx call (output streams to the user)."""
        args = ["buildx", "build", "--platform", platform, "--tag", image, "--push"]
        if dockerfile:
            args += ["--file", str(dockerfile)]
        for key, value in (labels or {}).items():
            args += ["--label", f"{key}={value}"]
        for key, value in (build_args or {}).items():
            args += ["--build-arg", f"{key}={value}"]
        self._run([*args, str(context)], capture=False)

    # -- for `invoke service.check` (infra/ops/service/launch.py): run a service's image locally ------------
    def binary(self) -> str:
        found = shutil.which(self.executable)
        if not found:
            raise DockerError(f"`{self.executable}` not found on PATH")
        return found

    def answers(self, timeout_s: float = 10.0) -> bool:
        """True when a Docker engine answers `docker info` (the CLI alone is not enough to run containers)."""
        binary = shutil.which(self.executable)
        if not binary:
            return False
        try:
            done = subprocess.run([binary, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                                  timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0 and bool(done.stdout.strip())

    def call(self, args: list[str]) -> str:
        """Any docker command; DockerError naming it when it fails."""
        return self._run(args)
