"""What cluster-autoscaler needs from AWS: discovery tags on node groups and a tag-scoped IAM policy.

Plain data, no pulumi import: the node group component tags with it, the platform component grants
with it, and tests read both from one place.
"""
from __future__ import annotations

import json

from infra.config import NodePool

TAG_PREFIX = "k8s.io/cluster-autoscaler"
TEMPLATE = f"{TAG_PREFIX}/node-template"
TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
# Labels that differ between the per-AZ groups of one pool; ignoring them lets the autoscaler
# treat those groups as similar and balance them.
BALANCING_IGNORED_LABELS = ("eks.amazonaws.com/nodegroup", "eks.amazonaws.com/nodegroup-image",
                            "eks.amazonaws.com/sourceLaunchTemplateId",
                            "eks.amazonaws.com/sourceLaunchTemplateVersion")


def discovery_tags(cluster_name: str, pool_name: str, generation: str, az: str, pool: NodePool) -> dict[str, str]:
    """Auto-discovery tags, plus node-template tags describing the nodes of a group that has none yet.

    With min_size 0 the autoscaler has no node to look at; the template tags tell it which labels,
    taints, zone and disk a new node would have, so a pending pod pinned to this AZ can scale it up.
    """
    tags = {f"{TAG_PREFIX}/enabled": "true", f"{TAG_PREFIX}/{cluster_name}": "owned",
            f"{TEMPLATE}/resources/ephemeral-storage": f"{pool.disk_size_gib}G"}
    labels = {**pool.labels, "pool": pool_name, "generation": generation, "topology.kubernetes.io/zone": az,
              "eks.amazonaws.com/capacityType": pool.capacity_type}
    tags.update({f"{TEMPLATE}/label/{key}": value for key, value in labels.items()})
    tags.update({f"{TEMPLATE}/taint/{taint.key}": f"{taint.value}:{TAINT_EFFECTS[taint.effect]}"
                 for taint in pool.taints})
    return tags


def autoscaler_policy(cluster_name: str) -> str:
    """IAM policy: read anything it must discover, but resize or terminate only this cluster's groups.

    The write actions are conditioned on the ASG tags EKS puts on every managed node group's ASG,
    so the role cannot touch another cluster's capacity in the same account.
    """
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "Discover", "Effect": "Allow", "Resource": "*", "Action": [
            "autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
            "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
            "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
            "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements"]},
        {"Sid": "DescribeOwnNodeGroups", "Effect": "Allow", "Action": ["eks:DescribeNodegroup"],
         "Resource": f"arn:aws:eks:*:*:nodegroup/{cluster_name}/*"},
        {"Sid": "ResizeOwnGroups", "Effect": "Allow", "Resource": "*",
         "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
         "Condition": {"StringEquals": {f"aws:ResourceTag/{TAG_PREFIX}/{cluster_name}": "owned",
                                        f"aws:ResourceTag/{TAG_PREFIX}/enabled": "true"}}},
    ]})
