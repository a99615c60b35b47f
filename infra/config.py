"""Typed, validated stack configuration read from Pulumi config (`Pulumi.<env>.yaml`).

Everything is validated before a single resource is declared, and every problem is reported at
once with the config key that holds it and how to fix it, so a typo never costs a `pulumi up`.
This module never imports pulumi: ops engines and tasks read the same StackConfig from the file.
Each section's model lives in infra/sections/<concern>.py; this module composes them into StackConfig,
runs the cross-section checks, turns pydantic errors into keyed issues, and loads stack files.
"""
from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from infra import eks_calendar
from infra.sections.access import (
    ADMIN_GROUP,
    AUTH_MODES,
    AccessConfig,
    GitHubConfig,
    RoleMapping,
    check_auth_mode_history,
    principal_issues,
    without_path,
)
from infra.sections.base import PROJECT, ConfigError, ConfigIssue, Name, Section, Version, app_namespace
from infra.sections.core import (
    ADDONS,
    AmiType,
    ClusterConfig,
    Generation,
    NetworkConfig,
    NodePool,
    Taint,
    addon_host_issues,
    endpoint_issues,
    is_graviton,
    subnet_plan,
    version_issues,
    version_warnings,
)
from infra.sections.edge import EdgeConfig, edge_issues
from infra.sections.messages import issues_of
from infra.sections.nat import NatConfig, nat_azs, nat_issues, nat_probe_subnets
from infra.sections.platform import AppNamespaceConfig, PlatformConfig, quantity
from infra.sections.secrets import SecretsConfig, SecretSpec, _secret_service_issues, secret_name
from infra.sections.source import config_map, generation_amis
from infra.versions import KubeVersion, skew_problem

ROOT = Path(__file__).resolve().parent.parent
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")

# Re-exported: callers import every config name from here, wherever its section lives.
__all__ = ["ADDONS", "ADMIN_GROUP", "AUTH_MODES", "PROJECT", "ROOT", "AccessConfig", "AmiType", "AppNamespaceConfig",
           "ClusterConfig", "ConfigError", "ConfigIssue", "EdgeConfig", "Generation", "GitHubConfig", "NatConfig", "NetworkConfig",
           "NodePool", "PlatformConfig", "RoleMapping", "SecretSpec", "SecretsConfig", "Section", "StackConfig",
           "Taint", "Version", "app_namespace", "check_auth_mode_history", "check_generation_history",
           "check_version_history", "committed_ami_types", "deployed_ami_types", "from_mapping", "known_envs", "load_stack_config",
           "nat_azs", "nat_probe_subnets", "quantity", "read_stack_file", "secret_name", "stack_file",
           "stack_warnings", "subnet_plan", "without_path"]


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
    edge: EdgeConfig | None = None

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
                            "access": "access", "secrets": "secrets", "platform": "platform", "nat": "nat",
                            "edge": "edge"}


@dataclass(frozen=True)
class Validated:
    """The parts of a stack config that validated on their own (None: that section did not).

    Cross-section checks run on these even when another section failed, so a wrong-region AZ is reported
    together with a size error in a node pool rather than after it is fixed. Same attribute names as StackConfig.
    """

    env: str
    region: str | None = None
    network: NetworkConfig | None = None
    cluster: ClusterConfig | None = None
    node_pools: dict[str, NodePool] = field(default_factory=dict)
    access: AccessConfig | None = None
    secrets: SecretsConfig | None = None
    platform: PlatformConfig | None = None
    nat: NatConfig | None = None
    edge: EdgeConfig | None = None
    every_pool: bool = True  # False: a pool failed on its own, so checks over all pools would judge a part

    @classmethod
    def of(cls, cfg: StackConfig) -> Validated:
        return cls(**{name: getattr(cfg, name) for name in cls.__dataclass_fields__ if name != "every_pool"})

    @classmethod
    def parts_of(cls, data: Mapping[str, Any]) -> Validated:
        """Validate each section of `data` alone; a section that fails (or a pool that fails) is left out."""
        def alone(model: type[BaseModel], value: Any) -> Any:
            try:
                return model.model_validate(value)
            except ValidationError:
                return None

        def part(name: str, model: type[BaseModel], defaulted: bool = False) -> Any:
            """The section validated alone; absent: its default (when it has one) or None."""
            return alone(model, data[name]) if name in data else model() if defaulted else None

        region = data.get("region")
        pools = data.get("node_pools")
        given = pools if isinstance(pools, dict) else {}
        valid = {str(name): pool for name, value in given.items() if (pool := alone(NodePool, value)) is not None}
        return cls(env=str(data.get("env")), region=region if isinstance(region, str) and _REGION.match(region) else None,
                   network=part("network", NetworkConfig), cluster=part("cluster", ClusterConfig),
                   node_pools=valid, every_pool=bool(given) and len(valid) == len(given),
                   access=part("access", AccessConfig, True), secrets=part("secrets", SecretsConfig, True),
                   platform=part("platform", PlatformConfig, True), nat=part("nat", NatConfig, True),
                   edge=part("edge", EdgeConfig))


