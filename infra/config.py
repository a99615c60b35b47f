"""Typed, validated stack configuration read from Pulumi config (`Pulumi.<env>.yaml`).

Everything is validated before a single resource is declared, and every problem is reported at
once with the config key that holds it and how to fix it, so a typo never costs a `pulumi up`.
This module never imports pulumi: ops engines and tasks read the same StackConfig from the file.
"""
from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError,
                      field_validator, model_validator)

from infra.versions import KubeVersion, skew_problem, supported_range

PROJECT = "eks-platform"
ROOT = Path(__file__).resolve().parent.parent

AmiType = Literal["AL2_x86_64", "AL2_ARM_64", "AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD",
                  "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64"]
LogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]
ADDONS = ("vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver")

_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$|^[a-z]$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
_INSTANCE = re.compile(r"^([a-z]+)(\d+)([a-z-]*)\.(nano|micro|small|medium|large|\d*xlarge|metal(-\d+xl)?)$")
_ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_CLOUDWATCH_RETENTION = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                         2557, 2922, 3288, 3653)


class ConfigIssue(BaseModel):
    """One problem in the stack config: where it is, what is wrong, and what to do."""

    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}"


class ConfigError(Exception):
    """All problems found in one stack config, reported together."""

    def __init__(self, source: str, issues: list[ConfigIssue]):
        self.source = source
        self.issues = issues
        super().__init__(self.render())

    def render(self) -> str:
        if len(self.issues) == 1:
            return f"{self.source}: {self.issues[0]}"
        lines = [f"{self.source}: {len(self.issues)} config problems:"]
        lines += [f"  {issue}" for issue in self.issues]
        return "\n".join(lines)


def _version(value: Any) -> str:
    version = KubeVersion.parse(value)
    if not version.supported:
        raise ValueError(f"Kubernetes {version} is outside the supported range {supported_range()}; "
                         f"pick a version in that range")
    return str(version)


Version = Annotated[str, AfterValidator(_version)]


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name; use 1-16 lowercase letters, digits and '-', "
                         f"starting with a letter")
    return value


Name = Annotated[str, AfterValidator(_name)]


