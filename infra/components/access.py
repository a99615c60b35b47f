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
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from infra.components import iam
from infra.config import ADMIN_GROUP, GitHubConfig, StackConfig, app_namespace, without_path

GITHUB_ISSUER = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
CI_GROUP = "eks-platform:ci-deployers"
CI_USER = "ci-deployer"
PULUMI_DEPLOYER_USER = "pulumi-deployer"
PULUMI_PREVIEWER_USER = "pulumi-previewer"
ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"

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


def github_trust_policy(provider_arn: str, subject: str) -> str:
    """Trust for exactly one repository + GitHub environment, audience STS; no wildcards anywhere."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{GITHUB_ISSUER}:aud": STS_AUDIENCE, f"{GITHUB_ISSUER}:sub": subject}},
    }]})


def ci_deployer_policy(account: str, region: str, cluster_name: str, env: str) -> str:
    """Find the cluster and push images to this stack's repositories; everything else goes through Kubernetes RBAC."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "DescribeCluster", "Effect": "Allow", "Action": "eks:DescribeCluster",
         "Resource": f"arn:aws:eks:{region}:{account}:cluster/{cluster_name}"},
        {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Sid": "EcrPush", "Effect": "Allow", "Action": [
            "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
            "ecr:DescribeImages", "ecr:DescribeRepositories", "ecr:GetDownloadUrlForLayer",
            "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart"],
         "Resource": f"arn:aws:ecr:{region}:{account}:repository/{iam.PROJECT}/{env}/*"},
    ]})


@dataclass(frozen=True)
class Principal:
    """One IAM role's Kubernetes identity, rendered either as an aws-auth entry or as an access entry."""

    key: str
    role_arn: pulumi.Input[str]
    username: str
    groups: list[str] = field(default_factory=list)
    admin: bool = False

    @property
    def aws_auth_groups(self) -> list[str]:
        return [*self.groups, *([ADMIN_GROUP] if self.admin and ADMIN_GROUP not in self.groups else [])]

    def role_mapping(self) -> eks.RoleMappingArgs:
        """aws-auth entry for pulumi-eks' ConfigMap: the ARN without its IAM path (what the authenticator matches)."""
        return eks.RoleMappingArgs(role_arn=pulumi.Output.from_input(self.role_arn).apply(without_path),
                                   username=self.username, groups=self.aws_auth_groups)

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


@dataclass(frozen=True)
class AccessArgs:
    config: StackConfig
    tags: dict[str, str]


