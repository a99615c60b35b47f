"""Kubernetes-side facts of an EKS cluster that only show after an up: NetworkPolicies enforced, one owner of
aws-auth, and an authentication mode in which node roles do not depend on that owner.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from infra.policy.support import MANDATORY, get, inside, is_map, label, of_type, resource_rule, stack_rule

COMPONENT = "eks:index:Cluster"
ADDON = "aws:eks/addon:Addon"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
AWS_AUTH_TYPES = ("kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:ConfigMapPatch")
CONFIG_MAP_MODES = (None, "CONFIG_MAP", "API_AND_CONFIG_MAP")  # pulumi-eks' default is CONFIG_MAP


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _addon_enables(addon: PolicyResource) -> bool:
    values = addon.props.get("configurationValues")
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except ValueError:
            return False
    return is_map(values) and _true(values.get("enableNetworkPolicy"))


def _enforced(resources: Sequence[PolicyResource]) -> bool:
    for cluster in of_type(resources, COMPONENT):
        options = cluster.props.get("vpcCniOptions")
        if _true(get(options, "enableNetworkPolicy")) or _true(get(options, "configurationValues.enableNetworkPolicy")):
            return True
    return any(addon.props.get("addonName") == "vpc-cni" and _addon_enables(addon) for addon in of_type(resources, ADDON))


def _network_policies(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    declared = of_type(resources, NETWORK_POLICY)
    if declared and not _enforced(resources):
        names = ", ".join(sorted(str(get(p.props, "metadata.name") or p.name) for p in declared)[:5])
        yield None, (f"the stack declares NetworkPolicies ({names}) but the VPC CNI's network policy agent is off: "
                     f"EKS accepts them and enforces none")


network_policy_enforced = stack_rule(
    "eks-network-policy-enforced",
    "Whenever NetworkPolicies are declared, the VPC CNI must enforce them (enableNetworkPolicy=true, VPC CNI "
    "1.14+); otherwise every policy is silently ignored. Source: https://docs.aws.amazon.com/eks/latest/userguide/"
    "cni-network-policy.html (checked 2026-12-05).",
    _network_policies, MANDATORY,
    'enable it: vpc_cni_options enable_network_policy=True, or configuration_values {"enableNetworkPolicy": "true"} on '
    "the vpc-cni add-on")


def _aws_auth_writers(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    writers = [r for r in of_type(resources, *AWS_AUTH_TYPES) if get(r.props, "metadata.name") == "aws-auth"
               and get(r.props, "metadata.namespace", "kube-system") == "kube-system"
               and not inside(r.urn, COMPONENT)]  # pulumi-eks' own ConfigMap (a real preview shows it) is the component
    managed_by_eks = [c for c in of_type(resources, COMPONENT) if c.props.get("authenticationMode") in CONFIG_MAP_MODES]
    owners = [label(r) for r in writers] + [f"{label(c)} (pulumi-eks writes aws-auth itself)" for c in managed_by_eks]
    if len(owners) > 1:
        for writer in writers:
            yield writer.urn, (f"aws-auth has {len(owners)} owners ({'; '.join(owners)}): after a refresh each `up` "
                               f"writes its own mapRoles over the other's, and the mappings of one are lost")


aws_auth_single_owner = stack_rule(
    "eks-aws-auth-single-owner",
    "kube-system/aws-auth has exactly one writer. pulumi-eks creates the ConfigMap itself in CONFIG_MAP and "
    "API_AND_CONFIG_MAP modes (with patchForce), so role mappings go through eks.Cluster's roleMappings. Source: "
    "pulumi-eks nodejs/eks/cluster/cluster.ts (eksNodeAccess) and authenticationMode.ts, checked 2026-12-05.",
    _aws_auth_writers, MANDATORY, "pass the mappings as eks.Cluster role_mappings and drop the project's own patch")


def _config_map_mode(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    mode = props.get("authenticationMode")
    if mode in (None, "CONFIG_MAP"):
        yield (f"authentication mode {mode or 'unset (pulumi-eks default CONFIG_MAP)'}: managed node group roles "
               f"are then mapped only through aws-auth, which EKS edits and pulumi-eks overwrites on the next refresh "
               f"and up (nodes go NotReady); the aws-auth ConfigMap is deprecated")


access_entries_enabled = resource_rule(
    "eks-access-entries-enabled",
    "The cluster uses access entries (API_AND_CONFIG_MAP or API): EKS then creates the node roles' entries itself, "
    "so no aws-auth write can lock nodes out. Source: https://docs.aws.amazon.com/eks/latest/userguide/"
    "grant-k8s-access.html (checked 2026-12-05).",
    (COMPONENT,), _config_map_mode, MANDATORY, "`invoke access.migrate --env <env> --to API_AND_CONFIG_MAP`")

POLICIES = [network_policy_enforced, aws_auth_single_owner, access_entries_enabled]
