"""Who may reach the cluster, and with what: aws-auth or access entries, GitHub CI roles, namespaced RBAC.

CI gets no long-lived keys and no cluster-wide power: GitHub's OIDC token for one repository and one
GitHub environment buys a role whose Kubernetes identity is a group bound to a Role in the application
namespace only. Cluster admin is a separate, explicitly configured role.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.config import ADMIN_GROUP, StackConfig, app_namespace, without_path

GITHUB_ISSUER = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
CI_GROUP = "eks-platform:ci-deployers"
CI_USER = "ci-deployer"
PULUMI_DEPLOYER_USER = "pulumi-deployer"
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
NODE_GROUPS = ["system:bootstrappers", "system:nodes"]

READ = ("get", "list", "watch")
ROLL = (*READ, "create", "update", "patch")
MANAGE = (*ROLL, "delete")
# The CI deployer's whole Kubernetes power, in the application namespace only: no Secrets, no RBAC,
# nothing cluster-wide. Deployments/CronJobs are rolled (never deleted), the rest of a service's render
# is managed, pods/events/replicasets are read for rollout tracking, the service proxy for smoke checks,
# Leases for the deploy lock, ConfigMaps also for deploy history. ServiceAccounts and NetworkPolicies
# ship in every service's kustomize base, so a server-side apply of the render needs them too.
CI_RULES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("apps", ("deployments",), ROLL),
    ("batch", ("cronjobs",), ROLL),
    ("apps", ("replicasets",), READ),
    ("", ("pods", "events"), READ),
    ("", ("services", "configmaps", "serviceaccounts"), MANAGE),
    ("", ("services/proxy",), ("get",)),
    ("networking.k8s.io", ("ingresses", "networkpolicies"), MANAGE),
    ("autoscaling", ("horizontalpodautoscalers",), MANAGE),
    ("policy", ("poddisruptionbudgets",), MANAGE),
    ("coordination.k8s.io", ("leases",), MANAGE),
)

# What `pulumi up` of this program touches, by service; mutating IAM is limited to the account's roles,
# policies and OIDC providers. Describe/List/Get calls are read-only.
PULUMI_DEPLOYER_ACTIONS = {
    "ec2": ["Describe*", "Get*", "Create*", "Delete*", "Modify*", "Associate*", "Disassociate*", "Attach*",
            "Detach*", "Allocate*", "Release*", "Replace*", "Authorize*", "Revoke*", "RunInstances",
            "TerminateInstances", "StartInstances", "StopInstances"],
    "eks": ["Describe*", "List*", "Create*", "Delete*", "Update*", "Associate*", "Disassociate*", "TagResource",
            "UntagResource"],
    "kms": ["Describe*", "List*", "Get*", "CreateKey", "CreateAlias", "DeleteAlias", "UpdateAlias", "EnableKeyRotation",
            "ScheduleKeyDeletion", "PutKeyPolicy", "CreateGrant", "TagResource", "UntagResource", "Encrypt", "Decrypt",
            "GenerateDataKey*"],
    "logs": ["Describe*", "List*", "CreateLogGroup", "DeleteLogGroup", "PutRetentionPolicy", "TagResource",
             "UntagResource", "TagLogGroup"],
    "secretsmanager": ["Describe*", "List*", "GetResourcePolicy", "CreateSecret", "DeleteSecret", "UpdateSecret",
                       "TagResource", "UntagResource", "RotateSecret", "CancelRotateSecret", "PutResourcePolicy"],
    "lambda": ["Get*", "List*", "CreateFunction", "DeleteFunction", "UpdateFunction*", "AddPermission",
               "RemovePermission", "InvokeFunction", "TagResource", "UntagResource"],
    "sns": ["Get*", "List*", "CreateTopic", "DeleteTopic", "SetTopicAttributes", "Subscribe", "Unsubscribe",
            "TagResource", "UntagResource"],
    "cloudwatch": ["Describe*", "List*", "PutMetricAlarm", "DeleteAlarms", "TagResource", "UntagResource"],
    "events": ["Describe*", "List*", "PutRule", "DeleteRule", "PutTargets", "RemoveTargets", "EnableRule",
               "DisableRule", "TagResource", "UntagResource"],
    "autoscaling": ["Describe*", "CreateOrUpdateTags", "DeleteTags"],
    "ssm": ["GetParameter", "GetParameters"],
    "acm": ["Describe*", "List*", "Get*", "RequestCertificate", "DeleteCertificate", "AddTagsToCertificate",
            "RemoveTagsFromCertificate", "UpdateCertificateOptions"],
    "route53": ["Get*", "List*", "ChangeResourceRecordSets"],
}
PULUMI_DEPLOYER_IAM = ["Get*", "List*", "CreateRole", "DeleteRole", "UpdateRole", "UpdateAssumeRolePolicy",
                       "TagRole", "UntagRole", "PutRolePolicy", "DeleteRolePolicy", "AttachRolePolicy",
                       "DetachRolePolicy", "PassRole", "CreatePolicy", "DeletePolicy", "CreatePolicyVersion",
                       "DeletePolicyVersion", "TagPolicy", "CreateOpenIDConnectProvider",
                       "DeleteOpenIDConnectProvider", "UpdateOpenIDConnectProviderThumbprint",
                       "TagOpenIDConnectProvider", "AddClientIDToOpenIDConnectProvider", "CreateInstanceProfile",
                       "DeleteInstanceProfile", "AddRoleToInstanceProfile", "RemoveRoleFromInstanceProfile",
                       "CreateServiceLinkedRole"]


def github_trust_policy(provider_arn: str, subject: str) -> str:
    """Trust for exactly one repository + GitHub environment, audience STS; no wildcards anywhere."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{GITHUB_ISSUER}:aud": STS_AUDIENCE, f"{GITHUB_ISSUER}:sub": subject}},
    }]})


