"""`invoke ci.check`: zero findings on the real .github/, and each seeded mistake caught by the checks meant for it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.lint import workflows as ci_check
from infra.lint.workflows import Sources
from infra.ops.io.manifests import REPO
from tests.support.cli import invoke
from tests.support.github_tree import scratch_repo

BAD_WORKFLOW = """\
name: greet
on:
  pull_request:
permissions: {}
jobs:
  greet:
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    permissions:
      contents: read
    steps:
      - uses: actions/checkout@v4
        with:
          persist-credentials: false
      - run: echo "thanks for ${{ github.event.pull_request.title }}"
"""


def _rules(findings) -> set[str]:
    return {f.rule for f in findings}


def _line_of(path: Path, text: str) -> str:
    """'line N' of the one line that is exactly `text` (stripped)."""
    rows = [i for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip() == text]
    assert len(rows) == 1, f"{text!r} in {path}: {rows}"
    return f"line {rows[0]}"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not once in {path}"
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("checker", ["actionlint", "zizmor", "schemas", "rules"])
def test_the_real_workflows_and_actions_have_zero_findings(checker):
    src = Sources.of(REPO)
    assert len(src.workflows) == 3 and len(src.actions) == 2
    if checker == "schemas":
        found = [*ci_check.schemas(src, "vendor.github-workflows", src.workflows),
                 *ci_check.schemas(src, "vendor.github-actions", src.actions)]
    else:
        found = getattr(ci_check, checker)(src)
    assert found == [], "\n".join(map(str, found))


def test_a_seeded_unpinned_action_and_injection_is_caught_by_every_tool(tmp_path):
    root = scratch_repo(tmp_path)
    (root / ".github" / "workflows" / "greet.yml").write_text(BAD_WORKFLOW)
    everything = ci_check.check(root)
    found = [f for f in everything if f.file == ".github/workflows/greet.yml"]
    assert found == everything, "the copied real files stay clean"
    rules = _rules(found)
    assert {"pinned-uses", "zizmor:unpinned-uses"} <= rules, "unpinned action"
    assert {"run-expression", "zizmor:template-injection", "actionlint:expression"} <= rules, "injection"
    assert all(f.failed for f in found)
    by_rule = {f.rule: f for f in found}
    assert by_rule["pinned-uses"].resource == "line 12"
    assert "github.event.pull_request.title" in by_rule["run-expression"].problem
    assert "env:" in by_rule["run-expression"].fix


def test_a_broken_workflow_file_is_a_finding_not_a_crash(tmp_path):
    root = scratch_repo(tmp_path)
    (root / ".github" / "workflows" / "broken.yml").write_text("name: x\non: push\njobs:\n  a:\n    runs-on: [1\n")
    (root / ".github" / "workflows" / "shape.yml").write_text(
        "name: y\non: push\npermissions: {}\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    timeout-minutes: 1\n"
        "    permissions: {contents: read}\n    steps: 3\n")
    src = Sources.of(root)
    found = [*ci_check.actionlint(src), *ci_check.schemas(src, "vendor.github-workflows", src.workflows),
             *ci_check.rules(src)]
    assert {"actionlint:syntax-check", "schema:vendor.github-workflows"} <= _rules(found)
    shape = [f for f in found if f.file == ".github/workflows/shape.yml" and f.rule.startswith("schema:")]
    assert shape and shape[0].resource == "$.jobs.a.steps"


def test_project_rules_catch_unbounded_unscoped_and_overlapping_jobs(tmp_path):
    root = scratch_repo(tmp_path)
    infra = root / ".github" / "workflows" / "infra.yml"
    _edit(infra, "    timeout-minutes: 60\n    permissions:\n      contents: read\n      id-token: write # AWS "
                 "credentials through OIDC\n    environment:\n      name: infra-prod",
          "    environment:\n      name: infra-prod")
    _edit(infra, "    concurrency:\n      group: pulumi-up-prod\n      cancel-in-progress: false\n", "")
    _edit(infra, "\npermissions: {}\n", "\npermissions: write-all\n")
    _edit(infra, "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8 # v5.0.0\n        with:\n          "
                 "persist-credentials: false\n      - uses: $/.github/actions/setup\n        with:\n          "
                 "stack: prod",
          "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8\n        with:\n          "
          "persist-credentials: false\n      - uses: $/.github/actions/setup\n        with:\n          stack: prod")
    found = {(f.rule, f.resource) for f in ci_check.rules(Sources.of(root))}
    unpinned = _line_of(infra, "- uses: actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8")
    assert found == {("job-timeout", "jobs.up-prod"), ("job-permissions", "jobs.up-prod"),
                     ("deploy-concurrency", "jobs.up-prod"), ("job-permissions", _line_of(infra, "permissions: write-all")),
                     ("pinned-uses", unpinned)}


def test_cd_rules_follow_the_service_catalog(tmp_path):
    root = scratch_repo(tmp_path)
    base = root / "infra" / "k8s" / "base"
    (base / "billing").mkdir()
    (base / "billing" / "kustomization.yaml").write_text("resources: []\n")
    cd = root / ".github" / "workflows" / "cd.yml"
    _edit(cd, "            worker:\n              - 'infra/k8s/base/worker/**'\n              - 'services/worker/**'\n",
          "            worker:\n              - 'infra/k8s/base/worker/**'\n"
          "            legacy:\n              - 'legacy/**'\n")
    found = [f for f in ci_check.rules(Sources.of(root)) if f.rule == "cd-services"]
    problems = sorted(f.problem for f in found)
    assert problems == ["choices ['api', 'scheduler', 'worker'] differ from the services "
                        "['api', 'billing', 'scheduler', 'worker']",
                        "filter 'legacy' names no service in infra/k8s/base",
                        "filter 'worker' misses services/worker/**",
                        "service 'billing' has no path filter, so it never deploys"]
    fix = next(f.fix for f in found if "billing" in f.problem and "path filter" in f.problem)
    assert fix == "add a filter `billing:` with infra/k8s/base/billing/**, services/billing/**"


def test_action_rules_catch_unused_inputs_missing_shells_and_a_drifted_pulumi_cli(tmp_path):
    root = scratch_repo(tmp_path)
    action = root / ".github" / "actions" / "deploy-service" / "action.yml"
    _edit(action, "inputs:\n", "inputs:\n  region:\n    description: never read\n    required: false\n")
    _edit(action, "    - name: invoke deploy\n      shell: bash\n", "    - name: invoke deploy\n")
    _edit(root / "requirements.txt", "pulumi==3.272.0", "pulumi==3.300.0")
    found = {(f.rule, f.resource, f.problem) for f in ci_check.rules(Sources.of(root))}
    assert found == {
        ("action-inputs", "inputs.region", "input is declared but never used"),
        ("action-shell", _line_of(action, "run: |"), "a composite `run` step has no shell"),
        ("pulumi-version", "inputs.pulumi-version",
         "installs the Pulumi CLI 3.272.0, but requirements.txt pins pulumi==3.300.0"),
    }


def test_a_missing_tool_fails_the_check_instead_of_passing_silently(tmp_path, monkeypatch):
    real = ci_check._tool
    monkeypatch.setattr(ci_check, "_tool", lambda name: None if name == "zizmor" else real(name))
    found = ci_check.check(scratch_repo(tmp_path))
    assert [(f.rule, f.problem, f.failed) for f in found] == [("zizmor", "zizmor is not installed", True)]
    assert "requirements-dev.txt" in found[0].fix


def test_invoke_ci_check_passes_on_the_repo_and_lint_includes_it():
    done = invoke("ci.check", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == []
    lint = invoke("lint", "--only", "workflows")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "checks workflows" in lint.stdout
    bad = invoke("lint", "--only", "workflow")
    assert bad.returncode == 2 and "workflows" in bad.stderr


def test_a_job_must_run_in_the_environment_its_stack_role_trusts(tmp_path):
    root = scratch_repo(tmp_path)
    cd = root / ".github" / "workflows" / "cd.yml"
    _edit(cd, "      name: prod # required reviewers", "      name: production # required reviewers")
    _edit(root / "Pulumi.dev.yaml", "infra_environment: infra-dev", "infra_environment: pulumi-dev")
    found = sorted((f.file, f.resource, f.problem) for f in ci_check.rules(Sources.of(root)))
    assert found == [
        (".github/workflows/cd.yml", "jobs.deploy-prod",
         "assumes the prod role from environment 'production', but the role trusts only 'prod' "
         "(Pulumi.prod.yaml eks-platform:access.github.deploy_environment)"),
        (".github/workflows/infra.yml", "jobs.up-dev",
         "assumes the dev role from environment 'infra-dev', but the role trusts only 'pulumi-dev' "
         "(Pulumi.dev.yaml eks-platform:access.github.infra_environment)"),
    ]


def test_a_crashing_tool_is_a_finding_with_its_error_line(tmp_path, monkeypatch):
    fake = tmp_path / "zizmor"
    fake.write_text("#!/usr/bin/env bash\necho 'INFO starting' >&2\necho 'error: no inputs collected' >&2\n"
                    "echo '   0: backtrace' >&2\nexit 3\n")
    fake.chmod(0o755)
    real = ci_check._tool
    monkeypatch.setattr(ci_check, "_tool", lambda name: str(fake) if name == "zizmor" else real(name))
    with pytest.raises(ci_check.ToolFailure) as failure:
        ci_check.zizmor(Sources.of(REPO))
    assert failure.value.args[0] == "zizmor failed: error: no inputs collected"


def test_a_local_action_path_must_name_an_action_of_this_repository(tmp_path):
    assert not [f for f in ci_check.rules(Sources.of(scratch_repo(tmp_path / "clean"))) if f.rule == "local-uses"]
    root = scratch_repo(tmp_path)
    for name, old, new in (("ci.yml", "$/.github/actions/setup", "$/.github/action/setup"),
                           ("cd.yml", "$/.github/actions/deploy-service", "./.github/actions/deploy-servce")):
        path = root / ".github" / "workflows" / name
        path.write_text(path.read_text().replace(f"uses: {old}\n", f"uses: {new}\n", 1))
    found = {(f.file, f.problem.split(" ")[0]) for f in ci_check.rules(Sources.of(root)) if f.rule == "local-uses"}
    assert found == {(".github/workflows/ci.yml", "$/.github/action/setup"),
                     (".github/workflows/cd.yml", "./.github/actions/deploy-servce")}


def test_files_no_tool_can_read_are_findings_and_stay_out_of_the_tools(tmp_path):
    """A workflow that is not UTF-8, or a directory named like one, is a `sources` finding; the tools check the
    rest (a file they cannot read would crash them or hide every other finding)."""
    root = scratch_repo(tmp_path)
    workflows = root / ".github" / "workflows"
    (workflows / "latin1.yml").write_bytes(b"name: caf\xe9\non: push\n")
    (workflows / "folder.yaml").mkdir()
    src = Sources.of(root)
    assert not {"latin1.yml", "folder.yaml"} & {path.name for path in src.all()} and src.workflows
    assert sorted((f.file, f.rule, f.problem) for f in src.unreadable) == [
        (".github/workflows/folder.yaml", "sources", "is a directory named like a workflow file, so GitHub runs "
                                                    "nothing from it"),
        (".github/workflows/latin1.yml", "sources", "not UTF-8 text (byte 0xe9 at offset 9, line 1)")]
