"""The one place that shells out to `pulumi`, so tests can put a fake executable on PATH.

Ops engines change infrastructure only through this (config change + `pulumi up`), so Pulumi
state never drifts from what the engines did. `pulumi` itself never prompts (--non-interactive, so a
run never hangs on a question nobody sees): an `up` a person confirms shows the preview here, asks
through `confirm`, then runs `up --yes --skip-preview`, which is what pulumi's own prompt does.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config import ROOT
from infra.ops.errors import Failed, Refused


class PulumiError(Failed):
    """A pulumi command failed or the CLI is missing; the message says which and how to proceed."""


class ConfirmationNeeded(Refused):
    """An `up` without --yes where nobody can be asked (stdin is not a terminal): nothing was run."""

    def __init__(self, stack: str):
        super().__init__(f"`invoke up --env {stack}` asks before it changes anything, and stdin is not a terminal: "
                         f"review `invoke preview --env {stack}`, then pass --yes")


class NotConfirmed(Failed):
    """The preview was shown and the person declined: nothing was applied."""

    def __init__(self, stack: str):
        super().__init__(f"not confirmed: nothing was applied to stack {stack}")


@dataclass
class PulumiCLI:
    """`pulumi` for one stack, run in the project directory."""

    stack: str
    cwd: Path = ROOT
    executable: str = "pulumi"
    env: dict[str, str] | None = None
    calls: list[list[str]] = field(default_factory=list)

    def _binary(self) -> str:
        found = shutil.which(self.executable)
        if not found:
            raise PulumiError(f"`{self.executable}` CLI not found on PATH; install it "
                              f"(https://www.pulumi.com/docs/install/) or use `invoke plan` offline")
        return found

    def require(self) -> None:
        """PulumiError now when the CLI is missing: an operation that will need `pulumi up` asks before its first
        change, so it never stops halfway for want of it."""
        self._binary()

    def run(self, *args: str, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess:
        command = [self._binary(), *args, "--stack", self.stack, "--non-interactive"]
        self.calls.append(command)
        result = subprocess.run(command, cwd=self.cwd, env=self.env, text=True,
                                stdout=subprocess.PIPE if capture else None,
                                stderr=subprocess.PIPE if capture else None)
        if check and result.returncode != 0:
            detail = (result.stderr or "").strip().splitlines()[-1:] if capture else []
            raise PulumiError(f"`pulumi {' '.join(args)}` failed for stack {self.stack} "
                              f"(exit {result.returncode}){': ' + detail[0] if detail else ''}")
        return result

    def preview(self, diff: bool = True, targets: list[str] | None = None, policy_packs: Sequence[str] = ()) -> None:
        self.run("preview", *(["--diff"] if diff else []), *_targets(targets), *_packs(policy_packs))

    def up(self, yes: bool = False, targets: list[str] | None = None,
           confirm: Callable[[], bool] | None = None, policy_packs: Sequence[str] = ()) -> None:
        """`pulumi up`. Without `yes`: the preview first, applied only if `confirm()` (a person at a terminal) says
        so; NotConfirmed when declined, ConfirmationNeeded when there is nobody to ask."""
        if not yes:
            if confirm is None:
                raise ConfirmationNeeded(self.stack)
            self.preview(targets=targets, policy_packs=policy_packs)
            if not confirm():
                raise NotConfirmed(self.stack)
        self.run("up", "--yes", "--skip-preview", *_targets(targets), *_packs(policy_packs))

    def outputs(self) -> dict[str, Any]:
        """Current stack outputs (secrets stay masked); {} for a stack never deployed."""
        result = self.run("stack", "output", "--json", capture=True, check=False)
        if result.returncode != 0:
            return {}
        try:
            return json.loads(result.stdout or "{}")
        except json.JSONDecodeError as exc:
            raise PulumiError(f"`pulumi stack output --json` printed invalid JSON: {exc}") from None

    def set_config(self, key: str, value: str, path: bool = True) -> None:
        """Set one config value (`--path` addresses nested keys like cluster.version)."""
        self.run("config", "set", *(["--path"] if path else []), key, value)


def _packs(policy_packs: Sequence[str]) -> list[str]:
    """CrossGuard policy packs (directories) pulumi runs against every resource of the preview or update."""
    return [arg for pack in policy_packs for arg in ("--policy-pack", pack)]


def _targets(targets: list[str] | None) -> list[str]:
    return [arg for target in targets or [] for arg in ("--target", target)]