def _cross_issues(cfg: Validated, today: date) -> list[ConfigIssue]:
    """Checks that need more than one section (AZs vs region, version skew, AMI vs instance arch) or a date (the
    version against the EKS calendar on `today`). Each runs when the sections it reads validated."""
    issues: list[ConfigIssue] = []
    network, cluster = cfg.network, cfg.cluster
    if cluster:
        issues += version_issues(cfg.env, cluster, today) + endpoint_issues(cluster)
    if cfg.every_pool:
        issues += addon_host_issues(cfg.node_pools)
    if cfg.access:
        issues += principal_issues(cfg.env, cfg.access)
    if network and cfg.region:
        for index, az in enumerate(network.azs):
            if not re.fullmatch(re.escape(cfg.region) + r"[a-z]", az):
                issues.append(ConfigIssue(key=f"{PROJECT}:network.azs[{index}]",
                                          problem=f"{az!r} is not an AZ of region {cfg.region}; use names like "
                                                  f"{cfg.region}a"))
    if network and cluster and cluster.service_cidr.overlaps(network.cidr):
        issues.append(ConfigIssue(key=f"{PROJECT}:cluster.service_cidr",
                                  problem=f"{cluster.service_cidr} overlaps the VPC {network.cidr}; pick a "
                                          f"service range outside the VPC"))
    if cfg.secrets:
        issues += _secret_service_issues(cfg.secrets)
    if cfg.nat and network:
        issues += nat_issues(cfg.nat, network)
    if cfg.edge:
        issues += edge_issues(cfg.edge, cfg.region)
    control_plane = KubeVersion.parse(cluster.version) if cluster else None
    for pool_name, pool in cfg.node_pools.items():
        base = f"{PROJECT}:node_pools.{pool_name}"
        unknown = [az for az in pool.azs or [] if network and az not in network.azs]
        if unknown:
            issues.append(ConfigIssue(key=f"{base}.azs", problem=f"{', '.join(unknown)} not in network.azs; "
                                                                 f"add them there or remove them here"))
        for gen_name, gen in pool.generations.items():
            key = f"{base}.generations.{gen_name}"
            if control_plane:
                issues += _generation_version_issues(cfg.env, pool_name, key, gen, control_plane)
            types = pool.types_of(gen)
            if gen.is_arm != is_graviton(types):
                arch = "arm64 (Graviton, e.g. m7g.large)" if gen.is_arm else "x86_64 (e.g. m6i.large)"
                whose = "the generation has" if gen.instance_types else "the pool has"
                issues.append(ConfigIssue(key=f"{key}.ami_type", problem=(
                    f"{gen.ami_type} needs {arch} instance types but {whose} {', '.join(types)}; match ami_type "
                    f"and instance_types (a generation may set its own instance_types)")))
    return issues


def stack_warnings(cfg: StackConfig, today: date | None = None) -> list[str]:
    """What a valid config should still tell its owner before a plan, preview or up (cost, auto-upgrades)."""
    return version_warnings(cfg.env, cfg.cluster, today or eks_calendar.today())


def _generation_version_issues(env: str, pool_name: str, key: str, gen: Generation,
                               control_plane: KubeVersion) -> list[ConfigIssue]:
    """Kubelet skew against the control plane, and AL2 past its last Kubernetes version."""
    issues = []
    kubelet = KubeVersion.parse(gen.version) if gen.version else control_plane
    problem = skew_problem(control_plane, kubelet)
    if problem:
        issues.append(ConfigIssue(key=f"{key}.version", problem=f"{problem}; set it between "
                                  f"1.{control_plane.minor - control_plane.max_kubelet_lag} and {control_plane}"))
    if gen.is_al2 and not (control_plane.allows_al2 and kubelet.allows_al2):
        issues.append(ConfigIssue(key=f"{key}.ami_type", problem=(
            f"{gen.ami_type} has no AMIs for Kubernetes {max(control_plane, kubelet)}; migrate the pool to "
            f"AL2023 first: add a generation with ami_type AL2023_* and run "
            f"`invoke nodes.migrate --env {env} --pool {pool_name} --to <generation>`")))
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


