"""What EKS says about a cluster: control plane, node groups, add-on builds, upgrade insights, subnet IPs.

Reads only; changes go through Pulumi. boto3 takes its endpoint from the environment
(AWS_ENDPOINT_URL), and every call retries throttling and 5xx with botocore's standard mode (infra.ops.io.aws).
A read that fails is an EksError (exit 1) whose one-line message says why in the words of infra.ops.errors; an
endpoint that answers like no AWS service does (an HTML 404 page, an empty body) is named with its status, never
quoted, and is NotOffered when it lacks the call (moto has no DescribeAddonVersions or ListInsights).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from infra.ops.errors import Failed, reason
from infra.ops.io import aws
from infra.versions import KubeVersion

_NOT_OFFERED = ("UnknownOperationException", "InvalidAction", "NotImplemented")
_NOT_AWS = "check that AWS_ENDPOINT_URL (or a proxy) points at AWS, or unset it"


class EksError(RuntimeError, Failed):
    """An EKS/EC2 read failed; the message names the call and the AWS error (or the endpoint, or the credentials)."""


class NotOffered(EksError):
    """The endpoint does not implement the call: what AWS would answer is unknown, which is not a failed check."""


@dataclass(frozen=True)
class NodeGroupFacts:
    name: str
    version: KubeVersion
    ami_type: str
    status: str
    subnets: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    max_unavailable: int = 1


@dataclass(frozen=True)
class ClusterFacts:
    name: str
    version: KubeVersion
    status: str
    subnets: tuple[str, ...]
    node_groups: tuple[NodeGroupFacts, ...]


@dataclass(frozen=True)
class AddonBuild:
    version: str
    default: bool


@dataclass(frozen=True)
class Insight:
    name: str
    status: str
    reason: str
    recommendation: str


@dataclass(frozen=True)
class SubnetFacts:
    subnet_id: str
    az: str
    free_ips: int


def _failure(client, operation: str, error: Exception) -> EksError:
    """One line: the AWS error code and message, or what a non-AWS answer was (status, kind of body) and from where,
    or errors.reason for the rest (no credentials, no endpoint)."""
    endpoint = client.meta.endpoint_url
    if isinstance(error, ResponseParserError):
        return EksError(f"{operation} failed: {endpoint} answered with a body that is not an AWS response; {_NOT_AWS}")
    if not isinstance(error, ClientError):
        return EksError(f"{operation} failed: {reason(error)}")
    found = error.response.get("Error", {})
    code, status = str(found.get("Code", "")), error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _NOT_OFFERED:
        return NotOffered(f"{operation} failed: {endpoint} does not offer it ({code})")
    if not code or code.isdigit() or code == "Unknown":  # botocore found no AWS error in the body
        headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        kind = headers.get("content-type", "").partition(";")[0]
        body = ("an empty body" if headers.get("content-length") == "0" or not (found.get("Message") or kind) else
                "an HTML page" if "html" in kind else f"a {kind or 'non-AWS'} body")
        failure = NotOffered if status == 404 else EksError
        return failure(f"{operation} failed: {endpoint} answered HTTP {status} with {body}, not an AWS response; "
                       f"{_NOT_AWS}")
    message = " ".join(str(found.get("Message", "")).split())
    return EksError(f"{operation} failed: {code}: {message}" if message else f"{operation} failed: {code}")


def _call(client, operation: str, **kwargs):
    try:
        return getattr(client, operation)(**kwargs)
    except (ClientError, BotoCoreError, ResponseParserError) as error:
        raise _failure(client, operation, error) from None


class Eks:
    """EKS and EC2 reads for one region."""

    def __init__(self, region: str):
        self.region = region
        self.eks = aws.client("eks", region)
        self.ec2 = aws.client("ec2", region)

    def cluster(self, name: str) -> ClusterFacts:
        found = _call(self.eks, "describe_cluster", name=name)["cluster"]
        groups = []
        for page in self.eks.get_paginator("list_nodegroups").paginate(clusterName=name):
            for group in page["nodegroups"]:
                groups.append(self.node_group(name, group))
        return ClusterFacts(name=name, version=KubeVersion.parse(found["version"]), status=found["status"],
                            subnets=tuple(found.get("resourcesVpcConfig", {}).get("subnetIds", [])),
                            node_groups=tuple(groups))

    def node_group(self, cluster: str, name: str) -> NodeGroupFacts:
        found = _call(self.eks, "describe_nodegroup", clusterName=cluster, nodegroupName=name)["nodegroup"]
        update = found.get("updateConfig") or {}
        return NodeGroupFacts(name=name, version=KubeVersion.parse(found["version"]),
                              ami_type=found.get("amiType", ""), status=found.get("status", ""),
                              subnets=tuple(found.get("subnets", [])), labels=dict(found.get("labels") or {}),
                              max_unavailable=int(update.get("maxUnavailable") or 1))

    def insights(self, cluster: str, target: KubeVersion) -> list[Insight] | None:
        """Upgrade-readiness insights for the target version; None where the API is not offered."""
        if not hasattr(self.eks, "list_insights"):
            return None
        try:
            found = _call(self.eks, "list_insights", clusterName=cluster, filter={
                "categories": ["UPGRADE_READINESS"], "kubernetesVersions": [str(target)]})
        except NotOffered:
            return None
        return [Insight(name=item.get("name", "?"), status=(item.get("insightStatus") or {}).get("status", "UNKNOWN"),
                        reason=(item.get("insightStatus") or {}).get("reason", ""),
                        recommendation=item.get("description", ""))
                for item in found.get("insights", [])]

    def subnets(self, subnet_ids: list[str]) -> list[SubnetFacts]:
        if not subnet_ids:
            return []
        found = _call(self.ec2, "describe_subnets", SubnetIds=list(subnet_ids))["Subnets"]
        return [SubnetFacts(subnet_id=item["SubnetId"], az=item["AvailabilityZone"],
                            free_ips=int(item["AvailableIpAddressCount"])) for item in found]


def addon_versions(region: str, addon: str, kubernetes: KubeVersion, client=None) -> list[AddonBuild]:
    """Builds of an add-on EKS offers for a Kubernetes version; NotOffered where the endpoint lacks the call (moto)."""
    client = client or aws.client("eks", region)
    found = _call(client, "describe_addon_versions", addonName=addon, kubernetesVersion=str(kubernetes))
    builds = []
    for item in found.get("addons", []):
        for build in item.get("addonVersions", []):
            for compat in build.get("compatibilities", []):
                if compat.get("clusterVersion") == str(kubernetes):
                    builds.append(AddonBuild(version=build["addonVersion"], default=bool(compat.get("defaultVersion"))))
                    break
    return builds
