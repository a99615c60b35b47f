"""EKS control plane: KMS envelope encryption, control-plane logs, OIDC provider, core add-ons.

The pulumi-eks Cluster is a remote component, so only ARNs, IDs and `core` cross into it.
Add-on versions come from config so a version upgrade moves them deliberately, step by step.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from infra.components.iam import scoped_role_args
from infra.config import ClusterConfig

EBS_CSI_SERVICE_ACCOUNT = "system:serviceaccount:kube-system:ebs-csi-controller-sa"


@dataclass(frozen=True)
class ClusterArgs:
    cluster: ClusterConfig
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Input[str]]
    public_subnet_ids: list[pulumi.Input[str]]
    tags: dict[str, str]
    authentication_mode: str = "API_AND_CONFIG_MAP"
    # aws-auth entries: pulumi-eks owns that ConfigMap in CONFIG_MAP modes (see components/access.py).
    role_mappings: list[eks.RoleMappingArgs] | None = None


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
        addons = cfg.addons
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
            authentication_mode=args.authentication_mode,
            role_mappings=args.role_mappings,
            deletion_protection=cfg.deletion_protection,
            vpc_cni_options=eks.VpcCniOptionsArgs(addon_version=addons.get("vpc-cni")),
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(version=addons.get("coredns")),
            kube_proxy_addon_options=eks.KubeProxyAddonOptionsArgs(version=addons.get("kube-proxy")),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group], protect=cfg.deletion_protection),
        )
        self.kubeconfig = self.eks.kubeconfig
        self.oidc_provider_arn = self.eks.oidc_provider_arn
        self.oidc_provider_url = self.eks.oidc_provider_url
        self.endpoint = self.eks.kubeconfig.apply(_endpoint_of)
        self.ebs_csi_role = aws.iam.Role(
            f"{name}-ebs-csi", **scoped_role_args(), assume_role_policy=irsa_trust_policy(self.oidc_provider_arn, self.oidc_provider_url,
                                                                    EBS_CSI_SERVICE_ACCOUNT),
            tags=args.tags, opts=child)
        aws.iam.RolePolicyAttachment(f"{name}-ebs-csi", role=self.ebs_csi_role.name,
                                     policy_arn="arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy",
                                     opts=child)
        aws.eks.Addon(f"{name}-ebs-csi", cluster_name=cfg.name, addon_name="aws-ebs-csi-driver",
                      addon_version=addons.get("aws-ebs-csi-driver"),
                      service_account_role_arn=self.ebs_csi_role.arn,
                      resolve_conflicts_on_update="OVERWRITE", tags=args.tags,
                      opts=pulumi.ResourceOptions(parent=self, depends_on=[self.eks]))
        self.register_outputs({"name": cfg.name, "endpoint": self.endpoint})


def _endpoint_of(kubeconfig: object) -> str:
    """The API server URL inside the generated kubeconfig (a plain output, unlike resource refs)."""
    document = json.loads(kubeconfig) if isinstance(kubeconfig, str) else kubeconfig
    try:
        return document["clusters"][0]["cluster"]["server"]
    except (KeyError, IndexError, TypeError):
        return ""
