"""`invoke plan/preview/up` as a user runs them: output, exit codes, and the Pulumi CLI boundary."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT, cli
from tests.support.fake_pulumi import FakePulumi
from tests.support.project import copy_task_files

ROOT = REPO_ROOT


def invoke(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return cli.invoke(*args, cwd=cwd, env={"COLUMNS": "200", **(env or {})})


@pytest.fixture()
def project_copy(tmp_path: Path) -> Path:
    """A copy of the project to break config in without touching the real stack files."""
    return copy_task_files(tmp_path)


def test_plan_dev_prints_tree_grouped_by_component_and_summary():
    result = invoke("plan", "--env", "dev")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].strip() == "stack eks-platform/dev"
    components = [line for line in lines if line[:4] in ("├── ", "└── ")]
    assert {c.split()[1] for c in components} >= {"eks-platform:network:Network", "eks-platform:cluster:Cluster",
                                                 "eks-platform:nodegroups:NodeGroups"}
    groups = [line for line in lines if "aws:eks/nodeGroup:NodeGroup" in line]
    assert len(groups) == 4
    assert all(line.startswith(("│   ", "    ")) for line in groups), "node groups sit under their component"
    assert any("amiType=AL2023_x86_64_STANDARD" in line and "availability-zone=eu-west-1b" in line for line in groups)
    (summary,) = [line for line in lines if line.startswith("dev: ")]  # then the advisory findings table
    verdict = lines[-1]
    # 2 public + 2 private + 2 NAT probe subnets
    assert summary.startswith("dev: ") and "NodeGroup 4" in summary and "Subnet 6" in summary
    assert verdict.startswith("policy: 0 mandatory, ")


def test_plan_json_is_machine_readable():
    result = invoke("plan", "--env", "prod", "--json")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["env"] == "prod"
    assert body["counts"]["aws:eks/nodeGroup:NodeGroup"] == 6
    assert body["outputs"]["kubeconfig"] == "[secret]"
    assert all({"type", "name", "parent", "inputs"} <= set(r) for r in body["resources"])


def test_plan_diff_shows_how_stacks_differ():
    result = invoke("plan", "--env", "dev", "--diff", "prod")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "+ only in prod: aws:ec2/subnet:Subnet network-private-c" in out
    assert "- only in dev: aws:eks/nodeGroup:NodeGroup nodes-general-green-a" in out
    assert "~ eks:index:Cluster cluster: endpointPublicAccess: True -> False" in out
    assert "~ aws:ec2/vpc:Vpc network-vpc: cidrBlock: 10.10.0.0/16 -> 10.20.0.0/16" in out


@pytest.mark.parametrize("args, text", [
    (["plan"], "--env is required; use one of: dev, prod"),
    (["plan", "--env", "staging"], "--env 'staging' is not a stack; use one of: dev, prod"),
    (["plan", "--env", "dev", "--diff", "qa"], "--diff 'qa' is not a stack"),
])
def test_bad_arguments_exit_2_with_one_line(args, text):
    result = invoke(*args)
    assert result.returncode == 2
    assert text in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_config_exits_2_listing_every_problem(project_copy):
    stack = project_copy / "Pulumi.dev.yaml"
    text = stack.read_text().replace("cidr: 10.10.0.0/16", "cidr: 10.10.0.0/33").replace('version: "1.35"',
                                                                                        'version: "1.9"')
    stack.write_text(text)
    result = invoke("plan", "--env", "dev", cwd=project_copy)
    assert result.returncode == 2
    assert "eks-platform:network.cidr" in result.stderr and "eks-platform:cluster.version" in result.stderr
    assert "2 config problems" in result.stderr


def test_preview_and_up_go_through_the_pulumi_cli(tmp_path):
    pulumi = FakePulumi(tmp_path, outputs={"clusterName": "eks"})  # a stack that exists: not its first up
    assert invoke("preview", "--env", "dev", env=pulumi.env()).returncode == 0
    assert invoke("up", "--env", "prod", "--yes", env=pulumi.env()).returncode == 0
    recorded = pulumi.argvs()
    pack = ["--policy-pack", "infra/policy"]  # the project's CrossGuard pack judges every preview and update
    assert ["preview", "--diff", *pack, "--stack", "dev", "--non-interactive"] in recorded
    assert ["up", "--yes", "--skip-preview", *pack, "--stack", "prod", "--non-interactive"] in recorded


def test_first_up_needs_to_know_who_creates_the_cluster(tmp_path):
    """No outputs yet: `up` asks STS who would create the cluster before the Pulumi CLI runs; no answer, no up."""
    pulumi = FakePulumi(tmp_path, outputs={})
    result = cli.invoke("up", "--env", "prod", "--yes", unset=[key for key in os.environ if key.startswith("AWS_")],
                        env={**pulumi.env(), "COLUMNS": "200", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                             "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"})
    assert result.returncode == 1 and result.stderr.startswith("error: sts get_caller_identity failed: no AWS creden")
    assert pulumi.ups() == []


def test_up_refuses_changing_the_ami_of_a_deployed_generation(tmp_path):
    pulumi = FakePulumi(tmp_path, outputs={"nodeGroupAmiTypes": {"general": {"green": "AL2_x86_64"}}})
    result = invoke("up", "--env", "dev", "--yes", env=pulumi.env())
    assert result.returncode == 2
    assert "node_pools.general.generations.green.ami_type" in result.stderr and "nodes.migrate" in result.stderr
    assert pulumi.ups() == [], "nothing may be changed"


def test_missing_pulumi_cli_is_a_clear_error(tmp_path):
    env = {"PATH": str(Path(sys.executable).parent)}
    result = invoke("preview", "--env", "dev", env=env)
    assert result.returncode != 0
    assert "`pulumi` CLI not found on PATH" in result.stderr


def test_plan_against_a_revision_refuses_in_place_ami_change(project_copy):
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=project_copy, check=True)
    subprocess.run([*git, "add", "."], cwd=project_copy, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=project_copy, check=True)
    assert invoke("plan", "--env", "dev", "--against", "HEAD", cwd=project_copy).returncode == 0
    stack = project_copy / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("ami_type: AL2023_x86_64_STANDARD\n        green",
                                               "ami_type: BOTTLEROCKET_x86_64\n        green"))
    result = invoke("plan", "--env", "dev", "--against", "HEAD", cwd=project_copy)
    assert result.returncode == 2
    assert ("generations.blue.ami_type: changes AL2023_x86_64_STANDARD -> BOTTLEROCKET_x86_64 in place"
            in result.stderr)


def test_plan_json_is_the_same_bytes_on_every_run():
    """Registration order and property order vary inside the engine; the plan a person diffs must not."""
    first, second = (invoke("plan", "--env", "dev", "--json") for _ in range(2))
    assert first.returncode == 0 and first.stdout == second.stdout


@pytest.mark.parametrize("task", [("preview", "--env", "dev"), ("up", "--env", "dev", "--yes")])
def test_preview_and_up_warn_of_extended_support_with_its_cost(project_copy, tmp_path, task):
    """The same warning `plan` gives, before the Pulumi CLI runs: the version costs extended-support money."""
    stack = project_copy / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace('version: "1.35"', 'version: "1.34"').replace(
        "upgrade_policy: STANDARD", "upgrade_policy: EXTENDED").replace("v1.35.3-eksbuild.13", "v1.34.6-eksbuild.2"))
    pulumi = FakePulumi(tmp_path / "cli", outputs={"clusterName": "eks", "clusterVersion": "1.34"})
    result = invoke(*task, cwd=project_copy, env={**pulumi.env(), "EKS_PLATFORM_TODAY": "2026-12-05"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: eks-platform:cluster.version 1.34 is in EKS extended support")
    assert "$365/month" in result.stderr and pulumi.argvs()[-1][0] == task[0]  # and the task went on
