"""IAM: no admin in all but name, no secret-revealing reads on `*`, bounded roles, pinned federated trust.

A role that can write IAM is account admin unless what it writes is bounded: inline policies only on roles
that carry a permissions boundary, managed policies only from an allow-list, never a new managed policy.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, ResourceValidationArgs

from infra.policy.support import (
    DOCUMENTS,
    MANDATORY,
    allows,
    as_list,
    condition,
    document,
    documents,
    get,
    granted,
    grants,
    identity_documents,
    inside,
    is_boundary,
    label,
    of_type,
    patterns,
    resource_rule,
    resources_of,
    stack_rule,
    statements,
)

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY = "aws:iam/policy:Policy"
INSTANCE_PROFILE = "aws:iam/instanceProfile:InstanceProfile"
EKS_COMPONENT = "eks:index:Cluster"
# Reads that hand out a secret, not metadata: a password, user data, a function's code or environment, a value.
SECRET_READS = ("secretsmanager:GetSecretValue", "ssm:GetParameter", "ssm:GetParameters",
                "ssm:GetParametersByPath", "ec2:GetPasswordData", "ec2:GetLaunchTemplateData", "lambda:GetFunction",
                "lambda:GetFunctionConfiguration", "kms:Decrypt")
# Managing managed policies changes what every holder of them may do, account-wide; stripping a boundary
# undoes the one control that bounds the roles a deployer creates.
NEVER = ("iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:DeleteRolePermissionsBoundary",
         "iam:CreateUser", "iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:AttachUserPolicy", "iam:PutUserPolicy")
IAM_WRITES = ("iam:CreateRole", "iam:DeleteRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy",
              "iam:DetachRolePolicy", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole", "iam:TagRole",
              "iam:PutRolePermissionsBoundary", "iam:PassRole", "iam:CreateInstanceProfile",
              "iam:AddRoleToInstanceProfile", "iam:CreateOpenIDConnectProvider",
              "iam:UpdateOpenIDConnectProviderThumbprint", *NEVER)
_UNSCOPED = re.compile(r"^(\*|arn:[^:]+:iam::[^:]*:(\*|[a-z-]+/\*))$")
_READ = re.compile(r"^[a-z0-9-]+:(Describe|List|Get|BatchGet)[A-Za-z]+$")


def _wildcards(props: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    for doc in identity_documents(args.resource_type, props):
        for statement in statements(doc):
            if not allows(statement) or "*" not in resources_of(statement):
                continue
            if "NotAction" in statement:
                yield f"Allow NotAction {patterns(statement, 'NotAction')} on Resource * grants nearly everything"
            elif wide := [a for a in patterns(statement, "Action") if a in ("*", "*:*") or a.lower() == "iam:*"]:
                yield f"Allow {', '.join(wide)} on Resource *: administrator in all but name"


no_admin_wildcards = resource_rule(
    "iam-no-admin-wildcards",
    "No identity policy may allow `*`, `iam:*` or a NotAction on every resource. Source: IAM security best "
    "practices (least privilege), https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html "
    "(checked 2026-12-05).",
    DOCUMENTS, _wildcards, MANDATORY, "list the actions the principal uses, on the resources it uses")


def _iam_writes(props: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    for doc in identity_documents(args.resource_type, props):
        for statement in statements(doc):
            writes = granted(statement, IAM_WRITES)
            if not writes:
                continue
            never = [action for action in writes if action in NEVER]
            if never:
                yield f"allows {', '.join(never)}: creates or edits policies/boundaries account-wide"
            unscoped = [r for r in resources_of(statement) if _UNSCOPED.match(r)]
            if unscoped:
                yield (f"allows {', '.join(w for w in writes if w not in never)} on {', '.join(unscoped)}: not "
                       f"scoped to the stack's own path or names")
            if "iam:PutRolePolicy" in writes and not condition(statement, "iam:PermissionsBoundary"):
                yield "allows iam:PutRolePolicy without requiring the role's iam:PermissionsBoundary: any inline policy"
            if "iam:PutRolePermissionsBoundary" in writes and not condition(statement, "iam:PermissionsBoundary"):
                yield "allows iam:PutRolePermissionsBoundary without pinning which boundary"
            if "iam:AttachRolePolicy" in writes and not (condition(statement, "iam:PolicyARN")
                                                         or condition(statement, "iam:PermissionsBoundary")):
                yield "allows iam:AttachRolePolicy of any policy (no iam:PolicyARN allow-list, no boundary)"


iam_writes_bounded = resource_rule(
    "iam-writes-bounded",
    "IAM writes must be scoped to the stack's own path/names and bounded: inline policies only on roles carrying "
    "the required permissions boundary, managed policies only from an iam:PolicyARN allow-list, never "
    "CreatePolicy/CreatePolicyVersion or removing a boundary. Source: IAM permissions boundaries for delegated "
    "administration, https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html "
    "(checked 2026-12-05).",
    DOCUMENTS, _iam_writes, MANDATORY,
    "scope the resources to arn:aws:iam::<account>:role/eks-platform-<env>/* and add the iam:PermissionsBoundary / "
    "iam:PolicyARN conditions")


def _secret_reads(props: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    for doc in identity_documents(args.resource_type, props):
        for statement in statements(doc):
            if "*" not in resources_of(statement):
                continue
            reads = granted(statement, SECRET_READS)
            if reads:
                yield f"allows {', '.join(reads)} on Resource *: reads secret values, not just metadata"


no_secret_reads = resource_rule(
    "iam-no-secret-reads-on-star",
    "Actions that return secret material (secret values, parameters, instance passwords, launch-template user data, "
    "Lambda code and environment, KMS plaintext) must name their resources, never `*` (also through Get* or *). "
    "Source: service authorization reference, https://docs.aws.amazon.com/service-authorization/latest/reference/ "
    "(checked 2026-12-05).",
    DOCUMENTS, _secret_reads, MANDATORY, "grant these reads on the exact ARNs (or not at all)")


def _trust_pinned(props: Mapping[str, Any], _: ResourceValidationArgs) -> Iterator[str]:
    for prop, doc in documents(ROLE, props):
        if prop != "assumeRolePolicy":
            continue
        for statement in statements(doc):
            federated = [str(p) for p in as_list(get(statement, "Principal.Federated"))]
            if not allows(statement) or not federated:
                continue
            exact = get(statement, "Condition.StringEquals") or {}
            keys = {str(key).rsplit(":", 1)[-1]: value for key, value in exact.items()}
            for claim in ("aud", "sub"):
                values = [str(v) for v in as_list(keys.get(claim))]
                if not values:
                    yield f"trust of {', '.join(federated)} does not pin `{claim}` with StringEquals"
                elif any("*" in v or "?" in v for v in values):
                    yield f"trust of {', '.join(federated)} pins `{claim}` with a wildcard ({', '.join(values)})"


trust_pinned = resource_rule(
    "iam-federated-trust-pinned",
    "A role assumed with a web identity (GitHub OIDC, IRSA) must pin both the audience and the exact subject with "
    "StringEquals; otherwise any repository, branch or service account can assume it. Source: GitHub OIDC in AWS, "
    "https://docs.github.com/actions/security-for-github-actions/security-hardening-your-deployments/"
    "configuring-openid-connect-in-amazon-web-services and IRSA docs (checked 2026-12-05).",
    (ROLE,), _trust_pinned, MANDATORY, "add StringEquals on <issuer>:aud and <issuer>:sub with exact values")


def _scoped_roles(props: Mapping[str, Any], args: ResourceValidationArgs) -> Iterator[str]:
    if inside(args.urn, EKS_COMPONENT):
        return  # pulumi-eks' own service role takes neither; the deployer may only attach allow-listed policies to it
    path = props.get("path")
    if not path or path == "/":
        yield "has no IAM path: the deployer's IAM rights are scoped to the stack's path, so it could not manage this"
    if args.resource_type == ROLE and not props.get("permissionsBoundary"):
        yield "has no permissions boundary: whatever inline policy it gets is its ceiling"


stack_role_scoped = resource_rule(
    "iam-role-scoped-and-bounded",
    "Every role (and instance profile) the stack declares lives under a stack path and carries a permissions "
    "boundary, so the deployer can manage it without being able to create an unbounded role. pulumi-eks' internal "
    "service role is exempt (it takes no boundary). Source: IAM permissions boundaries, "
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html (checked 2026-12-05).",
    (ROLE, INSTANCE_PROFILE), _scoped_roles, MANDATORY,
    "create it through infra/components/iam.py (path /eks-platform-<env>/ and the workload boundary)")


def role_documents(resources: Sequence[PolicyResource]) -> dict[str, list[Mapping[str, Any]]]:
    """Role URN -> its permission documents (inline RolePolicy resources matched by dependency or by role name)."""
    roles = of_type(resources, ROLE)
    by_name = {str(role.props.get("name") or role.name): role for role in roles}
    found: dict[str, list[Mapping[str, Any]]] = {role.urn: identity_documents(ROLE, role.props) for role in roles}
    for policy in of_type(resources, ROLE_POLICY):
        owner = next((d for d in policy.dependencies if d.resource_type == ROLE), None) or by_name.get(
            str(policy.props.get("role")))
        if owner is not None:
            found[owner.urn] += identity_documents(ROLE_POLICY, policy.props)
    return found


def _pull_request_roles(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    docs = role_documents(resources)
    for role in of_type(resources, ROLE):
        trust = [s for prop, d in documents(ROLE, role.props) if prop == "assumeRolePolicy" for s in statements(d)]
        subjects = [str(v) for s in trust for v in condition(s, "token.actions.githubusercontent.com:sub")]
        if not any(subject.endswith(":pull_request") for subject in subjects):
            continue
        for doc in docs[role.urn]:
            for statement in statements(doc):
                if not allows(statement):
                    continue
                actions = patterns(statement, "Action") if "Action" in statement else ["(NotAction)"]
                bad = [a for a in actions if not _READ.match(a) or "*" in a]
                secret = [a for a in actions if granted({"Effect": "Allow", "Action": [a]}, SECRET_READS)]
                if bad or secret:
                    yield role.urn, (f"{label(role)} is assumed by pull-request code yet allows "
                                     f"{', '.join(sorted(set(bad + secret)))}: a preview role may only read, by "
                                     f"explicit action name, and never secret values")


pull_request_read_only = stack_rule(
    "iam-pull-request-role-read-only",
    "A role pull-request workflows can assume runs the PR's own code: it may only call explicitly named "
    "Describe/List/Get actions, and none that returns secret material. Source: GitHub security hardening for "
    "pull_request workflows (checked 2026-12-05).",
    _pull_request_roles, MANDATORY, "list the exact read calls `pulumi preview` makes (infra/components/access.py)")

def _beyond_boundary(resources: Sequence[PolicyResource]) -> Iterator[tuple[str | None, str]]:
    boundaries = {str(p.props.get("name")): doc for p in of_type(resources, POLICY)
                  if is_boundary(p.props) and (doc := document(p.props.get("policy"))) is not None}
    docs = role_documents(resources)
    for role in of_type(resources, ROLE):
        arn = role.props.get("permissionsBoundary")
        name = arn.rsplit("/", 1)[-1] if isinstance(arn, str) else None
        ceiling = boundaries.get(name) if name is not None else None
        if name is None or ceiling is None:
            continue  # no boundary, or one the stack does not declare: nothing to compare with
        allowed = [statement for statement in statements(ceiling) if allows(statement)]
        beyond = sorted({action for doc in docs[role.urn] for statement in statements(doc) if allows(statement)
                         for action in patterns(statement, "Action")
                         if not any(grants(ceiling_statement, action) for ceiling_statement in allowed)})
        if beyond:
            yield role.urn, (f"{label(role)} is granted {', '.join(beyond)}, which its permissions boundary {name} "
                             f"does not allow: every such call is denied at run time")


grants_within_boundary = stack_rule(
    "iam-grants-within-boundary",
    "A role's permissions are the intersection of its policies and its permissions boundary: an action its policy "
    "grants but its boundary does not is denied at run time, with nothing failing at `pulumi up`. Compared action by "
    "action (resource scopes are the policies' own). Source: IAM policy evaluation logic, "
    "https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html (checked 2026-12-05).",
    _beyond_boundary, MANDATORY, "add the actions to the boundary in infra/components/iam.py, or drop them")

POLICIES = [no_admin_wildcards, iam_writes_bounded, no_secret_reads, trust_pinned, stack_role_scoped,
            pull_request_read_only, grants_within_boundary]