def _iam_resources(account: str) -> list[str]:
    return [f"arn:aws:iam::{account}:{kind}/*" for kind in ("role", "policy", "oidc-provider", "instance-profile")]


def pulumi_deployer_policy(account: str) -> str:
    iam = _iam_resources(account)
    statements = [{"Sid": service.title(), "Effect": "Allow",
                   "Action": [f"{service}:{action}" for action in actions], "Resource": "*"}
                  for service, actions in PULUMI_DEPLOYER_ACTIONS.items()]
    statements.append({"Sid": "Iam", "Effect": "Allow", "Action": [f"iam:{action}" for action in PULUMI_DEPLOYER_IAM],
                       "Resource": iam})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def _reads(service: str, actions: list[str]) -> list[str]:
    return [f"{service}:{action}" for action in actions if action.startswith(("Describe", "List", "Get"))
            and action not in ("GetParameter", "GetParameters")]


def pulumi_previewer_policy(account: str) -> str:
    """Read what `pulumi preview` refreshes: the deployer's Describe/List/Get actions, never a secret value."""
    reads = sorted(action for service, actions in PULUMI_DEPLOYER_ACTIONS.items() for action in _reads(service, actions))
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadForPreview", "Effect": "Allow", "Action": reads, "Resource": "*"},
        {"Sid": "ReadIam", "Effect": "Allow", "Action": _reads("iam", PULUMI_DEPLOYER_IAM),
         "Resource": _iam_resources(account)}]})


def ci_deployer_policy(account: str, region: str, cluster_name: str) -> str:
    """Find the cluster and push images; everything else it does goes through Kubernetes RBAC."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "DescribeCluster", "Effect": "Allow", "Action": "eks:DescribeCluster",
         "Resource": f"arn:aws:eks:{region}:{account}:cluster/{cluster_name}"},
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Sid": "EcrPush", "Effect": "Allow", "Action": [
            "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
            "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage",
            "ecr:UploadLayerPart"],
         "Resource": f"arn:aws:ecr:{region}:{account}:repository/*"},
    ]})


@dataclass(frozen=True)
class Principal:
    """One IAM role's Kubernetes identity, rendered either as an aws-auth entry or as an access entry."""

    key: str
    role_arn: pulumi.Input[str]
    username: str
    groups: list[str] = field(default_factory=list)
    admin: bool = False

    def aws_auth_entry(self, arn: str) -> dict[str, Any]:
        groups = [*self.groups, *([ADMIN_GROUP] if self.admin and ADMIN_GROUP not in self.groups else [])]
        return {"rolearn": without_path(arn), "username": self.username, "groups": groups}

    @property
    def entry_groups(self) -> list[str]:
        """Access entries refuse `system:*` groups: admins get the cluster-admin access policy instead."""
        return [group for group in self.groups if not group.startswith("system:")]


def role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def principal_key(kind: str, arn: str) -> str:
    """Resource name from the ARN, not the list position: reordering config never replaces an access entry."""
    return f"{kind}-{role_name(arn)}-{hashlib.sha1(arn.encode()).hexdigest()[:6]}"


