"""The `access` section: cluster authentication mode, GitHub CI identities, admins and role mappings."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from infra.sections.base import PROJECT, ConfigIssue, Section, Switch

if TYPE_CHECKING:
    from infra.config import StackConfig

_ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
_OIDC_PROVIDER_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$")
_GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_GITHUB_ENVIRONMENT = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_KUBE_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,62}$")

AuthMode = Literal["CONFIG_MAP", "API_AND_CONFIG_MAP", "API"]
# EKS moves a cluster's authentication mode only forward along this order, never back.
AUTH_MODES: tuple[str, ...] = ("CONFIG_MAP", "API_AND_CONFIG_MAP", "API")
ADMIN_GROUP = "system:masters"


def _role_arn(value: str) -> str:
    if not _ROLE_ARN.match(value):
        raise ValueError(f"{value!r} is not an IAM role ARN; write it like arn:aws:iam::123456789012:role/name")
    return value


RoleArn = Annotated[str, AfterValidator(_role_arn)]


def without_path(arn: str) -> str:
    """aws-auth matches the ARN of the assumed-role session, which has no IAM path; access entries keep it."""
    head, _, rest = arn.partition(":role/")
    return f"{head}:role/{rest.rsplit('/', 1)[-1]}" if rest else arn


class RoleMapping(Section):
    """An extra IAM role mapped to a Kubernetes user and groups (aws-auth entry or access entry)."""

    role_arn: RoleArn
    username: str = Field(min_length=1, max_length=128)
    groups: list[str] = Field(min_length=1)

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        for group in value:
            if not _KUBE_GROUP.match(group):
                raise ValueError(f"{group!r} is not a Kubernetes group name; use letters, digits, ':', '.', '_', '-'")
            if group.startswith("system:") and group != ADMIN_GROUP:
                raise ValueError(f"group {group} is reserved for Kubernetes and EKS (nodes are mapped by EKS itself); "
                                 f"bind a group of your own with RBAC instead")
        return value


class GitHubConfig(Section):
    """The repository whose workflows may assume the CI roles, and the GitHub environments they must run in."""

    org: str
    repo: str
    deploy_environment: str
    infra_environment: str
    # Pull-request previews run here (default preview-<env>): give it required reviewers, so PR code gets the
    # read-only preview credentials only after someone looked at it.
    preview_environment: str | None = None
    oidc_provider_arn: str | None = None

    @field_validator("org")
    @classmethod
    def _org(cls, value: str) -> str:
        if not _GITHUB_OWNER.match(value):
            raise ValueError(f"{value!r} is not a GitHub organization or user name; use up to 39 letters, digits and "
                             f"single '-', not at the start or end")
        return value

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not _GITHUB_REPO.match(value) or value in (".", "..") or value.lower().endswith(".git"):
            raise ValueError(f"{value!r} is not a GitHub repository name; use the bare name (letters, digits, '.', "
                             f"'_', '-'; no owner, no .git, no wildcards)")
        return value

    @field_validator("deploy_environment", "infra_environment", "preview_environment")
    @classmethod
    def _environment(cls, value: str | None) -> str | None:
        if value is not None and not _GITHUB_ENVIRONMENT.match(value):
            raise ValueError(f"{value!r} is not a GitHub environment name the trust policy can pin; use letters, "
                             f"digits, '.', '_', '-' (no wildcards, spaces or ':')")
        return value

    @field_validator("oidc_provider_arn")
    @classmethod
    def _provider(cls, value: str | None) -> str | None:
        if value is not None and not _OIDC_PROVIDER_ARN.match(value):
            raise ValueError(f"{value!r} is not the ARN of GitHub's OIDC provider; write it like "
                             f"arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> GitHubConfig:
        if self.preview_environment and self.preview_environment in (self.infra_environment, self.deploy_environment):
            raise ValueError(f"preview_environment {self.preview_environment!r} is also a deploy environment, so pull "
                             f"requests could assume a role that changes the stack; give previews their own environment")
        return self

    @property
    def repository(self) -> str:
        return f"{self.org}/{self.repo}"

    def subject(self, environment: str) -> str:
        """The exact `sub` claim of a job running in one GitHub environment of the repository."""
        return f"repo:{self.repository}:environment:{environment}"


class AccessConfig(Section):
    """Who may reach the cluster: auth mode, the CI roles' GitHub trust, admin roles, extra mappings."""

    authentication_mode: AuthMode = "API_AND_CONFIG_MAP"
    github: GitHubConfig | None = None
    admin_role_arns: list[RoleArn] = Field(default_factory=list)
    pulumi_deployer_cluster_admin: Switch = False
    role_mappings: list[RoleMapping] = Field(default_factory=list)
    # The IAM role that runs the stack's first `pulumi up`. EKS gives the creator a cluster-admin access entry on
    # its own (pulumi-eks always sets bootstrapClusterCreatorAdminPermissions), so the program declares none for it:
    # a second entry for one principal fails with 409. `invoke up` refuses a first up run by another principal.
    cluster_creator_arn: RoleArn | None = None

    @model_validator(mode="after")
    def _mappings(self) -> AccessConfig:
        for index, mapping in enumerate(self.role_mappings):
            if ADMIN_GROUP in mapping.groups and mapping.role_arn not in self.admin_role_arns:
                raise ValueError(f"role_mappings[{index}] maps {mapping.role_arn} to {ADMIN_GROUP}, which only the "
                                 f"configured admin roles get; bind a namespaced group with RBAC instead, or list the "
                                 f"role in admin_role_arns if it really is the cluster admin")
        return self

    @property
    def uses_config_map(self) -> bool:
        return self.authentication_mode != "API"

    @property
    def uses_access_entries(self) -> bool:
        return self.authentication_mode != "CONFIG_MAP"


