"""The composite actions: inputs declared, documented and used; and their scripts run for real under bash."""
from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from infra.config import known_envs, load_stack_config
from infra.ops.io.manifests import REPO
from tests.support.cli import invoke
from tests.support.github_tree import ACTIONS, WORKFLOWS, load, steps


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_every_input_is_documented_and_used_and_every_run_step_has_a_shell(name):
    doc = load(ACTIONS[name])
    assert doc["runs"]["using"] == "composite"
    body = ACTIONS[name].read_text().split("\nruns:", 1)[1] + str(doc.get("outputs", ""))
    for input_name, spec in doc["inputs"].items():
        assert spec["description"], input_name
        assert re.search(rf"inputs\.{re.escape(input_name)}(?![\w-])", body), f"{name}: input {input_name} unused"
    for step in doc["runs"]["steps"]:
        if "run" in step:
            assert step["shell"] == "bash"


def test_workflows_call_local_actions_with_declared_inputs_and_every_required_one():
    calls = 0
    for path in WORKFLOWS.values():
        for step in steps(load(path)):
            uses = step.get("uses", "")
            if not uses.startswith("$/.github/actions/"):
                continue
            spec = load(REPO / uses.removeprefix("$/") / "action.yml")["inputs"]
            given = set(step.get("with", {}))
            assert given <= set(spec), f"{path.name}: {uses} has no input {given - set(spec)}"
            required = {n for n, s in spec.items() if s.get("required") and "default" not in s}
            assert required <= given, f"{path.name}: {uses} misses {required - given}"
            calls += 1
    assert calls >= 9


def test_setup_installs_the_pulumi_cli_of_the_pinned_sdk():
    pin = re.search(r"^pulumi==(\S+)", (REPO / "requirements.txt").read_text(), re.M)[1]
    setup = load(ACTIONS["setup"])
    assert setup["inputs"]["pulumi-version"]["default"] == pin
    pulumi = next(s for s in setup["runs"]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"] == {"pulumi-version": "${{ inputs.pulumi-version }}"}, "install only, no command"


def test_setup_assumes_the_role_from_its_input_in_the_stacks_region():
    setup = load(ACTIONS["setup"])
    aws = next(s for s in setup["runs"]["steps"] if "configure-aws-credentials@" in s.get("uses", ""))
    assert aws["with"]["role-to-assume"] == "${{ inputs.aws-role-arn }}"
    assert aws["with"]["aws-region"] == "${{ steps.stack.outputs.region }}"
    assert "aws-access-key-id" not in aws["with"], "OIDC only, no long-lived keys"
    kube = next(s for s in setup["runs"]["steps"] if "update-kubeconfig" in s.get("run", ""))
    assert kube["if"] == "inputs.stack != '' && inputs.kubeconfig == 'true'"


def _step_script(action: str, step_id_or_name: str) -> tuple[str, dict]:
    step = next(s for s in load(ACTIONS[action])["runs"]["steps"]
                if step_id_or_name in (s.get("id"), s.get("name")))
    return step["run"], step["env"]


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize("stack", known_envs())
def test_setup_reads_region_and_cluster_from_the_stack_file(stack, tmp_path):
    script, env = _step_script("setup", "stack")
    assert set(env) == {"STACK", "ROLE_ARN"}
    outputs = tmp_path / "github_output"
    done = _bash(script, {"STACK": stack, "ROLE_ARN": "arn:aws:iam::123456789012:role/ci",
                          "GITHUB_OUTPUT": str(outputs)}, REPO)
    assert done.returncode == 0, done.stderr
    cfg = load_stack_config(stack)
    assert outputs.read_text().splitlines() == [f"region={cfg.region}", f"cluster-name={cfg.cluster.name}"]


def test_setup_refuses_a_stack_without_a_role_and_an_unknown_stack(tmp_path):
    script, _ = _step_script("setup", "stack")
    outputs = tmp_path / "github_output"
    no_role = _bash(script, {"STACK": "dev", "ROLE_ARN": "", "GITHUB_OUTPUT": str(outputs)}, REPO)
    assert no_role.returncode == 2 and "aws-role-arn is required" in no_role.stdout
    unknown = _bash(script, {"STACK": "staging", "ROLE_ARN": "arn", "GITHUB_OUTPUT": str(outputs)}, REPO)
    assert unknown.returncode != 0 and "setup:" in unknown.stderr
    assert "region=" not in outputs.read_text()


@pytest.fixture
def fake_invoke(tmp_path):
    """A work tree whose .venv holds an `invoke` that records its argv and the webhook it was given."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "activate").write_text(f'PATH="{bin_dir}:$PATH"\n')
    record = tmp_path / "argv"
    fake = bin_dir / "invoke"
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "{record}"\n'
                    f'printf "%s" "$DEPLOY_WEBHOOK_URL" > "{record}.webhook"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return tmp_path, record


def test_deploy_service_runs_invoke_deploy_with_the_webhook_in_its_environment(fake_invoke):
    tree, record = fake_invoke
    script, env = _step_script("deploy-service", "invoke deploy")
    assert env["DEPLOY_WEBHOOK_URL"] == "${{ inputs.webhook-url }}"
    values = {"SERVICE": "api", "DEPLOY_ENV": "dev", "TAG": "", "TIMEOUT": "600",
              "DEPLOY_WEBHOOK_URL": "https://hooks.example.invalid/T000/secret"}
    done = _bash(script, values, tree)
    assert done.returncode == 0, done.stderr
    assert record.read_text().split("\n")[:-1] == ["deploy", "api", "--env", "dev", "--timeout", "600", "--json-logs"]
    assert Path(f"{record}.webhook").read_text() == values["DEPLOY_WEBHOOK_URL"]
    assert "secret" not in done.stdout + done.stderr, "the webhook URL is never echoed"


def test_deploy_service_passes_a_tag_and_never_evaluates_inputs_as_shell(fake_invoke):
    tree, record = fake_invoke
    script, _ = _step_script("deploy-service", "invoke deploy")
    hostile = "api$(touch pwned)"
    done = _bash(script, {"SERVICE": hostile, "DEPLOY_ENV": "prod", "TAG": "1a2b3c4", "TIMEOUT": "300",
                          "DEPLOY_WEBHOOK_URL": ""}, tree)
    assert done.returncode == 0, done.stderr
    assert record.read_text().split("\n")[:-1] == ["deploy", hostile, "--env", "prod", "--timeout", "300",
                                                   "--json-logs", "--tag", "1a2b3c4"]
    assert not (tree / "pwned").exists()


def test_deploy_service_uses_only_flags_the_deploy_task_has():
    done = invoke("--help", "deploy", cwd=REPO)
    assert done.returncode == 0, done.stderr
    script, _ = _step_script("deploy-service", "invoke deploy")
    for flag in re.findall(r"(--[a-z-]+)", script):
        assert flag in done.stdout, f"invoke deploy has no {flag}"
