"""The pack as Pulumi runs it (analyzer gRPC), as `invoke plan`/`lint` run it (offline), and its verdict on the
real stacks."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy
from ruamel.yaml import YAML

from infra.plan.verdict import evaluate
from infra.policy import POLICIES
from tests.support import REPO_ROOT
from tests.support.cli import invoke
from tests.support.project import copy_task_files

PACK = REPO_ROOT / "infra" / "policy"
WIDE = {"COLUMNS": "250"}  # rich tables keep rule names on one line


def test_pack_has_at_least_25_rules_each_with_a_level_and_a_source():
    assert len(POLICIES) >= 25
    assert len({p.name for p in POLICIES}) == len(POLICIES)
    for policy in POLICIES:
        assert policy.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY), policy.name
        assert "source" in policy.description.lower(), f"{policy.name}: say where the rule comes from"
        assert policy.remediation_steps, f"{policy.name}: say how to fix it"
    assert sum(p.enforcement_level == EnforcementLevel.MANDATORY for p in POLICIES) >= 20


def test_pack_project_runs_in_the_project_virtualenv():
    project = YAML(typ="safe").load((PACK / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert (PACK / project["runtime"]["options"]["virtualenv"]).resolve() == (REPO_ROOT / ".venv").resolve()


@pytest.fixture
def analyzer():
    """The pack's __main__.py as `pulumi preview --policy-pack` starts it: it prints its port and serves gRPC."""
    process = subprocess.Popen([sys.executable, str(PACK / "__main__.py")], cwd=PACK, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        port = int(process.stdout.readline() or 0)  # the plugin handshake; the server blocks until killed
        assert port, process.stderr.read().decode()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_pack_serves_every_rule_over_pulumi_s_analyzer_protocol(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "eks-platform"
    assert sorted(p.name for p in info.policies) == sorted(p.name for p in POLICIES)
    props = struct_pb2.Struct()
    props.update({"name": "eks-platform/dev/api", "imageTagMutability": "MUTABLE"})
    found = analyzer.Analyze(analyzer_pb2.AnalyzeRequest(
        type="aws:ecr/repository:Repository", properties=props, name="api",
        urn="urn:pulumi:dev::eks-platform::aws:ecr/repository:Repository::api"))
    mandatory = {d.policyName for d in found.diagnostics if d.enforcementLevel == analyzer_pb2.MANDATORY}
    assert mandatory == {"ecr-immutable-tags"}


def test_offline_props_are_the_engine_s_read_only_proxies(stack_plans):
    """Rules see Mapping/Sequence proxies, never dicts, offline as in the engine: a rule that tests `dict` breaks."""
    seen: list[bool] = []

    def probe(args, report):
        kinds = [args.props, args.props.get("tags"), args.props.get("instanceTypes")]
        seen.append(all(isinstance(v, (Mapping, Sequence)) and not isinstance(v, (dict, list))
                        for v in kinds if v is not None and not isinstance(v, str)))

    evaluate(stack_plans["dev"].resources, [ResourceValidationPolicy("probe", "probe", probe)])
    assert seen and all(seen)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_real_plans_have_no_mandatory_violation(stack_plans, env):
    mandatory = [v for v in evaluate(stack_plans[env].resources) if v.mandatory]
    assert not mandatory, "\n".join(f"{v.policy}: {v.resource}: {v.message}" for v in mandatory)


@pytest.fixture
def project_on_config_map(tmp_path: Path) -> Path:
    """A copy of the project whose dev stack went back to the aws-auth-only authentication mode."""
    copy_task_files(tmp_path, "pyproject.toml")
    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("authentication_mode: API_AND_CONFIG_MAP",
                                               "authentication_mode: CONFIG_MAP"))
    return tmp_path


def test_plan_prints_the_verdict_after_the_tree_and_exits_1_on_a_mandatory_violation(project_on_config_map):
    result = invoke("plan", "--env", "dev", cwd=project_on_config_map, env=WIDE, timeout=300)
    assert result.returncode == 1
    assert result.stdout.index("stack eks-platform/dev") < result.stdout.index("policy violations")
    assert "policy/eks-access-entries-enabled" in result.stdout
    assert "mandatory" in result.stdout.splitlines()[-1]
    (error,) = result.stderr.strip().splitlines()
    assert error.startswith("error: stack dev has ") and "mandatory policy violation" in error


def test_lint_only_policy_reports_in_the_findings_table(project_on_config_map):
    result = invoke("lint", "--only", "policy", cwd=project_on_config_map, env=WIDE, timeout=300)
    assert result.returncode == 1
    assert "lint findings" in result.stdout and "policy/eks-access-entries-enabled" in result.stdout
    assert "Pulumi.dev.yaml" in result.stdout and "Traceback" not in result.stderr


def test_docs_list_every_rule_with_its_level():
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2].strip()
            for line in (REPO_ROOT / "docs" / "policy.md").read_text().splitlines() if line.startswith("| `")}
    assert rows == {p.name: p.enforcement_level.value for p in POLICIES}