def check_version_history(cfg: StackConfig, deployed: str | None) -> list[ConfigIssue]:
    """Refuse a Kubernetes version EKS cannot move to from the deployed one: back, or more than one minor up."""
    try:
        before = KubeVersion.parse(str(deployed)) if deployed else None
    except ValueError:
        return []
    wanted = cfg.version
    key = f"{PROJECT}:cluster.version"
    if before is None or wanted == before:
        return []
    if wanted < before:
        return [ConfigIssue(key=key, problem=f"goes back from {before} to {wanted}; EKS cannot downgrade a control "
                                             f"plane: keep \"{before}\"")]
    if wanted.minor - before.minor > 1:
        return [ConfigIssue(key=key, problem=f"jumps from {before} to {wanted}; EKS upgrades one minor at a time: "
                                             f"keep \"{before}\" and run `invoke cluster.upgrade --env {cfg.env} "
                                             f"--to {wanted}` (it takes the steps in order)")]
    return []


def deployed_ami_types(cfg: StackConfig) -> dict[str, dict[str, str]]:
    """pool -> generation -> AMI type, in the shape check_generation_history compares against."""
    return {pool_name: {gen_name: gen.ami_type for gen_name, gen in pool.generations.items()}
            for pool_name, pool in cfg.node_pools.items()}


