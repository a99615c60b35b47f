"""Wires the components for one stack and exports the outputs other tools read.

Outputs are the seam to ops engines and later components: names, IDs per AZ, role ARNs.
"""
from __future__ import annotations

from typing import Any

import pulumi

from infra.components.access import Access, AccessArgs
from infra.components.cluster import Cluster, ClusterArgs
from infra.components.edge import Edge, EdgeArgs
from infra.components.nat import Nat, NatArgs
from infra.components.network import Network, NetworkArgs
from infra.components.nodegroups import NodeGroups, NodeGroupsArgs
from infra.components.platform import PLATFORM_PRIORITY, Platform, PlatformArgs
from infra.components.registry import Registry, RegistryArgs
from infra.components.secrets import Secrets, SecretsArgs
from infra.config import StackConfig, from_mapping
from infra.config import app_namespace as app_namespace_of
from infra.identity import BASE_REPOSITORY
from infra.ops.io.manifests import K8S_ROOT, services


def runtime_config() -> dict[str, Any]:
    """Every config key the Pulumi engine handed this program (env bag plus explicitly set keys)."""
    from pulumi.runtime import config as runtime

    return {**runtime.get_config_env(), **runtime.CONFIG.get()}


def load_from_pulumi() -> StackConfig:
    return from_mapping(pulumi.get_stack(), runtime_config())


def build(cfg: StackConfig) -> dict[str, Any]:
    """Declare the whole platform for one environment and export its outputs."""
    tags = {"project": "eks-platform", "environment": cfg.env, "managed-by": "pulumi"}
    # First: the boundaries and role scope every later role carries, and the aws-auth mappings the cluster needs.
    access = Access("access", AccessArgs(config=cfg, tags=tags))
    network = Network("network", NetworkArgs(network=cfg.network, cluster_name=cfg.cluster.name, tags=tags))
    nat = Nat("nat", NatArgs(
        config=cfg, vpc_id=network.vpc.id, public_subnet_ids={az: s.id for az, s in network.public_subnets.items()},
        private_route_table_ids={az: t.id for az, t in network.private_route_tables.items()}, tags=tags))
    cluster = Cluster("cluster", ClusterArgs(
        cluster=cfg.cluster, vpc_id=network.vpc.id,
        private_subnet_ids=[subnet.id for subnet in network.private_subnets.values()],
        public_subnet_ids=[subnet.id for subnet in network.public_subnets.values()],
        authentication_mode=cfg.access.authentication_mode, role_mappings=access.role_mappings(),
        creator_arn=cfg.access.cluster_creator_arn, tags=tags))
    node_groups = NodeGroups("nodes", NodeGroupsArgs(
        config=cfg, cluster_name=cfg.cluster.name, depends_on=[cluster.eks, *cluster.network_addons, *nat.routes],
        private_subnet_ids={az: subnet.id for az, subnet in network.private_subnets.items()}, tags=tags))
    node_addons = cluster.add_node_addons(node_groups.groups)
    k8s_provider = access.bind(cluster.kubeconfig, depends_on=[cluster.eks])
    platform = Platform("platform", PlatformArgs(
        config=cfg, k8s_provider=k8s_provider, oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_provider_url=cluster.oidc_provider_url, depends_on=[cluster.eks, *node_groups.groups, *node_addons],
        tags=tags,
        node_groups=node_groups.groups))
    app_namespace = platform.app_namespaces[app_namespace_of(cfg.env)]
    edge = Edge("edge", EdgeArgs(
        config=cfg, k8s_provider=k8s_provider, oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_provider_url=cluster.oidc_provider_url, vpc_id=network.vpc.id, app_namespaces=list(platform.app_namespaces),
        priority_class=PLATFORM_PRIORITY, tags=tags,
        depends_on=[cluster.eks, *node_groups.groups, platform.observability.stack])) if cfg.edge else None
    access.grant_ci(app_namespace)
    secrets = Secrets("secrets", SecretsArgs(
        config=cfg, k8s_provider=k8s_provider, oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_provider_url=cluster.oidc_provider_url, vpc_id=network.vpc.id,
        private_subnet_ids=[subnet.id for subnet in network.private_subnets.values()],
        depends_on=[cluster.eks, *node_groups.groups, app_namespace], tags=tags))
    # The services' repositories and the shared base's, which deploy builds and pushes first.
    registry = Registry("registry", RegistryArgs(env=cfg.env, services=[*services(K8S_ROOT), BASE_REPOSITORY],
                                                 tags=tags))
    outputs: dict[str, Any] = {
        "clusterName": cfg.cluster.name,
        "clusterVersion": cfg.cluster.version,
        "endpoint": cluster.endpoint,
        "kubeconfig": pulumi.Output.secret(cluster.kubeconfig),
        "oidcProviderArn": cluster.oidc_provider_arn,
        "nodeGroups": node_groups.names,
        "nodeGroupAmiTypes": {pool_name: {gen_name: gen.ami_type for gen_name, gen in pool.generations.items()}
                              for pool_name, pool in cfg.node_pools.items()},
        "vpcId": network.vpc.id,
        "subnetIds": {az: {"public": network.public_subnets[az].id, "private": network.private_subnets[az].id}
                      for az in cfg.network.azs},
        "privateRouteTableIds": {az: table.id for az, table in network.private_route_tables.items()},
        **nat.outputs(),
        "authenticationMode": cfg.access.authentication_mode,
        "ciDeployerRoleArn": access.ci_role_arn,
        "pulumiDeployerRoleArn": access.pulumi_deployer_role_arn,
        "pulumiPreviewerRoleArn": access.pulumi_previewer_role_arn,
        "accessPrincipals": [principal.role_arn for principal in access.principals],
        "secretArns": secrets.arns,
        "secretReaderRoleArns": secrets.reader_role_arns,
        "secretsKmsKeyArn": secrets.key.arn,
        "appNamespaces": list(platform.app_namespaces),
        "clusterAutoscalerRoleArn": platform.autoscaler_role.arn,
        # service -> ECR repository URL; `invoke deploy` derives the same name (infra.identity.repository_name).
        "ecrRepositories": registry.urls,
    }
    if edge is not None:
        outputs.update({"edgeCertificateArn": edge.certificate_arn, "edgeHostnames": dict(edge.edge.hostnames),
                        "loadBalancerControllerRoleArn": edge.controller_role.arn})
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs
