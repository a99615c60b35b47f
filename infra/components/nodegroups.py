"""Managed node groups: one per pool x generation x AZ.

One group per AZ keeps EBS-backed pods schedulable after node replacement (volumes are AZ-bound,
and a group spanning AZs may bring its replacement up elsewhere). Generations sit side by side so a
blue/green migration adds one and later removes the other, never changing an AMI in place.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.autoscaling import discovery_tags
from infra.components.iam import scoped_role_args
from infra.config import Generation, NodePool, StackConfig

AUTOSCALER_OWNED = ["scalingConfig.desiredSize"]
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly",
                 "AmazonSSMManagedInstanceCore")


def node_group_name(pool: str, generation: str, az: str) -> str:
    """EKS node group name; also the `eks.amazonaws.com/nodegroup` label the ops engines select on."""
    return f"{pool}-{generation}-{az[-1]}"


@dataclass(frozen=True)
class NodeGroupsArgs:
    config: StackConfig
    cluster_name: str
    depends_on: list[pulumi.Resource]
    private_subnet_ids: dict[str, pulumi.Input[str]]
    tags: dict[str, str]


class NodeGroups(pulumi.ComponentResource):
    """All node pools of the cluster; `names[pool][generation][az]` is the node group name."""

    def __init__(self, name: str, args: NodeGroupsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:nodegroups:NodeGroups", name, None, opts)
        # Plain aws.eks.NodeGroup: pulumi-eks' ManagedNodeGroup has no update_config, and EKS itself maps
        # the node role (access entry or aws-auth) for managed groups.
        self.names: dict[str, dict[str, dict[str, str]]] = {}
        self.groups: list[aws.eks.NodeGroup] = []
        for pool_name, pool in args.config.node_pools.items():
            role, attachments = self._node_role(f"{name}-{pool_name}", args.tags)
            self.names[pool_name] = {}
            for gen_name, gen in pool.generations.items():
                template = self._launch_template(f"{name}-{pool_name}-{gen_name}", pool, gen, args.tags)
                self.names[pool_name][gen_name] = {}
                for az in args.config.pool_azs(pool):
                    group_name = node_group_name(pool_name, gen_name, az)
                    self.names[pool_name][gen_name][az] = group_name
                    self.groups.append(aws.eks.NodeGroup(
                        f"{name}-{group_name}",
                        cluster_name=args.cluster_name,
                        node_group_name=group_name,
                        node_role_arn=role.arn,
                        subnet_ids=[args.private_subnet_ids[az]],
                        ami_type=gen.ami_type,
                        version=gen.version or args.config.cluster.version,
                        release_version=gen.release_version,
                        instance_types=pool.types_of(gen),
                        capacity_type=pool.capacity_type,
                        scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                            min_size=pool.min_size, desired_size=pool.desired_size, max_size=pool.max_size),
                        update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=pool.max_unavailable),
                        labels={**pool.labels, "pool": pool_name, "generation": gen_name},
                        taints=[aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value or None, effect=t.effect)
                                for t in pool.taints] or None,
                        launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                            id=template.id, version=template.latest_version.apply(str)),
                        tags={**args.tags, "pool": pool_name, "generation": gen_name, "availability-zone": az,
                              **discovery_tags(args.cluster_name, pool_name, gen_name, az, pool)},
                        # cluster-autoscaler owns the desired size once the group exists; `up` must not undo it.
                        # The role's policies first: nodes launched before them cannot join (NodeCreationFailure),
                        # and on delete EKS needs them to clean up instances and ENIs.
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, *attachments],
                                                    ignore_changes=AUTOSCALER_OWNED),
                    ))
        self.register_outputs({"names": self.names})

    def _node_role(self, name: str, tags: dict[str, str]) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
        role = aws.iam.Role(name, **scoped_role_args(), assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
            tags=tags, opts=pulumi.ResourceOptions(parent=self))
        attachments = [aws.iam.RolePolicyAttachment(f"{name}-{policy}", role=role.name,
                                                    policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                                                    opts=pulumi.ResourceOptions(parent=self))
                       for policy in NODE_POLICIES]
        return role, attachments

    def _launch_template(self, name: str, pool: NodePool, gen: Generation, tags: dict[str, str]):
        """IMDSv2 only with hop limit 1 (pods cannot reach node credentials) and an encrypted gp3 root."""
        root_device = "/dev/xvdb" if gen.ami_type.startswith("BOTTLEROCKET") else "/dev/xvda"
        return aws.ec2.LaunchTemplate(
            name,
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name=root_device,
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=pool.disk_size_gib, volume_type="gp3", encrypted="true",
                    delete_on_termination="true"))],
            # Volumes and ENIs too: EKS tags neither, and untagged root volumes escape cost allocation.
            tag_specifications=[aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=tags)
                                for kind in ("instance", "volume", "network-interface")],
            update_default_version=True,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self))
