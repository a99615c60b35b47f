"""What EKS says about a cluster: control plane, node groups, add-on builds, upgrade insights, subnet IPs.

Reads only; changes go through Pulumi. boto3 takes its endpoint from the environment
(AWS_ENDPOINT_URL), and every call retries throttling and 5xx with botocore's standard mode (infra.ops.io.aws).
A read that fails is an EksError (exit 1) whose one-line message says why in the words of infra.ops.errors; an
endpoint that lacks the call (moto has no DescribeAddonVersions or ListInsights: it answers an HTML 404 page) is
NotOffered, an EksError its caller may treat as "unknown".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from infra.eks_calendar import Release
from infra.ops.errors import Failed, aws_unavailable, not_aws_answer, reason
from infra.ops.io import aws
from infra.versions import KubeVersion

_NOT_OFFERED = ("UnknownOperationException", "InvalidAction", "NotImplemented")


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


def _failure(operation: str, error: Exception) -> EksError:
    """One line: the AWS error code and message; or, for AWS that could not be asked (no credentials, no endpoint, an
    answer that is not AWS's: a 404 page, an empty body), the words of errors.reason, which name the endpoint and
    the status and never quote the body. The call is NotOffered when the endpoint lacks it (a non-AWS 404, or an
    error code that says so)."""
    if isinstance(error, ClientError) and aws_unavailable(error) is None:
        found = error.response.get("Error", {})
        code, message = str(found.get("Code", "")), " ".join(str(found.get("Message", "")).split())
        failure = NotOffered if code in _NOT_OFFERED else EksError
        return failure(f"{operation} failed: {code}: {message}" if message else f"{operation} failed: {code}")
    lacking = not_aws_answer(error) and getattr(error, "response", {}).get("ResponseMetadata", {}).get(
        "HTTPStatusCode") == 404
    return (NotOffered if lacking else EksError)(f"{operation} failed: {reason(error)}")


def _call(client, operation: str, **kwargs):
    try:
        return getattr(client, operation)(**kwargs)
    except (ClientError, BotoCoreError, ResponseParserError) as error:
        raise _failure(operation, error) from None


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


def cluster_versions(region: str, client=None, fetched: date | None = None) -> list[Release]:
    """EKS's own calendar (DescribeClusterVersions, every version EKS knows, ended ones included), one Release per
    minor; the AL2 column is not in the API, so these rows say al2=False and Calendar.merged keeps ours."""
    client = client or aws.client("eks", region)
    try:
        pages = client.get_paginator("describe_cluster_versions").paginate(clusterType="eks", includeAll=True)
        found = [item for page in pages for item in page.get("clusterVersions", [])]
    except (ClientError, BotoCoreError) as error:
        raise _failure("describe_cluster_versions", error) from None
    source = f"EKS DescribeClusterVersions ({region}), {fetched or date.today()}"
    releases = []
    for item in found:
        try:
            minor = KubeVersion.parse(item.get("clusterVersion")).minor
        except ValueError:
            continue  # not a Kubernetes minor this toolkit can judge
        released = _utc_day(item.get("releaseDate"))
        if released is None:
            continue
        standard, extended = _utc_day(item.get("endOfStandardSupportDate")), _utc_day(item.get("endOfExtendedSupportDate"))
        if standard and extended:
            releases.append(Release(minor, released, standard, extended, al2=False, source=source))
        else:  # a version EKS has released without published end dates: derive them, marked as estimates
            releases.append(Release.derived(minor, released, al2=False, source=source))
    return releases


def _utc_day(value: object) -> date | None:
    """EKS returns timestamps in the caller's zone (2024-09-25T17:00:00-07:00); the calendar counts UTC days."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    return None