class Access(pulumi.ComponentResource):
    """Boundaries, CI roles and the stack's role scope; then (bind) access entries and the Kubernetes provider."""

    def __init__(self, name: str, args: AccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("eks-platform:access:Access", name, None, opts)
        cfg, access = args.config, args.config.access
        self.config, self.tags = cfg, args.tags
        self.namespace = app_namespace(cfg.env)
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self)).account_id
        zone = cfg.edge.zone_id if cfg.edge else None
        stack = account.apply(lambda acct: iam.Stack(cfg.env, cfg.region, acct, cfg.cluster.name, zone))
        self.ci_boundary = self._boundary(f"{name}-ci-boundary", f"eks-platform-{cfg.env}-ci-boundary",
                                          stack.apply(iam.ci_boundary))
        self.workload_boundary = self._boundary(
            f"{name}-workload-boundary", f"eks-platform-{cfg.env}-workload-boundary",
            account.apply(lambda acct: iam.workload_boundary(cfg.env, cfg.region, acct, zone)))
        # Every role declared from here on lives under the stack path with the workload boundary.
        iam.set_scope(iam.RoleScope(iam.role_path(cfg.env), self.workload_boundary.arn))
        self.principals: list[Principal] = []
        self.ci_role_arn: pulumi.Output[str] | None = None
        self.pulumi_deployer_role_arn: pulumi.Output[str] | None = None
        self.pulumi_previewer_role_arn: pulumi.Output[str] | None = None
        if access.github:
            github = access.github
            provider_arn = self._github_provider(name, github, args.tags)
            ci_role = self._role(f"{name}-ci-deployer", f"eks-platform-{cfg.env}-ci-deployer", provider_arn,
                                 github.subject(github.deploy_environment),
                                 account.apply(lambda acct: ci_deployer_policy(acct, cfg.region, cfg.cluster.name,
                                                                               cfg.env)))
            deployer = self._role(f"{name}-pulumi-deployer", f"eks-platform-{cfg.env}-pulumi-deployer", provider_arn,
                                  github.subject(github.infra_environment),
                                  pulumi.Output.all(stack, self.workload_boundary.arn).apply(
                                      lambda values: iam.deployer_policy(*values)))
            # Pull-request previews run in their own GitHub environment (reviewers approve before it hands out
            # credentials); the role can read what `pulumi preview` reads and nothing else.
            previewer = self._role(f"{name}-pulumi-previewer", f"eks-platform-{cfg.env}-pulumi-previewer",
                                   provider_arn, github.subject(github.preview_environment or f"preview-{cfg.env}"),
                                   stack.apply(iam.previewer_policy))
            self.ci_role_arn, self.pulumi_deployer_role_arn = ci_role.arn, deployer.arn
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
        self.provider: k8s.Provider | None = None
        self._depends_on: list[pulumi.Resource] = []
        self.register_outputs({"ciRoleArn": self.ci_role_arn, "pulumiDeployerRoleArn": self.pulumi_deployer_role_arn})

    def role_mappings(self) -> list[eks.RoleMappingArgs] | None:
        """What pulumi-eks writes into aws-auth (it owns that ConfigMap in CONFIG_MAP modes); None in API mode.

        Managed node groups need no entry: with access entries enabled EKS creates theirs (EC2_LINUX) itself.
        """
        if not self.config.access.uses_config_map:
            return None
        return [principal.role_mapping() for principal in self.principals]

    def bind(self, kubeconfig: pulumi.Input[Any], depends_on: list[pulumi.Resource]) -> k8s.Provider:
        """Once the cluster exists: access entries (API modes) and the Kubernetes provider everything else uses."""
        self._depends_on = list(depends_on)
        self.provider = k8s.Provider(f"{self._name}-k8s", kubeconfig=pulumi.Output.from_input(kubeconfig).apply(
            lambda value: value if isinstance(value, str) else json.dumps(value, sort_keys=True)), opts=self._child)
        if self.config.access.uses_access_entries:
            self._access_entries(self._name, self.config.cluster.name, self.tags, self._depends_on)
        return self.provider

    def _boundary(self, resource: str, name: str, document: pulumi.Input[str]) -> aws.iam.Policy:
        return aws.iam.Policy(resource, name=name, path=iam.ci_path(self.config.env), policy=document,
                              description="permissions boundary (ceiling, not a grant) of eks-platform roles",
                              tags={**self.tags, iam.PURPOSE_TAG: iam.BOUNDARY}, opts=self._child)

    def _github_provider(self, name: str, github: GitHubConfig, tags: dict[str, str]) -> pulumi.Input[str]:
        """GitHub's OIDC provider is one per account: reuse the configured one when another stack owns it."""
        if github.oidc_provider_arn:
            return github.oidc_provider_arn
        provider = aws.iam.OpenIdConnectProvider(
            f"{name}-github", url=f"https://{GITHUB_ISSUER}", client_id_lists=[STS_AUDIENCE], tags=tags,
            opts=self._child)
        return provider.arn

    def _role(self, resource: str, role_name: str, provider_arn: pulumi.Input[str], subject: str,
              policy: pulumi.Input[str]) -> aws.iam.Role:
        """A CI role: under the CI path (out of the deployer's reach), capped by the CI boundary, one inline policy."""
        role = aws.iam.Role(resource, name=role_name, path=iam.ci_path(self.config.env), max_session_duration=3600,
                            permissions_boundary=self.ci_boundary.arn, tags=self.tags, opts=self._child,
                            assume_role_policy=pulumi.Output.from_input(provider_arn).apply(
                                lambda arn: github_trust_policy(arn, subject)))
        aws.iam.RolePolicy(resource, role=role.name, policy=policy, opts=self._child)
        return role

    def _access_entries(self, name: str, cluster_name: str, tags: dict[str, str],
                        depends_on: list[pulumi.Resource]) -> None:
        opts = pulumi.ResourceOptions(parent=self, depends_on=depends_on)
        creator = self.config.access.cluster_creator_arn
        for principal in self.principals:
            if creator and (principal.role_arn == creator or
                            principal.key == creator_key(creator, self.config.env)):
                continue  # EKS made the creator's cluster-admin entry at CreateCluster; a second one is a 409
            entry = aws.eks.AccessEntry(
                f"{name}-{principal.key}", cluster_name=cluster_name, principal_arn=principal.role_arn,
                type="STANDARD", user_name=principal.username,
                kubernetes_groups=principal.entry_groups or None, tags=tags, opts=opts)
            if principal.admin:
                self._associate(f"{name}-{principal.key}-admin", cluster_name, entry, ADMIN_POLICY)
        if self.pulumi_previewer_role_arn is not None:
            # `pulumi preview` diffs Kubernetes resources against the live cluster: read access, nothing more.
            entry = aws.eks.AccessEntry(
                f"{name}-pulumi-previewer", cluster_name=cluster_name, principal_arn=self.pulumi_previewer_role_arn,
                type="STANDARD", user_name=PULUMI_PREVIEWER_USER, tags=tags, opts=opts)
            self._associate(f"{name}-pulumi-previewer-view", cluster_name, entry, VIEW_POLICY)

    def _associate(self, resource: str, cluster_name: str, entry: aws.eks.AccessEntry, policy: str) -> None:
        aws.eks.AccessPolicyAssociation(
            resource, cluster_name=cluster_name, principal_arn=entry.principal_arn, policy_arn=policy,
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