class Section(BaseModel):
    """Strict base: unknown keys are typos, and config never changes after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkConfig(Section):
    """VPC CIDR and the AZs to spread subnets over; subnets are carved deterministically."""

    cidr: ipaddress.IPv4Network
    azs: list[str] = Field(min_length=1, max_length=6)
    private_subnet_prefix: int = Field(19, ge=16, le=27)
    public_subnet_prefix: int = Field(24, ge=16, le=28)

    @field_validator("cidr", mode="before")
    @classmethod
    def _strict_cidr(cls, value: Any) -> Any:
        try:
            return ipaddress.IPv4Network(str(value), strict=True)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a well-formed IPv4 CIDR ({exc}); write it like 10.10.0.0/16") from None

    @field_validator("cidr")
    @classmethod
    def _private_range(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not value.is_private:
            raise ValueError(f"{value} is not a private (RFC 1918) range; use one inside 10.0.0.0/8, "
                             f"172.16.0.0/12 or 192.168.0.0/16")
        if not 16 <= value.prefixlen <= 24:
            raise ValueError(f"/{value.prefixlen} is outside what a VPC allows; use a prefix from /16 to /24")
        return value

    @field_validator("azs")
    @classmethod
    def _unique_azs(cls, value: list[str]) -> list[str]:
        duplicates = sorted({az for az in value if value.count(az) > 1})
        if duplicates:
            raise ValueError(f"AZs listed twice: {', '.join(duplicates)}; list each AZ once")
        return value

    @model_validator(mode="after")
    def _subnets_fit(self) -> NetworkConfig:
        subnet_plan(self)
        return self


def subnet_plan(network: NetworkConfig) -> dict[str, tuple[str, str]]:
    """AZ -> (public CIDR, private CIDR): private subnets from the bottom, public from the top.

    Deterministic, so adding an AZ at the end of the list never renumbers existing subnets.
    """
    count = len(network.azs)
    if network.private_subnet_prefix < network.cidr.prefixlen or network.public_subnet_prefix < network.cidr.prefixlen:
        raise ValueError(f"subnet prefixes must be longer than the VPC's /{network.cidr.prefixlen}; "
                         f"raise private_subnet_prefix/public_subnet_prefix")
    private = list(network.cidr.subnets(new_prefix=network.private_subnet_prefix))[:count]
    public = list(network.cidr.subnets(new_prefix=network.public_subnet_prefix))[-count:][::-1]
    if len(private) < count or len(public) < count or any(a.overlaps(b) for a in private for b in public):
        raise ValueError(f"{network.cidr} is too small for {count} private /{network.private_subnet_prefix} and "
                         f"{count} public /{network.public_subnet_prefix} subnets; use a larger VPC CIDR or "
                         f"longer subnet prefixes")
    return {az: (str(pub), str(priv)) for az, pub, priv in zip(network.azs, public, private, strict=True)}


class ClusterConfig(Section):
    """EKS control plane: version, endpoint exposure, logging and add-on versions."""

    name: str
    version: Version
    endpoint_public_access: bool = False
    endpoint_private_access: bool = True
    public_access_cidrs: list[ipaddress.IPv4Network] = Field(default_factory=list)
    service_cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("172.20.0.0/16")
    log_types: list[LogType] = Field(default_factory=lambda: ["api", "audit", "authenticator",
                                                               "controllerManager", "scheduler"])
    log_retention_days: int = 90
    deletion_protection: bool = False
    addons: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _cluster_name(cls, value: str) -> str:
        if not _CLUSTER_NAME.match(value):
            raise ValueError(f"{value!r} is not a valid EKS cluster name; use up to 100 letters, digits, '-' or '_', "
                             f"starting with a letter")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in _CLOUDWATCH_RETENTION:
            nearest = min(_CLOUDWATCH_RETENTION, key=lambda allowed: abs(allowed - value))
            raise ValueError(f"CloudWatch does not accept {value} days; use an allowed value such as {nearest}")
        return value

    @field_validator("addons")
    @classmethod
    def _addons(cls, value: dict[str, str]) -> dict[str, str]:
        for addon, version in value.items():
            if addon not in ADDONS:
                raise ValueError(f"unknown add-on {addon!r}; use one of {', '.join(ADDONS)}")
            if not _ADDON_VERSION.match(str(version)):
                raise ValueError(f"add-on {addon} version {version!r} is not an EKS add-on version; "
                                 f"write it like v1.19.2-eksbuild.1")
        return value

    @model_validator(mode="after")
    def _endpoint(self) -> ClusterConfig:
        if not (self.endpoint_public_access or self.endpoint_private_access):
            raise ValueError("the API endpoint would be unreachable; enable endpoint_private_access "
                             "or endpoint_public_access")
        if self.public_access_cidrs and not self.endpoint_public_access:
            raise ValueError("public_access_cidrs is set but endpoint_public_access is false; "
                             "remove public_access_cidrs or enable public access")
        kube_proxy = self.addons.get("kube-proxy")
        if kube_proxy and not kube_proxy.startswith(f"v{self.version}."):
            raise ValueError(f"add-on kube-proxy {kube_proxy} does not match cluster version {self.version}; "
                             f"use a v{self.version}.x-eksbuild.N build")
        return self


class Taint(Section):
    key: str
    value: str = ""
    effect: Literal["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"]


class Generation(Section):
    """One side of a blue/green pair: an AMI family and the kubelet version it runs."""

    ami_type: AmiType
    version: Version | None = None
    release_version: str | None = None

    @property
    def is_al2(self) -> bool:
        return self.ami_type.startswith("AL2_")

    @property
    def is_arm(self) -> bool:
        return "ARM" in self.ami_type


class NodePool(Section):
    """A pool of identical nodes; one managed node group per AZ and generation. Sizes are per AZ."""

    instance_types: list[str] = Field(min_length=1)
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    disk_size_gib: int = Field(50, ge=20, le=2000)
    min_size: int = Field(ge=0)
    desired_size: int = Field(ge=0)
    max_size: int = Field(gt=0, le=450)
    max_unavailable: int = Field(1, ge=1, le=100)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    azs: list[str] | None = None
    generations: dict[Name, Generation] = Field(min_length=1, max_length=3)

    @field_validator("instance_types")
    @classmethod
    def _instance_types(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if not _INSTANCE.match(item)]
        if bad:
            raise ValueError(f"not EC2 instance types: {', '.join(bad)}; write them like m6i.large or t4g.medium")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(str(label)):
                raise ValueError(f"label {key}={label} is not a valid Kubernetes label; use [prefix/]name=value "
                                 f"with at most 63 alphanumerics, '-', '_' or '.'")
            if key.split("/")[0].endswith(("kubernetes.io", "k8s.io")) and "/" in key:
                raise ValueError(f"label {key} uses a reserved prefix EKS refuses; drop the kubernetes.io/k8s.io prefix")
            if key in ("pool", "generation"):
                raise ValueError(f"label {key} is set by the platform; remove it from labels")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> NodePool:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(f"sizes must satisfy min_size <= desired_size <= max_size "
                             f"(got {self.min_size} <= {self.desired_size} <= {self.max_size}); adjust them")
        if self.max_unavailable > self.max_size:
            raise ValueError(f"max_unavailable {self.max_unavailable} exceeds max_size {self.max_size}; lower it")
        return self

    @property
    def is_graviton(self) -> bool:
        """Graviton families carry a 'g' right after the generation digit (m7g, c6gn, t4g)."""
        return all(_INSTANCE.match(item).group(3).startswith("g") for item in self.instance_types)


AuthMode = Literal["CONFIG_MAP", "API_AND_CONFIG_MAP", "API"]
# EKS moves a cluster's authentication mode only forward along this order, never back.
AUTH_MODES: tuple[str, ...] = ("CONFIG_MAP", "API_AND_CONFIG_MAP", "API")
ADMIN_GROUP = "system:masters"

_ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$")
_OIDC_PROVIDER_ARN = re.compile(r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$")
_GITHUB_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_GITHUB_REPO = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_GITHUB_ENVIRONMENT = re.compile(r"^[A-Za-z0-9._-]{1,255}$")
_KUBE_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,62}$")
_SERVICE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_CHART_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def app_namespace(env: str) -> str:
    """The one namespace a stack's application services run in."""
    return f"apps-{env}"


