"""The pulumi-deployer's IAM power, evaluated: what it can and cannot do with the policies the plan declares.

A small evaluator of the IAM grammar these documents use (Allow/Deny, Action and Resource wildcards,
StringEquals/ArnEquals) runs each request against the deployer's inline policy AND its permissions boundary,
as AWS does: both must allow, any Deny wins.
"""
from __future__ import annotations

import fnmatch
import json

import pytest

from infra.config import load_stack_config
from infra.plan.offline import Plan

ACCOUNT = "123456789012"
ROLE, ROLE_POLICY, POLICY = "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _matches(statement: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement["Action"])):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"])):
        return False
    for operator, block in (statement.get("Condition") or {}).items():
        assert operator in ("StringEquals", "ArnEquals"), f"evaluator does not know {operator}"
        for key, wanted in block.items():
            if context.get(key) not in _listed(wanted):
                return False
    return True


def allows(document: dict, action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    hits = [s for s in document["Statement"] if _matches(s, action, resource, context or {})]
    return any(s["Effect"] == "Allow" for s in hits) and not any(s["Effect"] == "Deny" for s in hits)


class Principal:
    """A role as IAM judges its requests: inline policy intersected with its permissions boundary."""

    def __init__(self, plan: Plan, role_name: str):
        roles = {r.inputs.get("name"): r for r in plan.of_type(ROLE)}
        role = roles[role_name]
        (inline,) = [p for p in plan.of_type(ROLE_POLICY) if p.name == role.name]
        boundaries = {f"arn:aws:iam::{ACCOUNT}:policy{p.inputs['path']}{p.inputs['name']}": p
                      for p in plan.of_type(POLICY)}
        self.inline = json.loads(inline.inputs["policy"])
        self.boundary = json.loads(boundaries[role.inputs["permissionsBoundary"]].inputs["policy"])

    def can(self, action: str, resource: str, **context: str) -> bool:
        return allows(self.inline, action, resource, context) and allows(self.boundary, action, resource, context)


def _boundary_arn(env: str, kind: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:policy/eks-platform-{env}-ci/eks-platform-{env}-{kind}-boundary"


def _role(env: str, name: str, path: str | None = None) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{path or f'eks-platform-{env}'}/{name}"


@pytest.fixture(scope="module")
def deployer(stack_plans) -> Principal:
    return Principal(stack_plans["dev"], "eks-platform-dev-pulumi-deployer")


def test_deployer_creates_and_edits_roles_only_in_its_stack_path_with_the_workload_boundary(deployer):
    workload = _boundary_arn("dev", "workload")
    for action in ("iam:CreateRole", "iam:PutRolePolicy"):
        assert deployer.can(action, _role("dev", "x"), **{"iam:PermissionsBoundary": workload})
        assert not deployer.can(action, _role("dev", "x")), f"{action} without a boundary"
        assert not deployer.can(action, _role("dev", "x"), **{"iam:PermissionsBoundary": _boundary_arn("dev", "ci")})
        assert not deployer.can(action, _role("prod", "x"), **{"iam:PermissionsBoundary": workload}), "other stack"
        assert not deployer.can(action, f"arn:aws:iam::{ACCOUNT}:role/x", **{"iam:PermissionsBoundary": workload})


def test_deployer_attaches_only_allow_listed_aws_policies(deployer):
    policy = "arn:aws:iam::aws:policy/{}".format
    assert deployer.can("iam:AttachRolePolicy", _role("dev", "nodes"), **{"iam:PolicyARN": policy("AmazonEKSWorkerNodePolicy")})
    for name in ("AdministratorAccess", "IAMFullAccess", "SecretsManagerReadWrite"):
        assert not deployer.can("iam:AttachRolePolicy", _role("dev", "nodes"), **{"iam:PolicyARN": policy(name)})
    assert not deployer.can("iam:AttachRolePolicy", _role("dev", "nodes"),
                            **{"iam:PolicyARN": f"arn:aws:iam::{ACCOUNT}:policy/anything"})


def test_deployer_cannot_create_policies_or_touch_the_ci_roles_and_boundaries(deployer):
    for action in ("iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeletePolicy"):
        assert not deployer.can(action, _boundary_arn("dev", "workload"))
        assert not deployer.can(action, f"arn:aws:iam::{ACCOUNT}:policy/mine")
    own = _role("dev", "eks-platform-dev-pulumi-deployer", path="eks-platform-dev-ci")
    for action in ("iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy",
                   "iam:DeleteRolePermissionsBoundary", "iam:PutRolePermissionsBoundary"):
        assert not deployer.can(action, own, **{"iam:PermissionsBoundary": _boundary_arn("dev", "workload"),
                                                "iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"})
    assert not deployer.can("iam:PassRole", own, **{"iam:PassedToService": "lambda.amazonaws.com"})
    assert deployer.can("iam:PassRole", _role("dev", "x"), **{"iam:PassedToService": "lambda.amazonaws.com"})


def test_deployer_reads_no_secret_material(deployer):
    region = "arn:aws:{}:eu-west-1:" + ACCOUNT + ":{}"
    assert not deployer.can("secretsmanager:GetSecretValue", region.format("secretsmanager", "secret:eks-platform/dev/a"))
    assert not deployer.can("ec2:GetPasswordData", "*")
    assert not deployer.can("ec2:GetLaunchTemplateData", "*")
    assert not deployer.can("kms:Decrypt", region.format("kms", "key/1"), **{"aws:ResourceTag/environment": "dev"})
    assert not deployer.can("lambda:GetFunction", region.format("lambda", "function:someone-elses"))
    assert deployer.can("lambda:GetFunction", region.format("lambda", "function:eks-platform-dev-secret-rotation"))
    assert not deployer.can("ssm:GetParameter", region.format("ssm", "parameter/db/password"))
    # Public AMI parameters have no account in their ARN; `*` in the grant matches the empty field.
    assert deployer.can("ssm:GetParameter", "arn:aws:ssm:eu-west-1::parameter/aws/service/ami-amazon-linux-latest/x")


def test_deployer_manages_only_its_stack_s_keys_secrets_and_repositories(deployer):
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1"
    assert deployer.can("kms:PutKeyPolicy", key, **{"aws:ResourceTag/environment": "dev"})
    assert not deployer.can("kms:PutKeyPolicy", key, **{"aws:ResourceTag/environment": "prod"})
    assert deployer.can("secretsmanager:DeleteSecret", f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:eks-platform/dev/x")
    assert not deployer.can("secretsmanager:DeleteSecret",
                            f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:eks-platform/prod/x")
    assert deployer.can("ecr:DeleteRepository", f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/eks-platform/dev/api")
    assert not deployer.can("ecr:DeleteRepository", f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/eks-platform/prod/api")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_role_lives_in_a_stack_path_with_its_boundary(stack_plans, env):
    """Workload roles: the stack path and the workload boundary (so the deployer can manage them, boundedly);
    CI roles: the CI path and the CI boundary (so the deployer cannot)."""
    ci = {f"eks-platform-{env}-{name}" for name in ("ci-deployer", "pulumi-deployer", "pulumi-previewer")}
    roles = stack_plans[env].of_type(ROLE)
    assert len(roles) > len(ci)
    for role in roles:
        kind = "ci" if role.inputs.get("name") in ci else "workload"
        expected_path = f"/eks-platform-{env}-ci/" if kind == "ci" else f"/eks-platform-{env}/"
        assert role.inputs["path"] == expected_path, role.name
        assert role.inputs["permissionsBoundary"] == _boundary_arn(env, kind), role.name
    for profile in stack_plans[env].of_type("aws:iam/instanceProfile:InstanceProfile"):
        assert profile.inputs["path"] == f"/eks-platform-{env}/"


def test_deployer_manages_the_edge_certificate_and_records_only_in_its_own_zone(deployer):
    zone = load_stack_config("dev").edge.zone_id
    assert deployer.can("route53:ChangeResourceRecordSets", f"arn:aws:route53:::hostedzone/{zone}")
    assert not deployer.can("route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/ZSOMEONEELSE")
    assert not deployer.can("route53:DeleteHostedZone", f"arn:aws:route53:::hostedzone/{zone}")
    assert deployer.can("acm:RequestCertificate", "*", **{"aws:RequestTag/environment": "dev"})
    assert not deployer.can("acm:RequestCertificate", "*", **{"aws:RequestTag/environment": "prod"})
    certificate = f"arn:aws:acm:eu-west-1:{ACCOUNT}:certificate/0f0e"
    assert deployer.can("acm:DeleteCertificate", certificate, **{"aws:ResourceTag/environment": "dev"})
    assert not deployer.can("acm:DeleteCertificate", certificate, **{"aws:ResourceTag/environment": "prod"})


def test_deployer_manages_the_nat_groups_and_no_other_auto_scaling_group(deployer):
    group = f"arn:aws:autoscaling:eu-west-1:{ACCOUNT}:autoScalingGroup:1-2:autoScalingGroupName/{{}}".format
    cluster = load_stack_config("dev").cluster.name
    for action in ("autoscaling:CreateAutoScalingGroup", "autoscaling:PutLifecycleHook",
                   "autoscaling:DeleteAutoScalingGroup"):
        assert deployer.can(action, group(f"{cluster}-nat-a-20261205"))
        assert not deployer.can(action, group("eks-prod-nat-a-20261205")), "another stack's group"
        assert not deployer.can(action, group("someone-elses"))


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_edge_controllers_are_not_cut_off_by_the_workload_boundary(stack_plans, env):
    """The controllers' roles carry the workload boundary: what they are granted must also be inside it (the
    policy pack's iam-grants-within-boundary checks every role; here the calls the edge lives on)."""
    zone = f"arn:aws:route53:::hostedzone/{load_stack_config(env).edge.zone_id}"
    boundary_of = {p.inputs["name"]: json.loads(p.inputs["policy"]) for p in stack_plans[env].of_type(POLICY)}
    workload = boundary_of[f"eks-platform-{env}-workload-boundary"]
    for action, resource in (("route53:ChangeResourceRecordSets", zone), ("route53:ListHostedZones", "*"),
                             ("acm:DescribeCertificate", "*"), ("wafv2:GetWebACLForResource", "*"),
                             ("shield:GetSubscriptionState", "*"), ("elasticloadbalancing:CreateLoadBalancer", "*")):
        assert allows(workload, action, resource), action
    assert not allows(workload, "route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/ZSOMEONEELSE")
