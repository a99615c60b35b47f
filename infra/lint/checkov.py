"""checkov over rendered manifests, run from its own virtualenv.

checkov pins an old boto3 that cannot live beside the project's, so it gets `.venv-checkov`, created on
first use from requirements-checkov.txt (the one pin) and rebuilt when that file changes. The scan runs as
a background process so lint's other checks run while checkov starts up.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.lint.findings import Finding
from infra.ops.errors import Failed
from infra.ops.io.manifests import K8S_ROOT, REPO, Manifest, to_yaml

VENV = REPO / ".venv-checkov"
REQUIREMENTS = REPO / "requirements-checkov.txt"
CONFIG = K8S_ROOT / ".checkov.yaml"
STAMP = ".requirements.sha256"
INSTALL_TIMEOUT_S = 1200
SCAN_TIMEOUT_S = 300


class CheckovError(Failed):
    """checkov could not be installed or did not produce a report."""


def _wanted() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ready(venv: Path = VENV) -> bool:
    """True when the venv has checkov installed from the current requirements-checkov.txt."""
    stamp = venv / STAMP
    return (venv / "bin" / "checkov").exists() and stamp.exists() and stamp.read_text().strip() == _wanted()


def ensure_env(venv: Path = VENV, say: Callable[[str], None] = print) -> Path:
    """Create or refresh the checkov venv when needed; returns the checkov executable."""
    if ready(venv):
        return venv / "bin" / "checkov"
    say(f"installing checkov into {venv.name} from {REQUIREMENTS.name} (one-off, a few minutes)")
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)]]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise CheckovError(f"{' '.join(step[:3])} took over {INSTALL_TIMEOUT_S} s; retry or skip with "
                               f"--skip checkov") from None
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise CheckovError(f"could not install checkov into {venv.name}: {tail}")
    (venv / STAMP).write_text(_wanted())
    return venv / "bin" / "checkov"


@dataclass
class Scan:
    """A running checkov over one rendered file per overlay; `findings()` waits for it."""

    process: subprocess.Popen[str]
    workdir: tempfile.TemporaryDirectory[str]
    sources: dict[tuple[str, str, str], Manifest] = field(default_factory=dict)

    def findings(self) -> list[Finding]:
        try:
            out, err = self.process.communicate(timeout=SCAN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            return [Finding("", "", "checkov", f"checkov ran over {SCAN_TIMEOUT_S} s", "rerun, or --skip checkov")]
        finally:
            self.workdir.cleanup()
        try:
            reports = json.loads(out) if out.strip() else []
        except json.JSONDecodeError:
            reports = None
        if self.process.returncode not in (0, 1) or reports is None:
            tail = (err.strip().splitlines() or [f"exit code {self.process.returncode}"])[-1]
            return [Finding("", "", "checkov", f"checkov failed: {tail}", "run checkov by hand to see why")]
        return self._parse(reports if isinstance(reports, list) else [reports])

    def _parse(self, reports: list[dict]) -> list[Finding]:
        findings = []
        for report in reports:
            for failed in (report.get("results") or {}).get("failed_checks") or []:
                kind, _, rest = str(failed.get("resource", "")).partition(".")
                namespace, _, name = rest.partition(".")
                manifest = self.sources.get((kind, namespace, name))
                fix = failed.get("guideline") or f"see checkov {failed['check_id']}, or skip it in " \
                    f"{CONFIG.relative_to(REPO)} with a justification"
                findings.append(Finding(manifest.source if manifest else str(failed.get("file_path", "")),
                                        manifest.resource if manifest else str(failed.get("resource", "")),
                                        f"checkov/{failed['check_id']}", str(failed.get("check_name", "")), fix))
        return findings


def start(rendered: Mapping[str, Sequence[Manifest]], checkov: Path, config: Path = CONFIG) -> Scan:
    """Write each overlay's rendered objects to a file and start checkov on them in the background."""
    workdir = tempfile.TemporaryDirectory(prefix="checkov-")
    sources = {}
    for overlay, manifests in rendered.items():
        Path(workdir.name, f"{overlay}.yaml").write_text(to_yaml(manifests))
        sources.update({(m.kind, m.namespace or "default", m.name): m for m in manifests})
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_TELEMETRY": "1", "LOG_LEVEL": "ERROR"}
    process = subprocess.Popen([str(checkov), "-d", workdir.name, "--config-file", str(config), "-o", "json",
                                "--quiet"], cwd=workdir.name, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    return Scan(process=process, workdir=workdir, sources=sources)
