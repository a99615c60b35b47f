"""Who runs a stack's first `pulumi up`: the one principal EKS makes cluster admin by itself.

pulumi-eks always sets bootstrapClusterCreatorAdminPermissions, so CreateCluster gives its caller a cluster-admin
access entry. The program declares no entry for `access.cluster_creator_arn` (a second one is a 409), so the
first up must run as exactly that role: run by anyone else, it would make a stranger admin and leave the
configured creator with no entry at all. `invoke up` asks STS who is calling before the first up.
"""
from __future__ import annotations

import re

from botocore.exceptions import BotoCoreError, ClientError

from infra.config import PROJECT, StackConfig
from infra.ops.errors import Failed, Refused, reason
from infra.ops.io import aws

_ASSUMED = re.compile(r"^arn:(aws[\w-]*):sts::(\d{12}):assumed-role/([^/]+)/[^/]+$")
_ROLE = re.compile(r"^arn:(aws[\w-]*):iam::(\d{12}):role/(?:.*/)?([^/]+)$")


class CreatorUnknown(RuntimeError, Failed):
    """STS could not say who is calling (credentials, endpoint)."""


class WrongCreator(ValueError, Refused):
    """The first up would run as a principal the stack does not expect: nothing was started."""


def caller_arn(region: str, client=None) -> str:
    try:
        return (client or aws.client("sts", region)).get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError) as error:
        raise CreatorUnknown(f"sts get_caller_identity failed: {reason(error)}") from None


def role_of(arn: str) -> tuple[str, str] | None:
    """(account, role name) of an assumed-role session or a role ARN (IAM paths dropped); None for users."""
    match = _ASSUMED.match(arn) or _ROLE.match(arn)
    return (match.group(2), match.group(3)) if match else None


def first_up_problem(cfg: StackConfig, caller: str) -> str | None:
    """Why `caller` must not run this stack's first up, or None when it may."""
    access = cfg.access
    if not access.uses_access_entries:
        return None  # CONFIG_MAP: no access entries, aws-auth only
    key = f"{PROJECT}:access.cluster_creator_arn"
    you = role_of(caller)
    if access.cluster_creator_arn:
        if you == role_of(access.cluster_creator_arn):
            return None
        return (f"{key} says {access.cluster_creator_arn} runs the first `pulumi up` of {cfg.env}, but you are "
                f"{caller}: EKS would make you cluster admin and the configured creator would get no access entry; "
                f"run it as that role (see docs/first-up.md) or change {key}")
    declared = [arn for arn in (*access.admin_role_arns, *(m.role_arn for m in access.role_mappings))
                if role_of(arn) == you]
    if access.pulumi_deployer_cluster_admin and you and you[1] == f"eks-platform-{cfg.env}-pulumi-deployer":
        declared.append(caller)
    if declared:
        return (f"you ({caller}) also get an access entry from this stack, and EKS gives the cluster's creator one of "
                f"its own: the up would fail with 409 after creating the cluster; set {key}: {declared[0]}")
    return None


def check_first_up(cfg: StackConfig, caller: str) -> None:
    problem = first_up_problem(cfg, caller)
    if problem:
        raise WrongCreator(problem)