def secret_name(env: str, service: str, key: str) -> str:
    """Secrets Manager name of one service secret; IAM scopes and `invoke secrets.*` rely on this prefix."""
    return f"eks-platform/{env}/{service}/{key}"


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

    @field_validator("deploy_environment", "infra_environment")
    @classmethod
    def _environment(cls, value: str) -> str:
        if not _GITHUB_ENVIRONMENT.match(value):
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
    pulumi_deployer_cluster_admin: bool = False
    role_mappings: list[RoleMapping] = Field(default_factory=list)

    @model_validator(mode="after")
    def _mappings(self) -> AccessConfig:
        seen: set[str] = set()
        for index, mapping in enumerate(self.role_mappings):
            if mapping.role_arn in seen:
                raise ValueError(f"role_mappings[{index}] maps {mapping.role_arn} twice; merge the entries")
            seen.add(mapping.role_arn)
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


class DatabaseTarget(Section):
    """Where a database credential lives, so the rotation Lambda can change and test the password."""

    engine: Literal["postgres"] = "postgres"
    host: str = Field(min_length=1)
    port: int = Field(5432, ge=1, le=65535)
    dbname: str = Field(min_length=1)
    username: str = Field(min_length=1)


class SecretSpec(Section):
    """One secret of one service: `generated` and `database` values are made in AWS, `external` ones are set."""

    description: str = Field(min_length=1, max_length=2048)
    kind: Literal["generated", "database", "external"] = "generated"
    length: int = Field(32, ge=16, le=128)
    rotation_days: int | None = Field(None, ge=1, le=365)
    database: DatabaseTarget | None = None

    @model_validator(mode="after")
    def _kind(self) -> SecretSpec:
        if (self.kind == "database") != (self.database is not None):
            raise ValueError("a database secret needs a `database:` block (host, dbname, username) and other kinds "
                             "must not have one; fix kind or the block")
        if self.kind == "external" and self.rotation_days is not None:
            raise ValueError("an external secret has no generator to rotate it; drop rotation_days or make it "
                             "kind: generated")
        return self


class SecretsConfig(Section):
    """Per-service secrets in Secrets Manager and how they reach pods (External Secrets Operator)."""

    rotation: bool = False
    recovery_window_days: int = Field(30, ge=7, le=30)
    eso_chart_version: str = "0.19.2"
    refresh_interval: str = Field("1h", pattern=r"^\d+[smh]$")
    services: dict[str, dict[str, SecretSpec]] = Field(default_factory=dict)

    @field_validator("eso_chart_version")
    @classmethod
    def _chart(cls, value: str) -> str:
        if not _CHART_VERSION.match(value):
            raise ValueError(f"{value!r} is not a chart version; pin an exact one like 0.19.2")
        return value

    @field_validator("services")
    @classmethod
    def _names(cls, value: dict[str, dict[str, SecretSpec]]) -> dict[str, dict[str, SecretSpec]]:
        for service, secrets in value.items():
            if not _SERVICE.match(service):
                raise ValueError(f"service {service!r} is not a DNS-1123 label; use lowercase letters, digits, '-'")
            for key in secrets:
                if not _SECRET_KEY.match(key):
                    raise ValueError(f"secret key {service}.{key} is invalid; use lowercase letters, digits, '_', '-', "
                                     f"starting with a letter")
        return value

    def entries(self) -> list[tuple[str, str, SecretSpec]]:
        return [(service, key, spec) for service, secrets in self.services.items() for key, spec in secrets.items()]


_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_QUANTITY_SCALE = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                   "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_PROM_DURATION = re.compile(r"^\d+(h|d|w|y)$")
_GO_DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def quantity(value: str) -> float:
    """A Kubernetes resource quantity ("250m", "2", "512Mi") as a number, for comparing limits."""
    match = _QUANTITY.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity; write it like 500m, 2, 512Mi or 4Gi")
    return float(match.group(1)) * _QUANTITY_SCALE[match.group(2)]


