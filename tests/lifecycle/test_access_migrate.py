"""`invoke access.migrate`: aws-auth -> access entries in the documented order, forward only, resumable.

Stack file edits are real (ruamel round trip in a copy of the repo's stack files), `pulumi` is a fake
executable on PATH recording the auth mode the file held at each call, the live aws-auth ConfigMap is
read from kubesim over HTTP, and EKS answers through botocore's Stubber (moto 5.2 has no access-entry API).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from infra.ops.io.aws import RETRIES
from infra.ops.io.kube import Kube
from infra.ops.io.pulumi_cli import PulumiCLI
from infra.ops.io.stack_file import StackFile
from infra.ops.lifecycle.access import (
    AWS_AUTH,
    AccessMigration,
    AccessRequest,
    MigrationFailed,
    MigrationRefused,
    aws_auth_principals,
)
from tests.support import REPO_ROOT, fake_pulumi
from tests.support.cli import invoke
from tests.support.fake_pulumi import FakePulumi

ROOT = REPO_ROOT
CI = "arn:aws:iam::111111111111:role/eks-platform-dev-ci-deployer"
ADMIN = "arn:aws:iam::111111111111:role/platform-admin"
DEVELOPERS = "arn:aws:iam::111111111111:role/developers"
NODES = "arn:aws:iam::111111111111:role/nodes-general"
HAND_ADDED = "arn:aws:iam::111111111111:role/added-by-hand"

@pytest.fixture
def pulumi(tmp_path, monkeypatch) -> FakePulumi:
    """The fake `pulumi` first on PATH; each call's log holds the stack file's auth mode at that moment."""
    fake = fake_pulumi.install(tmp_path, monkeypatch)
    _outputs(fake, mode="CONFIG_MAP")
    return fake


@pytest.fixture
def project(tmp_path, pulumi) -> Path:
    """A copy of the stack files with dev on CONFIG_MAP, and the fake pulumi first on PATH."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml", "Pulumi.prod.yaml"):
        shutil.copy(ROOT / name, root / name)
    dev = root / "Pulumi.dev.yaml"
    dev.write_text(dev.read_text().replace("authentication_mode: API_AND_CONFIG_MAP", "authentication_mode: CONFIG_MAP"))
    return root


def _outputs(pulumi: FakePulumi, mode: str) -> None:
    pulumi.set(outputs={"clusterName": "eks-dev", "authenticationMode": mode, "accessPrincipals": [CI, ADMIN, DEVELOPERS]})


def _ups(pulumi: FakePulumi) -> list[str]:
    """The auth mode the stack file held at each `pulumi up`."""
    return [call["file"]["eks-platform:access"]["authentication_mode"] for call in pulumi.ups()]


def _eks(entries: list[str] | None, mode: str = "API_AND_CONFIG_MAP"):
    eks = boto3.client("eks", region_name="eu-west-1", config=RETRIES, aws_access_key_id="x",
                       aws_secret_access_key="x")
    stubber = Stubber(eks)
    if entries is not None:
        stubber.add_response("describe_cluster", {"cluster": {"name": "eks-dev", "accessConfig": {
            "authenticationMode": mode}}}, {"name": "eks-dev"})
        stubber.add_response("list_access_entries", {"accessEntries": entries[:2], "nextToken": "page2"},
                             {"clusterName": "eks-dev"})
        stubber.add_response("list_access_entries", {"accessEntries": entries[2:]},
                             {"clusterName": "eks-dev", "nextToken": "page2"})
    stubber.activate()
    return eks, stubber


def _migration(root: Path, eks, aws_auth=None, lines=None, **request) -> AccessMigration:
    """The engine as a test builds it: a request object (default: dev to API), no invoke."""
    return AccessMigration(AccessRequest(env="dev", **request), cli=PulumiCLI(stack="dev", cwd=root),
                           stack=StackFile("dev", root), eks=eks, read_aws_auth=lambda: aws_auth,
                           say=(lines.append if lines is not None else print))


def _aws_auth(*arns: str) -> dict:
    roles = "\n".join(f"- rolearn: {arn}\n  username: u\n  groups: [g]" for arn in arns)
    return {"data": {"mapRoles": roles, "mapUsers": "- userarn: arn:aws:iam::111111111111:user/ops\n  username: ops\n"}}


def test_moves_forward_in_the_documented_order_and_keeps_comments(project, pulumi):
    everyone = [CI, ADMIN, DEVELOPERS, NODES, "arn:aws:iam::111111111111:user/ops"]
    eks, stubber = _eks(everyone)
    lines: list[str] = []
    assert _migration(project, eks, _aws_auth(NODES), lines).run() == ["API_AND_CONFIG_MAP", "API"]
    stubber.assert_no_pending_responses()
    assert _ups(pulumi) == ["API_AND_CONFIG_MAP", "API"], "both modes applied, verification in between"
    text = (project / "Pulumi.dev.yaml").read_text()
    assert "authentication_mode: API\n" in text
    assert "# Cluster access: dev stays on API_AND_CONFIG_MAP" in text and "# dev: two AZs" in text
    assert any(line.startswith("verified: 5 principal(s)") for line in lines)


def test_a_pathed_role_in_aws_auth_is_covered_by_its_access_entry(project, pulumi):
    pathed = "arn:aws:iam::111111111111:role/teams/data/analysts"
    eks, _ = _eks([CI, ADMIN, DEVELOPERS, pathed, "arn:aws:iam::111111111111:user/ops"])
    _outputs(pulumi, mode="API_AND_CONFIG_MAP")
    (project / "Pulumi.dev.yaml").write_text((project / "Pulumi.dev.yaml").read_text().replace(
        "authentication_mode: CONFIG_MAP", "authentication_mode: API_AND_CONFIG_MAP"))
    assert "arn:aws:iam::111111111111:role/analysts" in _migration(
        project, eks, _aws_auth("arn:aws:iam::111111111111:role/analysts")).verify()