def creator_key(creator_arn: str, env: str) -> str | None:
    """The principal key of a program-made role when it is the cluster's creator (its ARN is computed at up)."""
    return "pulumi-deployer" if role_name(creator_arn) == f"eks-platform-{env}-pulumi-deployer" else None


def render_aws_auth(entries: list[dict[str, Any]]) -> str:
    """mapRoles as the YAML list the aws-iam-authenticator reads (JSON is YAML, and diffs stay exact)."""
    return "\n".join(f"- {json.dumps(entry, sort_keys=True)}" for entry in entries) + "\n"


@dataclass(frozen=True)
class AccessArgs:
    config: StackConfig
    kubeconfig: pulumi.Input[Any]
    node_role_arns: list[pulumi.Input[str]]
    tags: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class Access(pulumi.ComponentResource):
    """CI deployer and pulumi-deployer roles, cluster mappings for the stack's auth mode, namespaced RBAC."""

    def __init__(self, name: str, args: AccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:access:Access", name, None, opts)
        cfg, access = args.config, args.config.access
        self.namespace = app_namespace(cfg.env)
        self._child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        self.principals: list[Principal] = []
        self.ci_role_arn: pulumi.Output[str] | None = None
        self.pulumi_deployer_role_arn: pulumi.Output[str] | None = None
        self.pulumi_previewer_role_arn: pulumi.Output[str] | None = None
        if access.github:
            provider_arn = self._github_provider(name, cfg, args.tags)
            ci_role = self._role(f"{name}-ci-deployer", f"eks-platform-{cfg.env}-ci-deployer", provider_arn,
                                 access.github.subject(access.github.deploy_environment), args.tags)
            aws.iam.RolePolicy(f"{name}-ci-deployer", role=ci_role.name, opts=self._child,
                               policy=account.apply(lambda acct: ci_deployer_policy(acct, cfg.region,
                                                                                    cfg.cluster.name)))
            deployer = self._role(f"{name}-pulumi-deployer", f"eks-platform-{cfg.env}-pulumi-deployer", provider_arn,
                                  access.github.subject(access.github.infra_environment), args.tags)
            aws.iam.RolePolicy(f"{name}-pulumi-deployer", role=deployer.name, opts=self._child,
                               policy=account.apply(pulumi_deployer_policy))
            self.ci_role_arn, self.pulumi_deployer_role_arn = ci_role.arn, deployer.arn
            # Pull-request previews (infra workflow): read-only, trusted from the repository's pull requests only.
            previewer = self._role(f"{name}-pulumi-previewer", f"eks-platform-{cfg.env}-pulumi-previewer",
                                   provider_arn, f"repo:{access.github.repository}:pull_request", args.tags)
            aws.iam.RolePolicy(f"{name}-pulumi-previewer", role=previewer.name, opts=self._child,
                               policy=account.apply(pulumi_previewer_policy))
            self.pulumi_previewer_role_arn = previewer.arn
            self.principals.append(Principal("ci-deployer", ci_role.arn, CI_USER, [CI_GROUP]))
            if access.pulumi_deployer_cluster_admin:
                self.principals.append(Principal("pulumi-deployer", deployer.arn, PULUMI_DEPLOYER_USER, admin=True))
        mapped = {mapping.role_arn: mapping for mapping in access.role_mappings}
        for arn in access.admin_role_arns:
            extra = mapped.pop(arn, None)
            self.principals.append(Principal(principal_key("admin", arn), arn,
                                             extra.username if extra else f"admin:{role_name(arn)}",
                                             [g for g in (extra.groups if extra else []) if g != ADMIN_GROUP],
                                             admin=True))
        for mapping in mapped.values():
            self.principals.append(Principal(principal_key("role", mapping.role_arn), mapping.role_arn,
                                             mapping.username, list(mapping.groups)))
        self.provider = k8s.Provider(f"{name}-k8s", kubeconfig=pulumi.Output.from_input(args.kubeconfig).apply(
            lambda value: value if isinstance(value, str) else json.dumps(value, sort_keys=True)), opts=self._child)
        self._name, self._depends_on = name, list(args.depends_on)
        self._creator, self._env = access.cluster_creator_arn, cfg.env
        if access.uses_config_map:
            self._aws_auth(name, args.node_role_arns, pulumi.ResourceOptions(
                parent=self, provider=self.provider, depends_on=self._depends_on))
        if access.uses_access_entries:
            self._access_entries(name, cfg.cluster.name, args.tags, args.depends_on)
        self.register_outputs({"ciRoleArn": self.ci_role_arn, "pulumiDeployerRoleArn": self.pulumi_deployer_role_arn})

    def _github_provider(self, name: str, cfg: StackConfig, tags: dict[str, str]) -> pulumi.Input[str]:
        """GitHub's OIDC provider is one per account: reuse the configured one when another stack owns it."""
        github = cfg.access.github
        if github.oidc_provider_arn:
            return github.oidc_provider_arn
        provider = aws.iam.OpenIdConnectProvider(
            f"{name}-github", url=f"https://{GITHUB_ISSUER}", client_id_lists=[STS_AUDIENCE], tags=tags,
            opts=self._child)
        return provider.arn

    def _role(self, resource: str, role_name: str, provider_arn: pulumi.Input[str], subject: str,
              tags: dict[str, str]) -> aws.iam.Role:
        return aws.iam.Role(resource, name=role_name, max_session_duration=3600, tags=tags, opts=self._child,
                            assume_role_policy=pulumi.Output.from_input(provider_arn).apply(
                                lambda arn: github_trust_policy(arn, subject)))

    def _aws_auth(self, name: str, node_role_arns: list[pulumi.Input[str]], opts: pulumi.ResourceOptions) -> None:
        """aws-auth mapRoles owned by the program (server-side apply, forced): node roles first, then principals.

        EKS and pulumi-eks write the ConfigMap too; the patch takes the field over so a hand edit or an empty
        write is put back on the next `pulumi up`.
        """
        arns = pulumi.Output.all(*node_role_arns, *(p.role_arn for p in self.principals))

        def map_roles(resolved: list[str]) -> str:
            nodes, principals = resolved[:len(node_role_arns)], resolved[len(node_role_arns):]
            entries = [{"rolearn": arn, "username": "system:node:{{EC2PrivateDNSName}}", "groups": NODE_GROUPS}
                       for arn in dict.fromkeys(nodes)]
            entries += [p.aws_auth_entry(arn) for p, arn in zip(self.principals, principals, strict=True)]
            return render_aws_auth(entries)

        k8s.core.v1.ConfigMapPatch(
            f"{name}-aws-auth", metadata=k8s.meta.v1.ObjectMetaPatchArgs(
                name="aws-auth", namespace="kube-system",
                annotations={"pulumi.com/patchForce": "true"},
                labels={"app.kubernetes.io/managed-by": "pulumi"}),
            data={"mapRoles": arns.apply(map_roles)}, opts=opts)

    def _access_entries(self, name: str, cluster_name: str, tags: dict[str, str],
                        depends_on: list[pulumi.Resource]) -> None:
        opts = pulumi.ResourceOptions(parent=self, depends_on=depends_on)
        creator = self._creator
        for principal in self.principals:
            if creator and (principal.role_arn == creator or principal.key == creator_key(creator, self._env)):
                continue  # EKS made the creator's cluster-admin entry at CreateCluster; a second one is a 409
            entry = aws.eks.AccessEntry(
                f"{name}-{principal.key}", cluster_name=cluster_name, principal_arn=principal.role_arn,
                type="STANDARD", user_name=principal.username,
                kubernetes_groups=principal.entry_groups or None, tags=tags, opts=opts)
            if principal.admin:
                aws.eks.AccessPolicyAssociation(
                    f"{name}-{principal.key}-admin", cluster_name=cluster_name, principal_arn=entry.principal_arn,
                    policy_arn=ADMIN_POLICY,
                    access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[entry]))

    def grant_ci(self, namespace: pulumi.Resource | None = None) -> None:
        """The CI group's Role and RoleBinding in the app namespace; called once that namespace is declared."""
        name = self._name
        opts = pulumi.ResourceOptions(parent=self, provider=self.provider,
                                      depends_on=[*self._depends_on, *([namespace] if namespace else [])])
        metadata = k8s.meta.v1.ObjectMetaArgs(name="ci-deployer", namespace=self.namespace,
                                              labels={"app.kubernetes.io/managed-by": "pulumi"})
        role = k8s.rbac.v1.Role(f"{name}-ci-deployer", metadata=metadata, rules=[
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[group], resources=list(resources), verbs=list(verbs))
            for group, resources, verbs in CI_RULES], opts=opts)
        k8s.rbac.v1.RoleBinding(
            f"{name}-ci-deployer", metadata=metadata,
            role_ref=k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="Role", name="ci-deployer"),
            subjects=[k8s.rbac.v1.SubjectArgs(kind="Group", name=CI_GROUP, api_group="rbac.authorization.k8s.io")],
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[role])))