Quantity = Annotated[str, AfterValidator(lambda value: quantity(value) and value)]


class Quota(Section):
    """ResourceQuota of one application namespace: a runaway deploy cannot starve the others."""

    requests_cpu: Quantity = "4"
    requests_memory: Quantity = "8Gi"
    limits_cpu: Quantity = "8"
    limits_memory: Quantity = "16Gi"
    requests_storage: Quantity = "100Gi"
    pods: int = Field(50, ge=1, le=5000)
    persistent_volume_claims: int = Field(10, ge=0, le=1000)
    services_load_balancers: int = Field(2, ge=0, le=100)

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Quota:
        for kind in ("cpu", "memory"):
            if quantity(getattr(self, f"requests_{kind}")) > quantity(getattr(self, f"limits_{kind}")):
                raise ValueError(f"requests_{kind} exceeds limits_{kind}; raise limits_{kind} or lower requests_{kind}")
        return self


class ContainerDefaults(Section):
    """LimitRange: what a container without requests/limits gets, and the most one container may ask for."""

    default_request_cpu: Quantity = "100m"
    default_request_memory: Quantity = "128Mi"
    default_limit_cpu: Quantity = "500m"
    default_limit_memory: Quantity = "256Mi"
    max_cpu: Quantity = "2"
    max_memory: Quantity = "4Gi"

    @model_validator(mode="after")
    def _ordered(self) -> ContainerDefaults:
        for kind in ("cpu", "memory"):
            request, limit, most = (quantity(getattr(self, f"{field}_{kind}"))
                                    for field in ("default_request", "default_limit", "max"))
            if not request <= limit <= most:
                raise ValueError(f"need default_request_{kind} <= default_limit_{kind} <= max_{kind}; adjust them")
        return self


class AppNamespaceConfig(Section):
    quota: Quota = Field(default_factory=Quota)
    limits: ContainerDefaults = Field(default_factory=ContainerDefaults)


class StorageConfig(Section):
    """The default gp3 StorageClass. Retain keeps the EBS volume when a PVC is deleted by mistake."""

    iops: int = Field(3000, ge=3000, le=16000)
    throughput_mibps: int = Field(125, ge=125, le=1000)
    reclaim_policy: Literal["Delete", "Retain"] = "Delete"


class AutoscalerConfig(Section):
    """cluster-autoscaler scale-down behaviour; scale-down always honours PodDisruptionBudgets."""

    expander: Literal["least-waste", "random", "most-pods", "priority", "price"] = "least-waste"
    scale_down_utilization_threshold: float = Field(0.5, gt=0, lt=1)
    scale_down_unneeded_time: str = "10m"
    scale_down_delay_after_add: str = "10m"
    max_graceful_termination_sec: int = Field(600, ge=30, le=3600)

    @field_validator("scale_down_unneeded_time", "scale_down_delay_after_add")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not value or not _GO_DURATION.match(value):
            raise ValueError(f"{value!r} is not a duration; write it like 10m, 1h or 90s")
        return value


class MonitoringConfig(Section):
    """kube-prometheus-stack sizing: metrics kept `retention` long, capped below the volume size."""

    retention: str = "15d"
    storage_gib: int = Field(50, ge=5, le=16384)
    prometheus_replicas: int = Field(1, ge=1, le=3)
    alertmanager_storage_gib: int = Field(5, ge=1, le=1024)
    grafana_storage_gib: int = Field(10, ge=1, le=1024)
    runbook_url: str = "https://github.com/eks-platform/eks-platform/blob/main/infra/observability/runbooks.md"
    # Name of a Secret in `monitoring` whose key `url` is a Slack incoming webhook; unset: alerts only show in
    # Alertmanager, Grafana and `invoke platform.status`. The URL itself never enters config or state.
    slack_webhook_secret: str | None = None

    @field_validator("slack_webhook_secret")
    @classmethod
    def _secret_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAMESPACE.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes Secret name; use lowercase letters, digits and '-'")
        return value

    @field_validator("runbook_url")
    @classmethod
    def _runbook_url(cls, value: str) -> str:
        if not re.match(r"^https://[^\s#]+$", value):
            raise ValueError(f"{value!r} is not an https URL without a fragment; point it at runbooks.md "
                             f"as the team browses it")
        return value

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if not _PROM_DURATION.match(value):
            raise ValueError(f"{value!r} is not a Prometheus retention; write it like 15d, 12h, 4w or 1y")
        return value

    @property
    def retention_size(self) -> str:
        """Prometheus deletes old blocks before the volume fills: 85 % of the volume, in GiB."""
        return f"{int(self.storage_gib * 0.85)}GB"