# Roles the program itself creates and maps (infra/components/access.py names them eks-platform-<env>-<what>).
PROGRAM_ROLES = ("ci-deployer", "pulumi-deployer", "pulumi-previewer")


def role_identity(arn: str) -> tuple[str, str]:
    """(account, role name) of a role ARN. IAM role names are unique in an account whatever their path, and "names
    are not distinguished by case" (IAM CreateRole, RoleName; checked 2026-12-05): two ARNs with the same identity
    name one role."""
    head, _, rest = arn.partition(":role/")
    return head.rsplit(":", 1)[0].rsplit(":", 1)[-1], rest.rsplit("/", 1)[-1].lower()


def principal_issues(env: str, access: AccessConfig) -> list[ConfigIssue]:
    """Every IAM role gets at most one access entry and one aws-auth mapping: EKS refuses a second entry for one
    principal (409 ResourceInUseException) and made one for the cluster's creator already (pulumi-eks sets
    bootstrapClusterCreatorAdminPermissions). An admin role listed in role_mappings with the same ARN is one
    principal (the mapping gives it its username and groups); under another path or case it would be two."""
    key = f"{PROJECT}:access"
    issues: list[ConfigIssue] = []
    admins: dict[tuple[str, str], tuple[str, str]] = {}
    mapped: dict[tuple[str, str], tuple[str, str]] = {}

    def other(arn: str, before: str) -> str:
        return "" if arn == before else f" as {before}: a role's path and case do not make it another role"

    for index, arn in enumerate(access.admin_role_arns):
        where, role = f"{key}.admin_role_arns[{index}]", role_identity(arn)
        if role in admins:
            first, before = admins[role]
            issues.append(ConfigIssue(key=where, problem=(
                f"{arn} is listed twice (also {first.removeprefix(key + '.')}{other(arn, before)}); EKS refuses a "
                f"second access entry for one principal (409): keep one")))
        admins.setdefault(role, (where, arn))
    for index, mapping in enumerate(access.role_mappings):
        where, arn, role = f"{key}.role_mappings[{index}].role_arn", mapping.role_arn, role_identity(mapping.role_arn)
        if role in mapped:
            first, before = mapped[role]
            issues.append(ConfigIssue(key=where, problem=(
                f"maps {arn} twice (also {first.removeprefix(key + '.')}{other(arn, before)}); merge the entries")))
        elif role in admins and admins[role][1] != arn:
            first, before = admins[role]
            issues.append(ConfigIssue(key=where, problem=(
                f"{arn} is the admin role {before} ({first.removeprefix(key + '.')}) under another path or case, so "
                f"it would get a second entry (409); write the same ARN in both (they merge) or remove one")))
        mapped.setdefault(role, (where, arn))
    creator = access.cluster_creator_arn
    listed = (admins.get(role_identity(creator)) or mapped.get(role_identity(creator))) if creator else None
    if creator and listed and listed[1] != creator:
        issues.append(ConfigIssue(key=f"{key}.cluster_creator_arn", problem=(
            f"{creator} is {listed[1]} ({listed[0].removeprefix(key + '.')}) under another path or case; EKS "
            f"already gives the creator an entry, and the program skips only the exact ARN: write the same ARN")))
    own = {f"eks-platform-{env}-{what}": what for what in PROGRAM_ROLES}
    for where, arn in [*admins.values(), *mapped.values()]:
        what = own.get(arn.rsplit("/", 1)[-1])
        if what:
            fix = ("set access.pulumi_deployer_cluster_admin: true instead" if what == "pulumi-deployer"
                   else "the program maps it already; remove it here")
            issues.append(ConfigIssue(key=where, problem=(
                f"{arn} is the {what} role this stack creates and maps itself; a second entry fails with 409: {fix}")))
    return issues


def check_auth_mode_history(cfg: StackConfig, deployed: str | None) -> list[ConfigIssue]:
    """Refuse moving the cluster's authentication mode backwards (EKS cannot), given the deployed mode."""
    wanted = cfg.access.authentication_mode
    if deployed not in AUTH_MODES or AUTH_MODES.index(wanted) >= AUTH_MODES.index(deployed):
        return []
    return [ConfigIssue(key=f"{PROJECT}:access.authentication_mode", problem=(
        f"goes back from {deployed} to {wanted}, which EKS does not allow; keep {deployed} "
        f"(`invoke access.migrate --env {cfg.env}` only moves forward)"))]
