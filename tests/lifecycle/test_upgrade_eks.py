"""EKS reads (infra.ops.io.eks) against moto server over HTTP: cluster, node groups, subnets, insights."""
from __future__ import annotations

import pytest

from infra.config import load_stack_config
from infra.ops.io.eks import Eks, EksError, NotOffered, addon_versions
from infra.versions import KubeVersion
from tests.support.fake_pulumi import seed_eks
from tests.support.legacy import LEGACY_ROOT


def test_cluster_facts_from_describe_calls(aws):
    cfg = load_stack_config("dev", LEGACY_ROOT)  # 1.32 with an AL2 generation
    subnets = seed_eks(cfg)
    facts = Eks(cfg.region).cluster(cfg.cluster.name)
    assert facts.version == KubeVersion(1, 32)
    assert set(facts.subnets) == set(subnets.values())
    groups = {group.name: group for group in facts.node_groups}
    assert set(groups) == {"general-blue-a", "general-blue-b", "general-green-a", "general-green-b"}
    assert groups["general-blue-a"].ami_type == "AL2_x86_64"
    assert groups["general-green-b"].subnets == (subnets["eu-west-1b"],)
    assert groups["general-green-b"].labels == {"pool": "general", "generation": "green"}


def test_subnet_free_ips(aws):
    cfg = load_stack_config("dev")
    subnets = seed_eks(cfg, free_ips_cidr_prefix=27)
    facts = {subnet.az: subnet for subnet in Eks(cfg.region).subnets(list(subnets.values()))}
    assert set(facts) == {"eu-west-1a", "eu-west-1b"}
    assert 0 < facts["eu-west-1a"].free_ips <= 32


def test_missing_cluster_is_a_clear_error(aws):
    with pytest.raises(EksError, match="describe_cluster failed.*ResourceNotFound"):
        Eks("eu-west-1").cluster("nope")


def test_insights_absent_from_endpoint_is_none(aws):
    cfg = load_stack_config("dev")
    seed_eks(cfg)
    assert Eks(cfg.region).insights(cfg.cluster.name, KubeVersion(1, 32)) is None


def test_addon_versions_call_is_isolated_and_not_offered_where_unsupported(aws):
    # moto 5.2 has no describe_addon_versions (it answers an HTML 404 page): the one isolated function says the
    # endpoint lacks the call, in one line naming the endpoint and the status, never quoting the page.
    with pytest.raises(NotOffered) as lacking:
        addon_versions("eu-west-1", "vpc-cni", KubeVersion(1, 32))
    line = str(lacking.value)
    assert line.startswith(f"describe_addon_versions failed: cannot reach AWS at {aws}: it answered HTTP 404 with an "
                           f"HTML page")
    assert "<" not in line and "\n" not in line


@pytest.mark.parametrize(("code", "status", "message", "kind", "said"), [
    ("UnknownOperationException", 400, "", NotOffered, "describe_addon_versions failed: UnknownOperationException"),
    ("404", 404, "<html><h1>Not Found</h1>\n</html>", NotOffered, "it answered HTTP 404 with an HTML page"),
    ("502", 502, "<html>Bad Gateway</html>", EksError, "it answered HTTP 502 with an HTML page"),
    ("AccessDeniedException", 403, "not authorized to\nperform eks:DescribeAddonVersions", EksError,
     "describe_addon_versions failed: AccessDeniedException: not authorized to perform eks:DescribeAddonVersions"),
])
def test_addon_version_failures_are_one_line(code, status, message, kind, said):
    """What a lookup failure reads as: the endpoint lacking the call (NotOffered: an error code saying so, or a
    non-AWS 404), another non-AWS answer named by its status, an AWS error by its code; never a page, one line."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("eks", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub, pytest.raises(EksError) as failed:
        stub.add_client_error("describe_addon_versions", service_error_code=code, service_message=message,
                              http_status_code=status)
        addon_versions("eu-west-1", "vpc-cni", KubeVersion(1, 32), client=client)
    line = str(failed.value)
    assert type(failed.value) is kind and said in line and "<" not in line and "\n" not in line


def test_addon_versions_parses_builds_compatible_with_the_version():
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("eks", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    response = {"addons": [{"addonName": "vpc-cni", "addonVersions": [
        {"addonVersion": "v1.20.0-eksbuild.1", "compatibilities": [{"clusterVersion": "1.32", "defaultVersion": True}]},
        {"addonVersion": "v1.19.2-eksbuild.1", "compatibilities": [{"clusterVersion": "1.31", "defaultVersion": True},
                                                                   {"clusterVersion": "1.32", "defaultVersion": False}]},
        {"addonVersion": "v1.18.0-eksbuild.1", "compatibilities": [{"clusterVersion": "1.30", "defaultVersion": True}]},
    ]}]}
    with Stubber(client) as stub:
        stub.add_response("describe_addon_versions", response, {"addonName": "vpc-cni", "kubernetesVersion": "1.32"})
        builds = addon_versions("eu-west-1", "vpc-cni", KubeVersion(1, 32), client=client)
    assert [(b.version, b.default) for b in builds] == [("v1.20.0-eksbuild.1", True), ("v1.19.2-eksbuild.1", False)]


def test_insights_are_read_where_offered():
    from botocore.stub import Stubber

    eks = Eks("eu-west-1")
    response = {"insights": [{"id": "1", "name": "Deprecated APIs removed in Kubernetes v1.32",
                              "insightStatus": {"status": "ERROR", "reason": "flowcontrol v1beta3 in use"},
                              "description": "move to flowcontrol/v1"}]}
    with Stubber(eks.eks) as stub:
        stub.add_response("list_insights", response, {"clusterName": "eks-dev", "filter": {
            "categories": ["UPGRADE_READINESS"], "kubernetesVersions": ["1.32"]}})
        stub.add_client_error("list_insights", service_error_code="AccessDeniedException", http_status_code=403)
        found = eks.insights("eks-dev", KubeVersion(1, 32))
        with pytest.raises(EksError, match="list_insights failed.*AccessDenied"):
            eks.insights("eks-dev", KubeVersion(1, 32))
    assert [(i.status, i.reason) for i in found] == [("ERROR", "flowcontrol v1beta3 in use")]