class LogShipperConfig(Section):
    """Optional node agent (DaemonSet) shipping container stdout to CloudWatch Logs."""

    enabled: bool = False
    retention_days: int = 30

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in _CLOUDWATCH_RETENTION:
            raise ValueError(f"CloudWatch does not accept {value} days; use one of 7, 14, 30, 60, 90, 365")
        return value


class PlatformConfig(Section):
    """In-cluster baseline: storage, autoscaling, application namespaces, observability, logs."""

    namespaces: dict[str, AppNamespaceConfig] = Field(default_factory=dict)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    autoscaler: AutoscalerConfig = Field(default_factory=AutoscalerConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    log_shipper: LogShipperConfig = Field(default_factory=LogShipperConfig)
    charts: dict[str, str] = Field(default_factory=dict)

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: dict[str, AppNamespaceConfig]) -> dict[str, AppNamespaceConfig]:
        for name in value:
            if not _NAMESPACE.match(name) or name.startswith("kube-"):
                raise ValueError(f"{name!r} is not a usable namespace name; use lowercase letters, digits and '-', "
                                 f"not starting with kube-")
        return value

    @field_validator("charts")
    @classmethod
    def _charts(cls, value: dict[str, str]) -> dict[str, str]:
        from infra.charts import CHARTS

        for chart, version in value.items():
            if chart not in CHARTS:
                raise ValueError(f"unknown chart {chart!r}; use one of {', '.join(CHARTS)}")
            if not _CHART_VERSION.match(str(version)):
                raise ValueError(f"chart {chart} version {version!r} is not an exact version; pin it like 1.2.3")
        return value

    def app_namespaces(self, env: str) -> dict[str, AppNamespaceConfig]:
        """The stack's application namespace (always) plus any extra ones, each with its settings."""
        return {app_namespace(env): AppNamespaceConfig(), **self.namespaces}


NatMode = Literal["dual-instance", "gateway", "none"]
AL2023_ARM64_AMI = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"


class NatConfig(Section):
    """Private-subnet egress: two NAT instances with failover Lambdas, NAT Gateways, or none.

    Probe and hysteresis knobs are the failover time budget (README `## NAT`): detection is about
    probe_interval_seconds * failure_threshold + probe_timeout_seconds.
    """

    mode: NatMode = "dual-instance"
    instance_type: str = "t4g.nano"
    ami_parameter: str = AL2023_ARM64_AMI
    azs: list[str] | None = None
    probe_targets: list[str] = Field(default_factory=lambda: ["https://checkip.amazonaws.com/",
                                                              "tcp://1.1.1.1:443", "tcp://8.8.8.8:443"],
                                     min_length=1, max_length=5)
    probe_interval_seconds: float = Field(1.0, ge=0.5, le=30)
    probe_timeout_seconds: float = Field(1.0, ge=0.2, le=10)
    failure_threshold: int = Field(2, ge=1, le=10)
    failback_checks: int = Field(30, ge=1, le=1000)
    failback_min_seconds: int = Field(120, ge=0, le=3600)
    probe_window_seconds: int = Field(55, ge=10, le=55)
    probe_subnet_prefix: int = Field(28, ge=24, le=28)
    alarm_emails: list[str] = Field(default_factory=list)

    @field_validator("instance_type")
    @classmethod
    def _nat_instance_type(cls, value: str) -> str:
        if not _INSTANCE.match(value):
            raise ValueError(f"{value!r} is not an EC2 instance type; write it like t4g.nano")
        return value

    @field_validator("probe_targets")
    @classmethod
    def _probe_targets(cls, value: list[str]) -> list[str]:
        for target in value:
            if not re.fullmatch(r"(https?://[A-Za-z0-9.-]+(:\d{1,5})?(/\S*)?|tcp://[A-Za-z0-9.-]+:\d{1,5})", target):
                raise ValueError(f"probe target {target!r} is neither http(s)://host[/path] nor tcp://host:port")
        return value

    @field_validator("alarm_emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for email in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", email):
                raise ValueError(f"{email!r} is not an e-mail address; write it like oncall@example.com")
        return value

    @model_validator(mode="after")
    def _nat_consistent(self) -> "NatConfig":
        arm = bool(re.match(r"^[a-z]+\d+[a-z]*g[a-z]*\.", self.instance_type))
        if arm != ("arm64" in self.ami_parameter):
            raise ValueError(f"instance_type {self.instance_type} is {'arm64' if arm else 'x86_64'} but "
                             f"ami_parameter {self.ami_parameter} is not; match them (e.g. t4g.nano with "
                             f"{AL2023_ARM64_AMI})")
        if self.probe_timeout_seconds > self.probe_interval_seconds:
            raise ValueError("probe_timeout_seconds exceeds probe_interval_seconds; probes would overlap; "
                             "lower the timeout or raise the interval")
        if self.azs is not None and (len(self.azs) != 2 or self.azs[0] == self.azs[1]):
            raise ValueError("azs must name exactly two different AZs (one per NAT instance)")
        return self


