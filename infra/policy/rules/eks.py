"""The EKS control plane, its add-ons and node groups: what EKS or pulumi-eks refuses, deadlocks or silently undoes.

pulumi-eks' `eks:index:Cluster` is a remote component: offline only its inputs are visible, in a real
preview its children (`aws:eks/cluster:Cluster` ...) are too, so cluster rules read both shapes.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from infra import eks_calendar
from infra.eks_calendar import CALENDAR, BadToday, Release, Support, UnknownVersion, extended_extra_usd_per_month
from infra.identity import CREATOR_TAG
from infra.policy.support import (
    ADVISORY,
    MANDATORY,
    as_list,
    get,
    is_map,
    label,
    of_type,
    resource_rule,
    stack_rule,
    tags_of,
)
from infra.versions import KubeVersion

COMPONENT = "eks:index:Cluster"
CLUSTER = "aws:eks/cluster:Cluster"
CLUSTERS = (COMPONENT, CLUSTER)
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
ADDON = "aws:eks/addon:Addon"
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
# Add-ons whose pods need a node: EKS reports them DEGRADED (and pulumi waits 20 min) until one exists.
NODE_BOUND_ADDONS = ("coredns", "aws-ebs-csi-driver")
CORE_LOG_TYPES = ("api", "audit", "authenticator")


def _release(props: Mapping[str, Any]) -> tuple[Release | None, date | None, str | None]:
    """The calendar row of the cluster's version and the day it is judged on, or why there is none."""
    raw = props.get("version")
    if raw is None:
        return None, None, "no Kubernetes version pinned: EKS would pick its default and upgrades would happen by accident"
    try:
        release = CALENDAR.release(KubeVersion.parse(raw).minor)
        return release, eks_calendar.today(), None
    except (ValueError, UnknownVersion, BadToday) as error:  # BadToday/UnknownVersion are ValueErrors: one line each
        return None, None, str(error)


