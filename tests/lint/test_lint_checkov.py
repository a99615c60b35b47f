"""checkov, in its own venv: the real tree has zero failed checks, and a seeded break is reported with its source.

checkov is slow to start (seconds) and the first run installs it (minutes), so these tests carry a long
timeout; CI prepares .venv-checkov beforehand. They are not skipped: the target is zero failed checks.
"""
from __future__ import annotations

import re

import pytest

from infra.lint import checkov as checkov_scan
from infra.lint import runner as lint
from infra.ops.io.manifests import K8S_ROOT
from tests.support import REPO_ROOT
from tests.support.cli import invoke
from tests.support.k8s_tree import VERSIONS, container, copy_tree, edit

REPO = REPO_ROOT


@pytest.mark.timeout(1800)
def test_full_lint_task_passes_on_the_real_tree_with_checkov():
    done = invoke("lint", timeout=1700)
    assert done.returncode == 0, done.stdout + done.stderr
    # Warnings: the policy pack's advisory rules only (Lambda concurrency and dead-letter targets, docs/policy.md).
    assert re.search(r"lint passed: 0 error\(s\), \d+ warning\(s\); checks yamllint, render, schema, deprecations, "
                     r"rules, checkov, dockerfiles, policy, workflows", " ".join(done.stdout.split())), done.stdout
    assert checkov_scan.ready()


@pytest.mark.timeout(1800)
def test_checkov_reports_a_privileged_host_network_pod_at_its_source(tmp_path):
    root = copy_tree(tmp_path)

    def unsafe(docs):
        container(docs)["securityContext"]["privileged"] = True
        docs[0]["spec"]["template"]["spec"]["hostNetwork"] = True
    edit(root / "base/worker/deployment.yaml", unsafe)
    report = lint.run(root, checks=("render", "checkov"), versions=VERSIONS)
    rules = {(f.rule, f.resource) for f in report.findings}
    assert {("checkov/CKV_K8S_16", "Deployment/apps-dev/worker"), ("checkov/CKV_K8S_19", "Deployment/apps-prod/worker")} <= rules
    assert all(f.file.endswith("base/worker/deployment.yaml") for f in report.findings)
    assert report.failed


def test_checkov_venv_is_rebuilt_when_the_pin_changes(tmp_path, monkeypatch):
    venv = tmp_path / ".venv-checkov"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "checkov").write_text("")
    assert not checkov_scan.ready(venv)  # no stamp: never installed from the current pin
    (venv / checkov_scan.STAMP).write_text(checkov_scan._wanted())
    assert checkov_scan.ready(venv)
    requirements = tmp_path / "requirements-checkov.txt"
    requirements.write_text("checkov==0.0.1\n")
    monkeypatch.setattr(checkov_scan, "REQUIREMENTS", requirements)
    assert not checkov_scan.ready(venv)


def test_checkov_config_justifies_every_skip():
    lines = (K8S_ROOT / ".checkov.yaml").read_text().splitlines()
    skips = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV")]
    assert skips
    for i in skips:
        check, start = lines[i].strip()[2:], i
        while start > 0 and lines[start - 1].strip().startswith("#"):
            start -= 1
        comment = " ".join(line.strip("# ") for line in lines[start:i])
        assert comment.startswith(f"{check} (") and len(comment) > 60, f"{check} has no justification above it"
