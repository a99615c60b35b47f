"""VPC with one public and one private subnet per AZ, and one private route table per AZ.

Private route tables are per AZ so NAT failover can move one AZ's egress at a time; this component
declares them without a default route and exposes them for the NAT component to fill.
"""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import NetworkConfig, subnet_plan


@dataclass(frozen=True)
class NetworkArgs:
    network: NetworkConfig
    cluster_name: str
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    """Per-AZ subnets tagged for EKS load balancers; `private_route_tables` is the seam for NAT."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}
        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=str(args.network.cidr), enable_dns_hostnames=True,
                               enable_dns_support=True, tags={**args.tags, "Name": f"{args.cluster_name}-vpc"},
                               opts=child)
        self.internet_gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id,
                                                        tags={**args.tags, "Name": f"{args.cluster_name}-igw"},
                                                        opts=child)
        self.public_route_table = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=self.internet_gateway.id)],
            tags={**args.tags, "Name": f"{args.cluster_name}-public"}, opts=child)
        self.public_subnets: dict[str, aws.ec2.Subnet] = {}
        self.private_subnets: dict[str, aws.ec2.Subnet] = {}
        self.private_route_tables: dict[str, aws.ec2.RouteTable] = {}
        for az, (public_cidr, private_cidr) in subnet_plan(args.network).items():
            suffix = az[-1]
            self.public_subnets[az] = aws.ec2.Subnet(
                f"{name}-public-{suffix}", vpc_id=self.vpc.id, cidr_block=public_cidr, availability_zone=az,
                map_public_ip_on_launch=False,
                tags={**args.tags, **cluster_tag, "Name": f"{args.cluster_name}-public-{suffix}",
                      "kubernetes.io/role/elb": "1", "tier": "public"}, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{suffix}", subnet_id=self.public_subnets[az].id,
                                          route_table_id=self.public_route_table.id, opts=child)
            self.private_subnets[az] = aws.ec2.Subnet(
                f"{name}-private-{suffix}", vpc_id=self.vpc.id, cidr_block=private_cidr, availability_zone=az,
                tags={**args.tags, **cluster_tag, "Name": f"{args.cluster_name}-private-{suffix}",
                      "kubernetes.io/role/internal-elb": "1", "tier": "private"}, opts=child)
            self.private_route_tables[az] = aws.ec2.RouteTable(
                f"{name}-private-{suffix}", vpc_id=self.vpc.id,
                tags={**args.tags, "Name": f"{args.cluster_name}-private-{suffix}", "tier": "private", "az": az},
                opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{suffix}", subnet_id=self.private_subnets[az].id,
                                          route_table_id=self.private_route_tables[az].id, opts=child)
        self.register_outputs({"vpc_id": self.vpc.id})