def _version_problems(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    release, today, problem = _release(props)
    if problem:
        yield problem
        return
    assert release is not None and today is not None
    support, newest = release.support(today), CALENDAR.newest_creatable(today)
    instead = f"; the newest EKS creates on {today} is {newest.version}" if newest else ""
    if support is Support.ENDED:
        yield (f"Kubernetes {release.version} left EKS extended support on {release.end_of_extended}: CreateCluster "
               f"is refused and EKS auto-upgrades running clusters{instead}")
    elif support is Support.UNRELEASED:
        yield f"Kubernetes {release.version} is not on EKS before {release.released}: CreateCluster is refused{instead}"


version_creatable = resource_rule(
    "eks-version-creatable",
    "The cluster's Kubernetes version must be one EKS creates on the day it is judged (standard or extended "
    "support), per the EKS version calendar in infra/eks_calendar.py (source: "
    "https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html, checked 2026-12-05), judged against "
    "today (EKS_PLATFORM_TODAY=YYYY-MM-DD picks another day).",
    CLUSTERS, _version_problems, MANDATORY, "pin a version inside standard support in eks-platform:cluster.version")


def _extended_support(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    release, today, _problem = _release(props)
    if release is None or today is None or release.support(today) is not Support.EXTENDED:
        return  # eks-version-creatable speaks for versions EKS does not create
    target = CALENDAR.standard_target(release.minor, today)
    yield (f"Kubernetes {release.version} is in extended support since {release.end_of_standard}: about "
           f"${extended_extra_usd_per_month():.0f} more per cluster and month, and EKS upgrades the control plane "
           f"after {release.end_of_extended}" + (f"; {target.version} is in standard support" if target else ""))


version_standard_support = resource_rule(
    "eks-version-standard-support",
    "The cluster's version should be in EKS standard support on the day it is judged: extended support costs $0.60 "
    "instead of $0.10 per cluster-hour and ends in a forced upgrade. Source: infra/eks_calendar.py (EKS release "
    "calendar and Amazon EKS pricing, checked 2026-12-05).",
    CLUSTERS, _extended_support, ADVISORY, "upgrade one minor at a time (`invoke cluster.upgrade --plan-only`)")


def _coredns_deadlock(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    if props.get("skipDefaultNodeGroup") is not True:
        return
    options = props.get("corednsAddonOptions")
    if not is_map(options) or options.get("enabled") is not False:
        yield ("skipDefaultNodeGroup is set but pulumi-eks' own CoreDNS add-on is not disabled: it is created inside "
               "the component, the node groups wait for the component, CoreDNS waits for nodes (DEGRADED after 20 "
               "min, pulumi-eks #1819/#1525)")


coredns_deadlock = resource_rule(
    "eks-coredns-deadlock",
    "pulumi-eks creates the CoreDNS add-on inside eks.Cluster whenever corednsAddonOptions.enabled is true (the "
    "Python SDK defaults it to true), so with skipDefaultNodeGroup the cluster waits for CoreDNS, which waits for "
    "nodes that wait for the cluster. Source: pulumi-eks nodejs/eks/cluster/cluster.ts (corednsExplicitlyEnabled), "
    "pulumi-eks issues #1819 and #1525.",
    (COMPONENT,), _coredns_deadlock, MANDATORY,
    "pass coredns_addon_options=CoreDnsAddonOptionsArgs(enabled=False) and declare CoreDNS as an aws.eks.Addon that "
    "depends on the node groups")


def waits_for(resource: PolicyResource) -> list[PolicyResource]:
    """Everything `resource` waits for, directly or through others (its dependencies, as the engine records them)."""
    seen: dict[str, PolicyResource] = {}
    todo = list(resource.dependencies or [])
    while todo:
        found = todo.pop()
        if found.urn not in seen:
            seen[found.urn] = found
            todo += found.dependencies or []
    return list(seen.values())


def _addons_after_nodes(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    if not of_type(resources, NODE_GROUP):
        return
    for addon in of_type(resources, ADDON):
        name = addon.props.get("addonName")
        if name in NODE_BOUND_ADDONS and not any(d.resource_type == NODE_GROUP for d in waits_for(addon)):
            yield addon.urn, (f"add-on {name} does not depend on a node group: EKS creates it before any node "
                              f"exists and it stays DEGRADED until pulumi's 20 min timeout")


addons_after_nodes = stack_rule(
    "eks-addons-after-nodes",
    "Add-ons that run pods (CoreDNS, EBS CSI controller) must be created after at least one node group, or the "
    "create waits on pods that cannot schedule. Source: EKS add-on status DEGRADED semantics, "
    "https://docs.aws.amazon.com/eks/latest/userguide/managing-add-ons.html (checked 2026-12-05).",
    _addons_after_nodes, MANDATORY, "declare the aws.eks.Addon with depends_on=[...the node groups]")


def _open_endpoint(props: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    prefix = "" if args.resource_type == COMPONENT else "vpcConfig."
    public = get(props, f"{prefix}endpointPublicAccess", True)  # on by default in EKS and in pulumi-eks
    cidrs = as_list(get(props, f"{prefix}publicAccessCidrs"))
    if public is not False and (not cidrs or "0.0.0.0/0" in cidrs):
        yield ("the Kubernetes API endpoint is public to 0.0.0.0/0 (no publicAccessCidrs means everyone) without the "
               "explicit config key that says so")


endpoint_not_world = resource_rule(
    "eks-endpoint-not-world",
    "A public API endpoint must list the CIDRs that may reach it; EKS reads an empty list as 0.0.0.0/0. Waivable "
    "only through the explicit stack-config key (the program then tags the cluster). Source: EKS cluster endpoint "
    "access control, https://docs.aws.amazon.com/eks/latest/userguide/cluster-endpoint.html (checked 2026-12-05).",
    CLUSTERS, _open_endpoint, MANDATORY,
    "list office/VPN CIDRs in eks-platform:cluster.public_access_cidrs, or make the endpoint private", waivable=True)


def _upgrade_policy(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    support = get(props, "upgradePolicy.supportType")
    if support != "STANDARD":
        yield (f"upgrade policy is {support or 'unset (EKS default: EXTENDED)'}: once the version leaves standard "
               f"support the cluster bills $0.60 instead of $0.10 per hour without anyone deciding it")


upgrade_policy_standard = resource_rule(
    "eks-upgrade-policy-standard",
    "The upgrade policy must be STANDARD unless extended support is chosen explicitly: EKS defaults to EXTENDED, "
    "which keeps an out-of-support cluster running at six times the control-plane price. Source: EKS cluster "
    "upgrade policy, https://docs.aws.amazon.com/eks/latest/userguide/view-upgrade-policy.html (checked 2026-12-05).",
    CLUSTERS, _upgrade_policy, MANDATORY,
    "set upgrade_policy supportType STANDARD (or the explicit config key for EXTENDED)", waivable=True)


def _secrets_encryption(props: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    if args.resource_type == COMPONENT and not props.get("encryptionConfigKeyArn"):
        yield "Kubernetes Secrets are not envelope-encrypted with a customer KMS key (encryptionConfigKeyArn unset)"
    if args.resource_type == CLUSTER and not as_list(props.get("encryptionConfig")) and not is_map(
            props.get("encryptionConfig")):
        yield "Kubernetes Secrets are not envelope-encrypted with a customer KMS key (encryptionConfig unset)"


secrets_encrypted = resource_rule(
    "eks-secrets-encrypted",
    "Kubernetes Secrets in etcd must be envelope-encrypted with a customer-managed KMS key; it cannot be removed "
    "later and is a one-way switch on existing clusters. Source: https://docs.aws.amazon.com/eks/latest/userguide/"
    "envelope-encryption.html (checked 2026-12-05).",
    CLUSTERS, _secrets_encryption, MANDATORY, "pass encryption_config_key_arn (the cluster component's KMS key)")


def _control_plane_logs(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    types = set(as_list(props.get("enabledClusterLogTypes")))
    missing = [kind for kind in CORE_LOG_TYPES if kind not in types]
    if missing:
        yield f"control-plane log types {', '.join(missing)} are off: who did what to the cluster is not recorded"


control_plane_logs = resource_rule(
    "eks-control-plane-logs",
    "api, audit and authenticator control-plane logs should be on (they are off by default). Source: "
    "https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html (checked 2026-12-05).",
    CLUSTERS, _control_plane_logs, ADVISORY, "add them to eks-platform:cluster.log_types")


def _desired_size_ignored(_: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    ignored = {str(path) for path in as_list(args.opts.ignore_changes)}
    if not ignored & {"scalingConfig.desiredSize", "scalingConfig"}:
        yield ("scalingConfig.desiredSize is not in ignore_changes: every `pulumi up` resets the size "
               "cluster-autoscaler chose (and a refresh shows drift after each scale)")


desired_size_ignored = resource_rule(
    "eks-nodegroup-desired-size-ignored",
    "cluster-autoscaler owns a managed node group's desired size; Pulumi must ignore it after creation. Source: "
    "pulumi-aws eks.NodeGroup docs ('Ignoring Changes to Desired Size'), checked 2026-12-05.",
    (NODE_GROUP,), _desired_size_ignored, MANDATORY,
    'add ResourceOptions(ignore_changes=["scalingConfig.desiredSize"]) to the node group')


def _al2_at_version(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    cluster_versions = [c.props.get("version") for c in of_type(resources, *CLUSTERS) if c.props.get("version")]
    for group in of_type(resources, NODE_GROUP):
        ami = str(group.props.get("amiType") or "")
        raw = group.props.get("version") or (cluster_versions[0] if cluster_versions else None)
        if not ami.startswith("AL2_") or raw is None:
            continue
        try:
            version = KubeVersion.parse(raw)
        except ValueError:
            continue
        if not version.allows_al2:
            yield group.urn, (f"{label(group)} runs {ami} at Kubernetes {version}: EKS publishes no AL2 AMIs for "
                              f"1.33 and later, so CreateNodegroup is refused")


al2_ami_exists = stack_rule(
    "eks-al2-ami-exists",
    "AL2 node AMIs exist up to Kubernetes 1.32 only. Source: https://docs.aws.amazon.com/eks/latest/userguide/"
    "eks-ami-deprecation-faqs.html (checked 2026-12-05), as tabled in infra/versions.py.",
    _al2_at_version, MANDATORY, "migrate the pool to an AL2023 or Bottlerocket generation (`invoke nodes.migrate`)")


def _unique_entries(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    seen: dict[tuple[str, str], PolicyResource] = {}
    for entry in of_type(resources, ACCESS_ENTRY):
        key = (str(entry.props.get("clusterName")), str(entry.props.get("principalArn")))
        if key in seen:
            yield entry.urn, (f"{label(entry)} maps {key[1]} on {key[0]} again ({label(seen[key])} already does): "
                              f"CreateAccessEntry answers 409 ResourceInUseException")
        seen[key] = entry


access_entry_unique = stack_rule(
    "eks-access-entry-unique",
    "One access entry per principal per cluster: EKS refuses a second with 409. Source: EKS CreateAccessEntry API, "
    "https://docs.aws.amazon.com/eks/latest/APIReference/API_CreateAccessEntry.html (checked 2026-12-05).",
    _unique_entries, MANDATORY, "merge the entries (one principal, its groups and policies together)")


def _creator_entry(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    creators = {str(tags.get(CREATOR_TAG)) for cluster in of_type(resources, *CLUSTERS)
                for tags in (tags_of(cluster.props), get(cluster.props, "clusterTags") or {}) if tags.get(CREATOR_TAG)}
    for entry in of_type(resources, ACCESS_ENTRY):
        if str(entry.props.get("principalArn")) in creators:
            yield entry.urn, (f"{label(entry)} declares an access entry for the cluster's creator "
                              f"{entry.props.get('principalArn')}: EKS made one at CreateCluster "
                              f"(bootstrapClusterCreatorAdminPermissions), so this CreateAccessEntry answers 409")


creator_entry = stack_rule(
    "eks-no-entry-for-cluster-creator",
    f"pulumi-eks creates every cluster with bootstrapClusterCreatorAdminPermissions, so EKS gives the creating "
    f"principal (the cluster's `{CREATOR_TAG}` tag) a cluster-admin access entry itself; the program must not "
    f"declare another. Source: pulumi-eks cluster.ts accessConfig; EKS CreateAccessEntry (409 ResourceInUse), "
    f"checked 2026-12-05.",
    _creator_entry, MANDATORY, "leave the creator (eks-platform:access.cluster_creator_arn) out of the access entries")

POLICIES = [version_creatable, version_standard_support, coredns_deadlock, addons_after_nodes, endpoint_not_world, upgrade_policy_standard,
            secrets_encrypted, control_plane_logs, desired_size_ignored, al2_ami_exists, access_entry_unique,
            creator_entry]
