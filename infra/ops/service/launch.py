"""Start the service under check: its container where a Docker engine answers, else its process from services/<svc>.

Either way it gets the manifest's environment with the dependencies' addresses swapped for the check's relays,
stdout is collected line by line, and it is stopped by its own id.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from infra.ops.io.docker_cli import Docker, DockerError
from infra.ops.service.contract import BASE, Service


@dataclass
class Running:
    """A started service: its output lines so far, signals, exit code."""

    process: subprocess.Popen[str]  # started with stdout=PIPE, text=True
    stop: list[str] = field(default_factory=list)   # a command that stops it for good (containers)
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.process.stdout is None:
            raise ValueError("Running needs a process started with stdout=subprocess.PIPE")
        self.reader = threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True)
        self.reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self.lines.append(line.rstrip("\n"))

    def signal(self, signum: int = signal.SIGTERM) -> float:
        """Send `signum`; returns when it was sent (monotonic)."""
        sent = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)
        return sent

    def wait(self, timeout_s: float) -> int | None:
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        self.reader.join(5)
        return code

    @property
    def exited(self) -> int | None:
        return self.process.poll()

    def output(self) -> list[str]:
        """Every line so far; after exit, the whole output (the reader has finished)."""
        return list(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(10)
        if self.stop:
            subprocess.run(self.stop, capture_output=True, check=False, timeout=60)


class ProcessLauncher:
    """The service's CMD run by this interpreter, with services/base and services/<svc> on PYTHONPATH."""

    how = "process"

    def __init__(self, service: Service, scratch: Path) -> None:
        self.service = service
        self.scratch = scratch

    def start(self, env: dict[str, str]) -> Running:
        command = [sys.executable if part in ("python", "python3") else part for part in self.service.command]
        path = os.pathsep.join([str(self.service.directory.parent / BASE), str(self.service.directory)])
        full = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AMQP"))}
        full.update({"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
                     "TMPDIR": str(self.scratch), "HOME": str(self.scratch), **env})
        process = subprocess.Popen(command, cwd=self.scratch, env=full, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        return Running(process)


class ContainerLauncher:
    """The image built from services/base then services/<svc>, run read-only as UID 10001 on the host network."""

    how = "container"

    def __init__(self, service: Service, scratch: Path, docker: Docker | None = None) -> None:
        self.service = service
        self.scratch = scratch
        self.docker = docker or Docker()
        self.image = f"{service.name}:contract-check"

    def build(self) -> None:
        base = "service-base:contract-check"
        self.docker.call(["build", "--tag", base, str(self.service.directory.parent / BASE)])
        self.docker.call(["build", "--build-arg", f"BASE_IMAGE={base}", "--tag", self.image,
                          str(self.service.directory)])

    def start(self, env: dict[str, str]) -> Running:
        name = f"contract-check-{self.service.name}-{os.getpid()}-{time.monotonic_ns()}"
        args = ["run", "--rm", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
                "--user", "10001:10001", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        log_config = env.get("LOG_CONFIG")
        if log_config:
            args += ["--volume", f"{Path(log_config).parent}:{Path(log_config).parent}:ro"]
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        binary = self.docker.binary()
        process = subprocess.Popen([binary, *args, self.image], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, text=True)
        return Running(process, stop=[binary, "rm", "--force", name])


def launcher(service: Service, scratch: Path, docker: Docker | None = None) -> ProcessLauncher | ContainerLauncher:
    """The container when a Docker engine answers (and the images build), else the process."""
    docker = docker or Docker()
    try:
        if docker.answers():
            chosen = ContainerLauncher(service, scratch, docker)
            chosen.build()
            return chosen
    except DockerError:
        pass
    return ProcessLauncher(service, scratch)