def test_stops_on_both_when_a_mapped_role_has_no_access_entry(project, pulumi):
    eks, _ = _eks([CI, ADMIN, DEVELOPERS, NODES])
    with pytest.raises(MigrationFailed) as error:
        _migration(project, eks, _aws_auth(NODES, HAND_ADDED)).run()
    message = str(error.value)
    assert HAND_ADDED in message and "stays on API_AND_CONFIG_MAP" in message and "role_mappings" in message
    assert _ups(pulumi) == ["API_AND_CONFIG_MAP"]
    assert "authentication_mode: API_AND_CONFIG_MAP" in (project / "Pulumi.dev.yaml").read_text()


def test_refuses_to_go_back_and_changes_nothing(project, pulumi):
    (project / "Pulumi.dev.yaml").write_text((project / "Pulumi.dev.yaml").read_text().replace(
        "authentication_mode: CONFIG_MAP", "authentication_mode: API"))
    before = (project / "Pulumi.dev.yaml").read_text()
    eks, _ = _eks(None)
    for target in ("CONFIG_MAP", "API_AND_CONFIG_MAP"):
        with pytest.raises(MigrationRefused, match=f"--to {target} would go back from API"):
            _migration(project, eks, to=target).run()
    assert (project / "Pulumi.dev.yaml").read_text() == before
    assert pulumi.calls() == []


def test_refuses_when_the_file_lags_behind_the_deployed_cluster(project, pulumi):
    _outputs(pulumi, mode="API")
    eks, _ = _eks(None)
    with pytest.raises(MigrationRefused, match="already runs API; set eks-platform:access.authentication_mode"):
        _migration(project, eks).run()
    assert _ups(pulumi) == []


def test_dry_run_prints_the_steps_and_changes_nothing(project, pulumi):
    before = (project / "Pulumi.dev.yaml").read_text()
    lines: list[str] = []
    eks, _ = _eks(None)
    assert _migration(project, eks, lines=lines, dry_run=True).run() == ["API_AND_CONFIG_MAP", "API"]
    assert lines == ["would set authentication_mode API_AND_CONFIG_MAP in Pulumi.dev.yaml and run pulumi up",
                     "would verify every aws-auth mapping has an access entry, then move to API"]
    assert (project / "Pulumi.dev.yaml").read_text() == before and _ups(pulumi) == []


def test_a_failed_up_is_continued_by_running_again(project, pulumi):
    pulumi.set(fail_on_up=1)  # the first up, the one to API_AND_CONFIG_MAP
    eks, _ = _eks(None)
    with pytest.raises(MigrationFailed, match="now says API_AND_CONFIG_MAP.*re-run `invoke access.migrate --env dev`"):
        _migration(project, eks).run()
    pulumi.set(fail_on_up=None)  # the stack outputs still say CONFIG_MAP: that up never finished
    eks, stubber = _eks([CI, ADMIN, DEVELOPERS, "arn:aws:iam::111111111111:user/ops"])
    assert _migration(project, eks, _aws_auth()).run() == ["API_AND_CONFIG_MAP", "API"]
    stubber.assert_no_pending_responses()
    assert _ups(pulumi) == ["API_AND_CONFIG_MAP", "API_AND_CONFIG_MAP", "API"]


def test_refuses_api_while_the_cluster_is_not_yet_on_both(project, pulumi):
    (project / "Pulumi.dev.yaml").write_text((project / "Pulumi.dev.yaml").read_text().replace(
        "authentication_mode: CONFIG_MAP", "authentication_mode: API_AND_CONFIG_MAP"))
    _outputs(pulumi, mode="API_AND_CONFIG_MAP")  # Pulumi finished, but EKS has not switched (yet)
    eks, _ = _eks([CI, ADMIN, DEVELOPERS], mode="CONFIG_MAP")
    with pytest.raises(MigrationFailed, match="reports authentication mode CONFIG_MAP, expected API_AND_CONFIG_MAP"):
        _migration(project, eks).run()
    assert _ups(pulumi) == []


def test_live_aws_auth_is_read_from_the_cluster(kubesim):
    kube = Kube(kubesim.api_client())
    kube.apply({**AWS_AUTH, "data": _aws_auth(NODES, HAND_ADDED)["data"]}, manager="eks")
    assert aws_auth_principals(kube.get(AWS_AUTH)) == {NODES, HAND_ADDED, "arn:aws:iam::111111111111:user/ops"}
    assert aws_auth_principals(None) == set()


def test_task_refuses_going_back_with_exit_2():
    result = invoke("access.migrate", "--env", "dev", "--to", "CONFIG_MAP")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --to CONFIG_MAP would go back from API_AND_CONFIG_MAP, which EKS does "
                                     "not allow; the cluster can only move forward to API")


def test_plain_up_refuses_moving_the_auth_mode_back_against_the_deployed_stack(tmp_path):
    pulumi = FakePulumi(tmp_path, outputs={"authenticationMode": "API"})
    result = invoke("up", "--env", "dev", "--yes", env={"COLUMNS": "200", **pulumi.env()})
    assert result.returncode == 2
    assert "eks-platform:access.authentication_mode: goes back from API to API_AND_CONFIG_MAP" in result.stderr
    assert pulumi.ups() == [], "nothing may be changed"
