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
from infra.ops.errors import Refused
from infra.sections.access import (
    ADMIN_GROUP,
    AUTH_MODES,
    AccessConfig,
    GitHubConfig,
    RoleMapping,
    check_auth_mode_history,
    without_path,
)
from infra.sections.base import PROJECT, ConfigIssue, Name, Section, Version, app_namespace
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
from infra.sections.nat import NatConfig, _nat_issues, nat_azs, nat_probe_subnets
from infra.sections.platform import AppNamespaceConfig, PlatformConfig, quantity
from infra.sections.secrets import SecretsConfig, SecretSpec, _secret_service_issues, secret_name
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


class ConfigError(Refused):
    """All problems found in one stack config, reported together (exit 2: its text is the whole rendering)."""

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

    @classmethod
    def of(cls, cfg: StackConfig) -> Validated:
        return cls(**{name: getattr(cfg, name) for name in cls.__dataclass_fields__})

    @classmethod
    def parts_of(cls, data: Mapping[str, Any]) -> Validated:
        """Validate each section of `data` alone; a section that fails (or a pool that fails) is left out."""
        def alone(model: type[BaseModel], value: Any) -> Any:
            try:
                return model.model_validate(value)
            except ValidationError:
                return None

        region = data.get("region")
        sections = {name: alone(model, data[name]) if name in data else model()
                    for name, model in _DEFAULTED.items()}
        pools = data.get("node_pools")
        return cls(env=str(data.get("env")), region=region if isinstance(region, str) and _REGION.match(region) else None,
                   network=alone(NetworkConfig, data["network"]) if "network" in data else None,
                   cluster=alone(ClusterConfig, data["cluster"]) if "cluster" in data else None,
                   node_pools={str(name): pool for name, value in (pools.items() if isinstance(pools, dict) else ())
                               if (pool := alone(NodePool, value)) is not None},
                   edge=alone(EdgeConfig, data["edge"]) if "edge" in data else None, **sections)


# Sections that have a default when the key is absent.
_DEFAULTED: dict[str, type[Section]] = {"access": AccessConfig, "secrets": SecretsConfig, "platform": PlatformConfig,
                                        "nat": NatConfig}


def _cross_issues(cfg: Validated, today: date) -> list[ConfigIssue]:
    """Checks that need more than one section (AZs vs region, version skew, AMI vs instance arch) or a date (the
    version against the EKS calendar on `today`). Each runs when the sections it reads validated."""
    issues: list[ConfigIssue] = []
    network, cluster = cfg.network, cfg.cluster
    if cluster:
        issues += version_issues(cfg.env, cluster, today) + endpoint_issues(cluster)
    issues += addon_host_issues(cfg.node_pools)
    if cfg.access:
        issues += _principal_issues(cfg.env, cfg.access)
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
        issues += _nat_issues(cfg)
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


# Roles the program itself creates and maps (infra/components/access.py names them eks-platform-<env>-<what>).
_PROGRAM_ROLES = ("ci-deployer", "pulumi-deployer", "pulumi-previewer")


def _principal_issues(env: str, access: AccessConfig) -> list[ConfigIssue]:
    """Every IAM principal gets at most one access entry: EKS refuses a second (409 ResourceInUseException), and
    it already made one for the cluster's creator (pulumi-eks sets bootstrapClusterCreatorAdminPermissions)."""
    issues, key = [], f"{PROJECT}:access"
    for index, arn in enumerate(access.admin_role_arns):
        if arn in access.admin_role_arns[:index]:
            issues.append(ConfigIssue(key=f"{key}.admin_role_arns[{index}]", problem=(
                f"lists {arn} twice; EKS refuses a second access entry for one principal (409): keep one")))
    own = {f"eks-platform-{env}-{what}": what for what in _PROGRAM_ROLES}
    listed = [(f"{key}.admin_role_arns[{i}]", arn) for i, arn in enumerate(access.admin_role_arns)]
    listed += [(f"{key}.role_mappings[{i}].role_arn", m.role_arn) for i, m in enumerate(access.role_mappings)]
    for where, arn in listed:
        what = own.get(arn.rsplit("/", 1)[-1])
        if what:
            fix = ("set access.pulumi_deployer_cluster_admin: true instead" if what == "pulumi-deployer"
                   else "the program maps it already; remove it here")
            issues.append(ConfigIssue(key=where, problem=(
                f"{arn} is the {what} role this stack creates and maps itself; a second entry fails with 409: {fix}")))
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
        if namespace != PROJECT:
            if name in SECTIONS and difflib.get_close_matches(namespace, [PROJECT], n=1, cutoff=0.8):
                issues.append(ConfigIssue(key=key, problem=f"unknown namespace {namespace!r}, so this section is "
                                                           f"ignored; did you mean {PROJECT}:{name}?"))
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


class SourceFloat(float):
    """A float read from a stack file that remembers how it was written: YAML reads an unquoted 1.30 as 1.3, and
    the hint to quote it must show the 1.30 the person typed."""

    source_text: str = ""


def _stack_yaml() -> Any:
    """A safe YAML loader whose floats are SourceFloat (a private constructor class: other loaders are untouched)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.constructor import SafeConstructor

    class Constructor(SafeConstructor):
        def construct_yaml_float(self, node: Any) -> SourceFloat:
            value = SourceFloat(super().construct_yaml_float(node))
            value.source_text = str(node.value)
            return value

    Constructor.add_constructor("tag:yaml.org,2002:float", Constructor.construct_yaml_float)
    yaml = YAML(typ="safe")
    yaml.Constructor = Constructor
    return yaml


def read_stack_file(env: str, root: Path = ROOT) -> dict[str, Any]:
    """The raw `config:` map of Pulumi.<env>.yaml; unknown env -> ConfigError listing the valid ones."""
    from ruamel.yaml import YAMLError

    path = stack_file(env, root)
    if not path.is_file():
        raise ConfigError("--env", [ConfigIssue(key=env, problem=(
            f"no such stack (no {path.name}); use one of: {', '.join(known_envs(root)) or 'none found'}"))])
    try:
        document = _stack_yaml().load(path.read_text()) or {}
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


def load_stack_config(env: str, root: Path = ROOT, today: date | None = None) -> StackConfig:
    """Read and validate Pulumi.<env>.yaml (no Pulumi CLI needed)."""
    return from_mapping(env, read_stack_file(env, root), source=stack_file(env, root).name, today=today)
