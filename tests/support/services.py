"""The services' world: the repository's services started as processes (the path `service.check` takes without
Docker), and waits that return as soon as their condition holds. The real PostgreSQL and RabbitMQ they talk to are
fixtures (tests/support/fixtures/services.py)."""
from __future__ import annotations

import shutil
import signal
from pathlib import Path

from infra.ops.service import contract
from infra.ops.service.check import http, until
from infra.ops.service.launch import ProcessLauncher, Running
from infra.ops.service.local import free_port
from tests.support import REPO_ROOT

WAIT_S = 60.0


class Services:
    """Starts the repository's services as processes (the path `service.check` takes without Docker)."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.running: list[Running] = []

    def start(self, name: str, **env: str) -> tuple[Running, str]:
        port = free_port()
        log_config = self.scratch / f"logging-{len(self.running)}.yaml"
        log_config.write_text("version: 1\nroot:\n  level: INFO\n")
        full = {"PORT": str(port), "HOST": "127.0.0.1", "LOG_CONFIG": str(log_config), "GRACE_SECONDS": "10", **env}
        run = ProcessLauncher(contract.load(REPO_ROOT, name), self.scratch).start(full)
        self.running.append(run)
        base = f"http://127.0.0.1:{port}"
        assert until(lambda: http(base + "/healthz")[0] == 200 or run.exited is not None, WAIT_S), run.output()
        return run, base

    def stop_all(self) -> None:
        for run in self.running:
            if run.exited is None:
                run.signal(signal.SIGKILL)
            run.wait(10)


def ready(base: str, run: Running, timeout_s: float = WAIT_S) -> bool:
    return until(lambda: http(base + "/readyz")[0] == 200 or run.exited is not None, timeout_s) and run.exited is None


def copy_repo(target: Path) -> Path:
    """infra/k8s, services/ and .github/ of the repository under target (what service.check and new-service read)."""
    for part in ("infra/k8s", "services", ".github"):
        shutil.copytree(REPO_ROOT / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def patch(repo: Path, path: str, old: str, new: str) -> None:
    """Replace one exact snippet of a copied file (it must occur once: a stale case fails loudly)."""
    target = repo / path
    text = target.read_text()
    assert text.count(old) == 1, (path, old)
    target.write_text(text.replace(old, new))


def wait_for(condition, timeout_s: float = WAIT_S) -> bool:
    """Returns as soon as `condition()` holds; False after timeout_s."""
    return until(condition, timeout_s, every_s=0.1)