def _decode(value: Any) -> Any:
    """Pulumi hands structured config to the program as JSON strings; files hold objects."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


# pulumi-aws 7.51.1's provider settings, the names after `aws:` (pulumi_aws/config/vars.py, checked 2026-12-05;
# tests/stack/test_config_messages.py compares them with the installed provider).
AWS_SETTINGS = ("accessKey", "allowedAccountIds", "assumeRoleWithWebIdentity", "assumeRoles", "customCaBundle",
                "defaultTags", "ec2MetadataServiceEndpoint", "ec2MetadataServiceEndpointMode", "endpoints",
                "forbiddenAccountIds", "httpProxy", "httpsProxy", "ignoreTags", "insecure", "maxRetries", "noProxy",
                "profile", "region", "retryMode", "s3UsEast1RegionalEndpoint", "s3UsePathStyle", "secretKey",
                "sharedConfigFiles", "sharedCredentialsFiles", "skipCredentialsValidation", "skipMetadataApiCheck",
                "skipRegionValidation", "skipRequestingAccountId", "stsRegion", "tagPolicyCompliance", "token",
                "tokenBucketRateLimiterCapacity", "useDualstackEndpoint", "useFipsEndpoint", "userAgents")
# The namespaces this stack's keys live in and the names each knows; keys of other namespaces (another provider's)
# are left alone unless their namespace is a near miss of one of these.
NAMESPACES: dict[str, tuple[str, ...]] = {PROJECT: tuple(SECTIONS), "aws": AWS_SETTINGS}


def _unknown_key(key: str) -> ConfigIssue | None:
    """A key no one reads (a typo in its namespace or name, or no namespace at all), with the closest real key."""
    namespace, colon, name = key.partition(":")
    known = NAMESPACES.get(namespace)
    if colon and known is not None:
        if name in known:
            return None
        close = difflib.get_close_matches(name, known, n=1)
        hint = (f"did you mean {namespace}:{close[0]}?" if close else f"known keys: {', '.join(SECTIONS)}"
                if namespace == PROJECT else "see the pulumi-aws provider's configuration settings")
        what = "unknown key" if namespace == PROJECT else "not a pulumi-aws setting, so the provider never reads it"
        return ConfigIssue(key=key, problem=f"{what}; remove it or fix the spelling ({hint})")
    everything = [f"{ns}:{each}" for ns, names in NAMESPACES.items() for each in names]
    if not colon:
        owners = {each: f"{ns}:{each}" for ns, names in reversed(NAMESPACES.items()) for each in names}
        close = difflib.get_close_matches(key, list(owners), n=1, cutoff=0.8)
        hint = f"did you mean {owners[close[0]]}?" if close else f"{PROJECT}: keys are {', '.join(SECTIONS)}"
        return ConfigIssue(key=key, problem=f"has no namespace, so the program never reads it; write it as "
                                            f"namespace:name ({hint})")
    close_namespace = difflib.get_close_matches(namespace, list(NAMESPACES), n=1, cutoff=0.6)
    close = difflib.get_close_matches(f"{close_namespace[0]}:{name}", everything, n=1, cutoff=0.8) \
        if close_namespace else []
    if close:
        return ConfigIssue(key=key, problem=f"unknown namespace {namespace!r}, so no one reads this key; did you "
                                            f"mean {close[0]}?")
    return None


def from_mapping(env: str, raw: Mapping[str, Any], source: str | None = None, today: date | None = None) -> StackConfig:
    """Validate a flat Pulumi config map (`ns:key` -> value) into a StackConfig, or raise ConfigError with every
    problem: unknown keys, each section's own errors, and the cross-section checks on the sections that validated.
    Versions are judged against the EKS calendar on `today` (default: eks_calendar.today())."""
    source = source or f"Pulumi.{env}.yaml"
    issues: list[ConfigIssue] = []
    if today is None:
        try:
            today = eks_calendar.today()
        except eks_calendar.BadToday as error:
            raise ConfigError(source, [ConfigIssue(key=eks_calendar.TODAY_VARIABLE, problem=str(error))]) from None
    data: dict[str, Any] = {"env": env, "region": raw.get("aws:region")}
    if data["region"] is None:
        issues.append(ConfigIssue(key="aws:region", problem="required but missing; add aws:region: <region>"))
    for key, value in raw.items():
        namespace, _, name = key.partition(":")
        unknown = _unknown_key(key)
        if unknown:
            issues.append(unknown)
        elif namespace == PROJECT:
            data[SECTIONS[name]] = _decode(value)
    try:
        cfg = StackConfig.model_validate(data)
    except ValidationError as exc:
        errors = [e for e in exc.errors() if not (tuple(e["loc"]) == ("region",) and data["region"] is None)]
        issues += issues_of(errors, StackConfig)
        issues += _cross_issues(Validated.parts_of(data), today)
        raise ConfigError(source, issues) from None
    issues += _cross_issues(Validated.of(cfg), today)
    if issues:
        raise ConfigError(source, issues)
    return cfg


def stack_file(env: str, root: Path = ROOT) -> Path:
    return root / f"Pulumi.{env}.yaml"


def known_envs(root: Path = ROOT) -> list[str]:
    return sorted(path.name[len("Pulumi."):-len(".yaml")] for path in root.glob("Pulumi.*.yaml"))


def read_stack_file(env: str, root: Path = ROOT) -> dict[str, Any]:
    """The raw `config:` map of Pulumi.<env>.yaml; unknown env -> ConfigError listing the valid ones, a file that
    is not UTF-8, not YAML, gives a key twice or has no `config:` map -> ConfigError naming it (sections/source.py)."""
    path = stack_file(env, root)
    if not path.is_file():
        raise ConfigError("--env", [ConfigIssue(key=env, problem=(
            f"no such stack (no {path.name}); use one of: {', '.join(known_envs(root)) or 'none found'}"))])
    return config_map(path.read_bytes(), path.name)


def committed_ami_types(env: str, rev: str, root: Path = ROOT, commit: str | None = None) -> dict[str, dict[str, str]]:
    """pool -> generation -> AMI type as Pulumi.<env>.yaml had them at git revision `rev` (e.g. origin/main; read at
    `commit` when the caller resolved it already). A file there that is not UTF-8, not YAML or not a stack file's
    shape is a ConfigError naming "Pulumi.<env>.yaml at <rev>"."""
    import subprocess

    name = stack_file(env, root).name
    shown = subprocess.run(["git", "show", f"{commit or rev}:{name}"], cwd=root, capture_output=True, check=False)
    if shown.returncode != 0:
        reason = shown.stderr.decode(errors="replace").strip() or "git failed"
        raise ConfigError("--against", [ConfigIssue(key=rev, problem=(
            f"cannot read {name} at that revision ({reason}); name a commit or branch that has it"))])
    source = f"{name} at {rev}"
    return generation_amis(config_map(shown.stdout, source), source)


def load_stack_config(env: str, root: Path = ROOT, today: date | None = None) -> StackConfig:
    """Read and validate Pulumi.<env>.yaml (no Pulumi CLI needed)."""
    return from_mapping(env, read_stack_file(env, root), source=stack_file(env, root).name, today=today)