class StackConfig(Section):
    """The whole validated, frozen configuration of one stack (environment)."""

    env: str
    region: str
    network: NetworkConfig
    cluster: ClusterConfig
    node_pools: dict[Name, NodePool] = Field(min_length=1)
    access: AccessConfig = Field(default_factory=AccessConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    platform: PlatformConfig = Field(default_factory=PlatformConfig)
    nat: NatConfig = Field(default_factory=NatConfig)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region; set aws:region to a region like eu-west-1")
        return value

    @property
    def version(self) -> KubeVersion:
        return KubeVersion.parse(self.cluster.version)

    def pool_azs(self, pool: NodePool) -> list[str]:
        return pool.azs or list(self.network.azs)


# Top-level keys in the project namespace and the StackConfig field each one fills.
SECTIONS: dict[str, str] = {"network": "network", "cluster": "cluster", "node_pools": "node_pools",
                            "access": "access", "secrets": "secrets", "platform": "platform", "nat": "nat"}


def _secret_service_issues(cfg: StackConfig) -> list[ConfigIssue]:
    """Secrets belong to services of the catalog (infra/k8s/base/<svc>): a typo would create an unread secret."""
    catalog = ROOT / "infra" / "k8s" / "base"
    if not catalog.is_dir():
        return []
    known = sorted(path.name for path in catalog.iterdir() if (path / "kustomization.yaml").is_file())
    return [ConfigIssue(key=f"{PROJECT}:secrets.services.{service}",
                        problem=f"no service {service!r} in infra/k8s/base; use one of: {', '.join(known)}")
            for service in cfg.secrets.services if service not in known]


def check_auth_mode_history(cfg: StackConfig, deployed: str | None) -> list[ConfigIssue]:
    """Refuse moving the cluster's authentication mode backwards (EKS cannot), given the deployed mode."""
    wanted = cfg.access.authentication_mode
    if deployed not in AUTH_MODES or AUTH_MODES.index(wanted) >= AUTH_MODES.index(deployed):
        return []
    return [ConfigIssue(key=f"{PROJECT}:access.authentication_mode", problem=(
        f"goes back from {deployed} to {wanted}, which EKS does not allow; keep {deployed} "
        f"(`invoke access.migrate --env {cfg.env}` only moves forward)"))]


def nat_azs(cfg: StackConfig) -> list[str]:
    """AZs of the two NAT instances (or gateways): configured, else the first two network AZs."""
    return list(cfg.nat.azs or cfg.network.azs[:2])


def nat_probe_subnets(cfg: StackConfig) -> dict[str, str]:
    """NAT AZ -> CIDR of its probe subnet, carved from the public-size block just below the public subnets."""
    network = cfg.network
    blocks = list(network.cidr.subnets(new_prefix=network.public_subnet_prefix))
    block = blocks[-len(network.azs) - 1]
    if cfg.nat.probe_subnet_prefix < block.prefixlen:
        raise ValueError(f"probe_subnet_prefix /{cfg.nat.probe_subnet_prefix} is larger than the "
                         f"/{block.prefixlen} block reserved for probe subnets; use /{block.prefixlen} or longer")
    private = [ipaddress.IPv4Network(priv) for _, priv in subnet_plan(network).values()]
    if any(block.overlaps(subnet) for subnet in private):
        raise ValueError(f"no free block for NAT probe subnets: {block} overlaps the private subnets; use a "
                         f"larger VPC CIDR or longer private_subnet_prefix")
    probes = block.subnets(new_prefix=cfg.nat.probe_subnet_prefix)
    return {az: str(next(probes)) for az in nat_azs(cfg)}


def _nat_issues(cfg: StackConfig) -> list[ConfigIssue]:
    """NAT instances need two AZs of the VPC and room for their probe subnets."""
    if cfg.nat.mode == "none":
        return []
    key = f"{PROJECT}:nat"
    unknown = [az for az in cfg.nat.azs or [] if az not in cfg.network.azs]
    if unknown:
        return [ConfigIssue(key=f"{key}.azs", problem=f"{', '.join(unknown)} not in network.azs; "
                                                      f"pick two of {', '.join(cfg.network.azs)}")]
    if len(nat_azs(cfg)) < 2:
        return [ConfigIssue(key=f"{key}.mode", problem=f"{cfg.nat.mode} needs two AZs but network.azs has one; "
                                                       f"add an AZ or set nat.mode: none")]
    if cfg.nat.mode == "dual-instance":
        try:
            nat_probe_subnets(cfg)
        except ValueError as exc:
            return [ConfigIssue(key=f"{key}.probe_subnet_prefix", problem=str(exc))]
    return []


def _cross_issues(cfg: StackConfig) -> list[ConfigIssue]:
    """Checks that need more than one section: AZs vs region, version skew, AMI vs instance arch."""
    issues: list[ConfigIssue] = []
    for index, az in enumerate(cfg.network.azs):
        if not re.fullmatch(re.escape(cfg.region) + r"[a-z]", az):
            issues.append(ConfigIssue(key=f"{PROJECT}:network.azs[{index}]",
                                      problem=f"{az!r} is not an AZ of region {cfg.region}; use names like "
                                              f"{cfg.region}a"))
    vpc = cfg.network.cidr
    if cfg.cluster.service_cidr.overlaps(vpc):
        issues.append(ConfigIssue(key=f"{PROJECT}:cluster.service_cidr",
                                  problem=f"{cfg.cluster.service_cidr} overlaps the VPC {vpc}; pick a "
                                          f"service range outside the VPC"))
    issues += _secret_service_issues(cfg)
    issues += _nat_issues(cfg)
    control_plane = cfg.version
    for pool_name, pool in cfg.node_pools.items():
        base = f"{PROJECT}:node_pools.{pool_name}"
        unknown = [az for az in pool.azs or [] if az not in cfg.network.azs]
        if unknown:
            issues.append(ConfigIssue(key=f"{base}.azs", problem=f"{', '.join(unknown)} not in network.azs; "
                                                                 f"add them there or remove them here"))
        for gen_name, gen in pool.generations.items():
            key = f"{base}.generations.{gen_name}"
            kubelet = KubeVersion.parse(gen.version or cfg.cluster.version)
            problem = skew_problem(control_plane, kubelet)
            if problem:
                issues.append(ConfigIssue(key=f"{key}.version", problem=f"{problem}; set it between "
                                          f"1.{control_plane.minor - control_plane.max_kubelet_lag} and {control_plane}"))
            if gen.is_al2 and not (control_plane.allows_al2 and kubelet.allows_al2):
                issues.append(ConfigIssue(key=f"{key}.ami_type", problem=(
                    f"{gen.ami_type} has no AMIs for Kubernetes {max(control_plane, kubelet)}; migrate the pool to "
                    f"AL2023 first: add a generation with ami_type AL2023_* and run "
                    f"`invoke nodes.migrate --env {cfg.env} --pool {pool_name} --to <generation>`")))
            if gen.is_arm != pool.is_graviton:
                arch = "arm64 (Graviton, e.g. m7g.large)" if gen.is_arm else "x86_64 (e.g. m6i.large)"
                issues.append(ConfigIssue(key=f"{key}.ami_type", problem=(
                    f"{gen.ami_type} needs {arch} instance types but the pool has "
                    f"{', '.join(pool.instance_types)}; match ami_type and instance_types")))
    return issues


def check_generation_history(cfg: StackConfig, deployed: Mapping[str, Mapping[str, str]]) -> list[ConfigIssue]:
    """Refuse changing the AMI type of a generation that already exists.

    `deployed` is pool -> generation -> AMI type as last deployed (stack outputs) or committed (git base).
    Changing it in place would make EKS replace every node of the group at once; a new generation is the
    safe path.
    """
    issues = []
    for pool_name, pool in cfg.node_pools.items():
        for gen_name, gen in pool.generations.items():
            before = deployed.get(pool_name, {}).get(gen_name)
            if before and before != gen.ami_type:
                issues.append(ConfigIssue(
                    key=f"{PROJECT}:node_pools.{pool_name}.generations.{gen_name}.ami_type",
                    problem=(f"changes {before} -> {gen.ami_type} in place, which replaces all nodes of the generation "
                             f"at once; keep {before} here, add a new generation with {gen.ami_type} and run "
                             f"`invoke nodes.migrate --env {cfg.env} --pool {pool_name} --to <new generation>`")))
    return issues


def deployed_ami_types(cfg: StackConfig) -> dict[str, dict[str, str]]:
    """pool -> generation -> AMI type, in the shape check_generation_history compares against."""
    return {pool_name: {gen_name: gen.ami_type for gen_name, gen in pool.generations.items()}
            for pool_name, pool in cfg.node_pools.items()}


def _loc_key(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts[-1] = f"{parts[-1]}[{part}]" if parts else f"[{part}]"
        elif part not in ("function-after", "function-before") and not str(part).startswith(("function-", "lax-")):
            parts.append(str(part))
    if not parts:
        return PROJECT
    head, *rest = parts
    if head == "region":
        return "aws:region"
    return f"{PROJECT}:" + ".".join([head, *rest])


def _fix_for(error: Mapping[str, Any], allowed: list[str]) -> str:
    kind = error["type"]
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        name = str(error["loc"][-1])
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
        return f"unknown key; remove it or fix the spelling ({hint})"
    if kind == "missing":
        return "required but missing; add it"
    if kind in ("int_parsing", "int_type", "bool_parsing", "bool_type", "string_type", "list_type", "dict_type"):
        return f"{message}; got {error.get('input')!r}"
    return message


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that holds `loc`, for 'did you mean' hints."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            annotation = current.model_fields[part].annotation
            args = getattr(annotation, "__args__", ())
            current = args[-1] if args else annotation
        elif isinstance(current, type) and issubclass(current, BaseModel):
            return list(current.model_fields)
    return list(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else []


def _decode(value: Any) -> Any:
    """Pulumi hands structured config to the program as JSON strings; files hold objects."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def from_mapping(env: str, raw: Mapping[str, Any], source: str | None = None) -> StackConfig:
    """Validate a flat Pulumi config map (`ns:key` -> value) into a StackConfig, or raise ConfigError."""
    source = source or f"Pulumi.{env}.yaml"
    issues: list[ConfigIssue] = []
    data: dict[str, Any] = {"env": env, "region": raw.get("aws:region")}
    if data["region"] is None:
        issues.append(ConfigIssue(key="aws:region", problem="required but missing; add aws:region: <region>"))
    for key, value in raw.items():
        namespace, _, name = key.partition(":")
        if namespace != PROJECT:
            continue
        if name not in SECTIONS:
            close = difflib.get_close_matches(name, list(SECTIONS), n=1)
            hint = f"did you mean {PROJECT}:{close[0]}?" if close else f"known keys: {', '.join(SECTIONS)}"
            issues.append(ConfigIssue(key=key, problem=f"unknown key; remove it or fix the spelling ({hint})"))
            continue
        data[SECTIONS[name]] = _decode(value)
    try:
        cfg = StackConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            if error["loc"] == ("region",) and data["region"] is None:
                continue
            loc = tuple(error["loc"])
            allowed = _allowed_keys(StackConfig, loc)
            issues.append(ConfigIssue(key=_loc_key(loc), problem=_fix_for(error, allowed)))
        raise ConfigError(source, issues) from None
    issues += _cross_issues(cfg)
    if issues:
        raise ConfigError(source, issues)
    return cfg


def stack_file(env: str, root: Path = ROOT) -> Path:
    return root / f"Pulumi.{env}.yaml"


def known_envs(root: Path = ROOT) -> list[str]:
    return sorted(path.name[len("Pulumi."):-len(".yaml")] for path in root.glob("Pulumi.*.yaml"))


def read_stack_file(env: str, root: Path = ROOT) -> dict[str, Any]:
    """The raw `config:` map of Pulumi.<env>.yaml; unknown env -> ConfigError listing the valid ones."""
    from ruamel.yaml import YAML, YAMLError

    path = stack_file(env, root)
    if not path.is_file():
        raise ConfigError("--env", [ConfigIssue(key=env, problem=(
            f"no such stack (no {path.name}); use one of: {', '.join(known_envs(root)) or 'none found'}"))])
    try:
        document = YAML(typ="safe").load(path.read_text()) or {}
    except YAMLError as exc:
        raise ConfigError(path.name, [ConfigIssue(key="(file)", problem=f"not valid YAML: {exc}".replace("\n", " "))]) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(path.name, [ConfigIssue(key="config", problem="missing the top-level `config:` map; add it")])
    return config


def committed_ami_types(env: str, rev: str, root: Path = ROOT) -> dict[str, dict[str, str]]:
    """pool -> generation -> AMI type as Pulumi.<env>.yaml had them at git revision `rev` (e.g. origin/main)."""
    import subprocess

    from ruamel.yaml import YAML

    shown = subprocess.run(["git", "show", f"{rev}:{stack_file(env, root).name}"], cwd=root, capture_output=True,
                           text=True)
    if shown.returncode != 0:
        raise ConfigError("--against", [ConfigIssue(key=rev, problem=(
            f"cannot read {stack_file(env, root).name} at that revision ({shown.stderr.strip() or 'git failed'}); "
            f"name a commit or branch that has it"))])
    config = (YAML(typ="safe").load(shown.stdout) or {}).get("config") or {}
    pools = config.get(f"{PROJECT}:node_pools") or {}
    return {pool: {gen: str((spec or {}).get("ami_type")) for gen, spec in ((p or {}).get("generations") or {}).items()}
            for pool, p in pools.items() if isinstance(p, dict)}


def load_stack_config(env: str, root: Path = ROOT) -> StackConfig:
    """Read and validate Pulumi.<env>.yaml (no Pulumi CLI needed)."""
    return from_mapping(env, read_stack_file(env, root), source=stack_file(env, root).name)
