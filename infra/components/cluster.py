"""EKS control plane: KMS envelope encryption, control-plane logs, OIDC provider, and the four EKS add-ons.

The pulumi-eks Cluster is a remote component, so only ARNs, IDs and `core` cross into it. Its own add-ons are
all switched off and declared here instead, where their order is ours: vpc-cni (network policy enforcement on)
and kube-proxy before the node groups, so nodes join with a working CNI; coredns and aws-ebs-csi-driver after
them, because their pods need nodes and EKS waits for them (pulumi-eks creates coredns inside its component,
the node groups wait for the component, and the add-on waits 20 minutes for nodes: pulumi-eks #1819, #1525).
EKS installs no self-managed copies (bootstrap_self_managed_addons false), so each add-on has one owner.
Add-on versions come from config so a version upgrade moves them deliberately, step by step.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from infra.components.iam import scoped_role_args
from infra.config import ClusterConfig
from infra.identity import CREATOR_TAG, WAIVER_TAG

EBS_CSI_SERVICE_ACCOUNT = "system:serviceaccount:kube-system:ebs-csi-controller-sa"
# Add-ons whose pods are DaemonSets: ACTIVE with no node, and nodes need them to become Ready.
BEFORE_NODES = ("vpc-cni", "kube-proxy")
SHORT_NAMES = {"aws-ebs-csi-driver": "ebs-csi"}  # resource name suffix: keeps the existing URN of the EBS add-on
# Add-ons whose pods are Deployments: EKS reports them DEGRADED (and `pulumi up` times out) until nodes run them.
AFTER_NODES = ("coredns", "aws-ebs-csi-driver")


@dataclass(frozen=True)
class ClusterArgs:
    cluster: ClusterConfig
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    public_subnet_ids: list[pulumi.Input[str]]
    tags: dict[str, str]
    authentication_mode: str = "API_AND_CONFIG_MAP"
    network_policies: bool = True  # the platform declares NetworkPolicies: the VPC CNI must enforce them
    # aws-auth entries: pulumi-eks owns that ConfigMap in CONFIG_MAP modes (see components/access.py).
    role_mappings: list[eks.RoleMappingArgs] | None = None
    creator_arn: str | None = None  # who runs the first `up` (eks-platform:access.cluster_creator_arn)


def policy_tags(cfg: ClusterConfig, creator_arn: str | None) -> dict[str, str]:
    """What the policy pack reads off the cluster: the rules its config waives on purpose (only through the explicit
    keys) and the principal EKS made admin at CreateCluster, so no rule can mistake a decision for a slip."""
    waived = [rule for rule, chosen in (("eks-endpoint-not-world", cfg.public_endpoint_open_to_internet),
                                        ("eks-upgrade-policy-standard", cfg.upgrade_policy == "EXTENDED")) if chosen]
    return {**({WAIVER_TAG: " ".join(waived)} if waived else {}), **({CREATOR_TAG: creator_arn} if creator_arn else {})}


def irsa_trust_policy(oidc_provider_arn: pulumi.Input[str], oidc_provider_url: pulumi.Input[str],
                      service_account: str) -> pulumi.Output[str]:
    """Trust policy letting exactly one Kubernetes service account assume a role (IRSA)."""
    def policy(args: list[str]) -> str:
        arn, url = args
        issuer = url.removeprefix("https://")
        return json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": arn}, "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {f"{issuer}:sub": service_account, f"{issuer}:aud": "sts.amazonaws.com"}},
        }]})
    return pulumi.Output.all(oidc_provider_arn, oidc_provider_url).apply(policy)


class Cluster(pulumi.ComponentResource):
    """The EKS control plane with no default node group; node groups attach through `core`."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:cluster:Cluster", name, None, opts)
        cfg = args.cluster
        child = pulumi.ResourceOptions(parent=self)
        self.name = cfg.name
        self.secrets_key = aws.kms.Key(
            f"{name}-secrets", description=f"EKS secrets envelope encryption for {cfg.name}",
            enable_key_rotation=True, deletion_window_in_days=30, tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=cfg.deletion_protection))
        aws.kms.Alias(f"{name}-secrets", name=f"alias/{cfg.name}-eks-secrets", target_key_id=self.secrets_key.key_id,
                      opts=child)
        # EKS creates this group on its own with no retention; declaring it first keeps logs bounded.
        log_group = aws.cloudwatch.LogGroup(f"{name}-logs", name=f"/aws/eks/{cfg.name}/cluster",
                                            retention_in_days=cfg.log_retention_days, tags=args.tags, opts=child)
        self._cfg, self._tags = cfg, args.tags
        self.eks = eks.Cluster(
            name,
            name=cfg.name,
            version=cfg.version,
            vpc_id=args.vpc_id,
            private_subnet_ids=args.private_subnet_ids,
            public_subnet_ids=args.public_subnet_ids,
            endpoint_private_access=cfg.endpoint_private_access,
            endpoint_public_access=cfg.endpoint_public_access,
            public_access_cidrs=[str(cidr) for cidr in cfg.public_access_cidrs] or None,
            kubernetes_service_ip_address_range=str(cfg.service_cidr),
            skip_default_node_group=True,
            node_associate_public_ip_address=False,
            create_oidc_provider=True,
            encryption_config_key_arn=self.secrets_key.arn,
            enabled_cluster_log_types=list(cfg.log_types),
            authentication_mode=eks.AuthenticationMode(args.authentication_mode),
            role_mappings=args.role_mappings,
            deletion_protection=cfg.deletion_protection,
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=cfg.upgrade_policy),
            # Every add-on is declared below, in order; none inside the component (see the module docstring).
            bootstrap_self_managed_addons=False,
            use_default_vpc_cni=True,  # pulumi-eks' switch for "create no vpc-cni add-on"
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(enabled=False),
            tags=args.tags,
            cluster_tags=policy_tags(cfg, args.creator_arn) or None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group], protect=cfg.deletion_protection),
        )
        if cfg.private_access_cidrs:  # in-VPC CI runners, VPNs: EKS' security groups admit only the nodes
            aws.ec2.SecurityGroupRule(
                f"{name}-private-api", type="ingress", protocol="tcp", from_port=443, to_port=443,
                cidr_blocks=[str(cidr) for cidr in cfg.private_access_cidrs],
                security_group_id=self.eks.cluster_security_group_id,
                description="Kubernetes API from eks-platform:cluster.private_access_cidrs", opts=child)
        self.kubeconfig = self.eks.kubeconfig
        self.oidc_provider_arn = self.eks.oidc_provider_arn
        self.oidc_provider_url = self.eks.oidc_provider_url
        self.endpoint = self.eks.kubeconfig.apply(_endpoint_of)
        self.ebs_csi_role = aws.iam.Role(
            f"{name}-ebs-csi", **scoped_role_args(),
            assume_role_policy=irsa_trust_policy(self.oidc_provider_arn, self.oidc_provider_url, EBS_CSI_SERVICE_ACCOUNT),
            tags=args.tags, opts=child)
        self._ebs_csi_policy = aws.iam.RolePolicyAttachment(
            f"{name}-ebs-csi", role=self.ebs_csi_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy", opts=child)
        self._name = name
        # The CNI's network policy agent enforces NetworkPolicy objects; without it EKS accepts them and ignores them.
        configurations = {"vpc-cni": {"enableNetworkPolicy": "true"}} if args.network_policies else {}
        self.network_addons = [self._addon(addon, [self.eks], configurations.get(addon)) for addon in BEFORE_NODES]
        self.node_addons: list[aws.eks.Addon] = []
        self.register_outputs({"name": cfg.name, "endpoint": self.endpoint})

    def add_node_addons(self, node_groups: Sequence[pulumi.Resource]) -> list[aws.eks.Addon]:
        """coredns and aws-ebs-csi-driver, once the node groups that will run their pods exist."""
        roles = {"aws-ebs-csi-driver": self.ebs_csi_role.arn}
        policies = {"aws-ebs-csi-driver": [self._ebs_csi_policy]}  # the controller starts with its permissions
        self.node_addons = [self._addon(addon, [*node_groups, *policies.get(addon, [])], role_arn=roles.get(addon))
                            for addon in AFTER_NODES]
        return self.node_addons

    def _addon(self, addon: str, after: list[pulumi.Resource], configuration: dict | None = None,
               role_arn: pulumi.Input[str] | None = None) -> aws.eks.Addon:
        """An EKS add-on at the configured build. OVERWRITE on create adopts a self-managed copy an older cluster
        may run; OVERWRITE on update keeps the program the source of truth; preserve leaves the software running
        if the resource is ever deleted (a cluster without CNI or DNS is down)."""
        return aws.eks.Addon(
            f"{self._name}-{SHORT_NAMES.get(addon, addon)}", cluster_name=self._cfg.name, addon_name=addon,
            addon_version=self._cfg.addons.get(addon),
            configuration_values=json.dumps(configuration, sort_keys=True) if configuration else None,
            service_account_role_arn=role_arn, resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE", preserve=True, tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=after))


def _endpoint_of(kubeconfig: object) -> str:
    """The API server URL inside the generated kubeconfig (a plain output, unlike resource refs)."""
    document: Any = json.loads(kubeconfig) if isinstance(kubeconfig, str) else kubeconfig  # any shape: caught below
    try:
        return document["clusters"][0]["cluster"]["server"]
    except (KeyError, IndexError, TypeError):
        return ""
