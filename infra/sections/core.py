"""Network, control plane and node pool sections: what the foundation components declare."""
from __future__ import annotations

import ipaddress
import re
import typing
from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from infra.charts import AUTOSCALER_IMAGES
from infra.eks_calendar import CALENDAR, Support, extended_extra_usd_per_month
from infra.sections.base import PROJECT, Cidr, ConfigIssue, Count, Name, Section, Switch, Version

AmiType = Literal["AL2_x86_64", "AL2_ARM_64", "AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD",
                  "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64"]
LogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]
ALL_LOG_TYPES: tuple[LogType, ...] = typing.get_args(LogType)
UpgradePolicy = Literal["STANDARD", "EXTENDED"]
ADDONS = ("vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver")
# Taints the EKS coredns and aws-ebs-csi-driver add-ons tolerate by default (their configuration schemas'
# `tolerations` defaults): a node group tainted with anything else cannot run them.
ADDON_TOLERATED_TAINTS = ("CriticalAddonsOnly",)
_RUNNER_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

_CLUSTER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
_INSTANCE = re.compile(r"^([a-z]+)(\d+)([a-z-]*)\.(nano|micro|small|medium|large|\d*xlarge|metal(-\d+xl)?)$")
_ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_CLOUDWATCH_RETENTION = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                         2557, 2922, 3288, 3653)


class NetworkConfig(Section):
    """VPC CIDR and the AZs to spread subnets over; subnets are carved deterministically."""

    cidr: Cidr
    azs: list[str] = Field(min_length=1, max_length=6)
    private_subnet_prefix: Count = Field(default=19, ge=16, le=27)
    public_subnet_prefix: Count = Field(default=24, ge=16, le=28)

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
    endpoint_public_access: Switch = False
    endpoint_private_access: Switch = True
    public_access_cidrs: list[Cidr] = Field(default_factory=list)
    service_cidr: Cidr = ipaddress.IPv4Network("172.20.0.0/16")
    log_types: list[LogType] = Field(default_factory=lambda: list(ALL_LOG_TYPES))
    log_retention_days: Count = 90
    deletion_protection: Switch = False
    addons: dict[str, str] = Field(default_factory=dict)
    # What EKS does when the version leaves standard support: STANDARD upgrades it, EXTENDED keeps it at $0.60
    # instead of $0.10 per cluster-hour (EKS's own default is EXTENDED).
    upgrade_policy: UpgradePolicy = "STANDARD"
    # 0.0.0.0/0 in public_access_cidrs only with this set: an API endpoint open to the internet is a decision.
    public_endpoint_open_to_internet: Switch = False
    # runs-on labels of a CI runner that reaches the API endpoint (e.g. a self-hosted runner in the VPC for a
    # private endpoint); `invoke ci.check` refuses a workflow job of this stack that runs elsewhere.
    ci_runner_labels: list[str] = Field(default_factory=list)
    # Private networks whose hosts (an in-VPC CI runner, a VPN) reach the private endpoint: EKS' security groups
    # admit only the cluster's own nodes, so anything else needs an ingress rule on 443.
    private_access_cidrs: list[Cidr] = Field(default_factory=list)

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

    @field_validator("ci_runner_labels")
    @classmethod
    def _runner_labels(cls, value: list[str]) -> list[str]:
        bad = [label for label in value if not _RUNNER_LABEL.match(str(label))]
        if bad:
            raise ValueError(f"not GitHub runner labels: {', '.join(map(str, bad))}; write them like "
                             f"[self-hosted, eks-prod]")
        return value

    @property
    def open_to_internet(self) -> bool:
        return self.endpoint_public_access and any(cidr.prefixlen == 0 for cidr in self.public_access_cidrs)

    @property
    def reachable_from_anywhere(self) -> bool:
        """Any CI runner (GitHub-hosted included) reaches the API: the public endpoint admits every address."""
        return self.open_to_internet

    @model_validator(mode="after")
    def _endpoint(self) -> ClusterConfig:
        if not (self.endpoint_public_access or self.endpoint_private_access):
            raise ValueError("the API endpoint would be unreachable; enable endpoint_private_access "
                             "or endpoint_public_access")
        if self.public_access_cidrs and not self.endpoint_public_access:
            raise ValueError("public_access_cidrs is set but endpoint_public_access is false; "
                             "remove public_access_cidrs or enable public access")
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise ValueError("endpoint_public_access is true with no public_access_cidrs, which EKS reads as "
                             "0.0.0.0/0; list the CIDRs that may reach the endpoint (to open it to everyone on "
                             "purpose write [0.0.0.0/0] and public_endpoint_open_to_internet: true)")
        return self


class Taint(Section):
    """A node taint; key and value follow Kubernetes label syntax (EKS refuses the node group otherwise)."""

    key: str
    value: str = ""
    effect: Literal["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"]

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not _LABEL_KEY.match(value):
            raise ValueError(f"{value!r} is not a taint key; use [prefix/]name with at most 63 alphanumerics, '-', "
                             f"'_' or '.' (e.g. dedicated)")
        return value

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        if not _LABEL_VALUE.match(value):
            raise ValueError(f"{value!r} is not a taint value; use at most 63 alphanumerics, '-', '_' or '.'")
        return value


class Generation(Section):
    """One side of a blue/green pair: an AMI family, the kubelet version it runs and, when the migration changes
    them (an instance family or x86 -> Graviton), its own instance types."""

    ami_type: AmiType
    version: Version | None = None
    release_version: str | None = None
    instance_types: list[str] | None = Field(default=None, min_length=1)

    @field_validator("instance_types")
    @classmethod
    def _instance_types(cls, value: list[str] | None) -> list[str] | None:
        bad = [item for item in value or [] if not _INSTANCE.match(item)]
        if bad:
            raise ValueError(f"not EC2 instance types: {', '.join(bad)}; write them like m6i.large or t4g.medium")
        return value

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
    disk_size_gib: Count = Field(default=50, ge=20, le=2000)
    min_size: Count = Field(ge=0)
    desired_size: Count = Field(ge=0)
    max_size: Count = Field(gt=0, le=450)
    max_unavailable: Count = Field(default=1, ge=1, le=100)
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

    def types_of(self, generation: Generation) -> list[str]:
        """The instance types a generation's node groups launch: its own, else the pool's."""
        return list(generation.instance_types or self.instance_types)


def is_graviton(instance_types: list[str]) -> bool:
    """Graviton families carry a 'g' right after the generation digit (m7g, c6gn, t4g)."""
    return all((match := _INSTANCE.match(item)) is not None and match.group(3).startswith("g")
               for item in instance_types)


def version_issues(env: str, cluster: ClusterConfig, today: date) -> list[ConfigIssue]:
    """The control-plane version judged against the EKS calendar on `today`: creatable, and consistent with the
    upgrade policy; plus a cluster-autoscaler image pinned for it (no KeyError at `pulumi up`)."""
    key = f"{PROJECT}:cluster"
    minor = int(cluster.version.split(".")[1])
    release = CALENDAR.release(minor)  # the Version field only admits minors the calendar has
    newest = CALENDAR.newest_creatable(today)
    newest_text = f"\"{newest.version}\"" if newest else "a version in the calendar"
    support = release.support(today)
    issues = []
    if support is Support.ENDED:
        upgraded = CALENDAR.creatable(today)
        issues.append(ConfigIssue(key=f"{key}.version", problem=(
            f"Kubernetes {release.version} left EKS extended support on {release.end_of_extended}: EKS creates no "
            f"cluster of it and auto-upgrades running ones; set {newest_text} (the newest EKS creates on {today})"
            + (f", or \"{upgraded[0].version}\" where EKS already upgraded a running cluster"
               if upgraded and upgraded[0] is not newest else ""))))
    elif support is Support.UNRELEASED:
        issues.append(ConfigIssue(key=f"{key}.version", problem=(
            f"Kubernetes {release.version} is not on EKS before {release.released} (calendar estimate); set "
            f"{newest_text}, the newest EKS creates on {today}")))
    elif support is Support.EXTENDED and cluster.upgrade_policy == "STANDARD":
        target = CALENDAR.standard_target(minor, today)
        issues.append(ConfigIssue(key=f"{key}.upgrade_policy", problem=(
            f"STANDARD cannot hold Kubernetes {release.version}, which left standard support on "
            f"{release.end_of_standard} (EKS upgrades STANDARD clusters then and refuses STANDARD on a version in "
            f"extended support); set cluster.version to \"{target.version if target else newest_text}\" "
            f"(`invoke cluster.upgrade --env {env}` for a running cluster) or upgrade_policy: EXTENDED "
            f"(+${extended_extra_usd_per_month():.0f}/month)")))
    if minor not in AUTOSCALER_IMAGES:
        issues.append(ConfigIssue(key=f"{key}.version", problem=(
            f"infra/charts.py AUTOSCALER_IMAGES pins no cluster-autoscaler image for {release.version} (the "
            f"autoscaler must match the control plane's minor); add the "
            f"registry.k8s.io/autoscaling/cluster-autoscaler:v{release.version}.N tag")))
    kube_proxy = cluster.addons.get("kube-proxy")
    if kube_proxy and release.creatable(today) and not kube_proxy.startswith(f"v{release.version}."):
        # Only for a creatable version: when the version itself must change, so does this build.
        built_for = re.match(r"^v1\.(\d+)\.", kube_proxy)
        known = f" (1.{built_for.group(1)} is not in the EKS calendar)" if built_for and CALENDAR.get(
            int(built_for.group(1))) is None else ""
        issues.append(ConfigIssue(key=f"{key}.addons.kube-proxy", problem=(
            f"{kube_proxy} does not match cluster version {release.version}{known}; use a "
            f"v{release.version}.x-eksbuild.N build (kube-proxy must match the control plane)")))
    return issues


def endpoint_issues(cluster: ClusterConfig) -> list[ConfigIssue]:
    """A public endpoint open to every address is a decision the file states, not a default it slips into."""
    key = f"{PROJECT}:cluster"
    if cluster.open_to_internet and not cluster.public_endpoint_open_to_internet:
        return [ConfigIssue(key=f"{key}.public_access_cidrs", problem=(
            "0.0.0.0/0 opens the API endpoint to the whole internet; list the CIDRs that may reach it, or say so "
            "on purpose with public_endpoint_open_to_internet: true"))]
    if cluster.public_endpoint_open_to_internet and not cluster.open_to_internet:
        return [ConfigIssue(key=f"{key}.public_endpoint_open_to_internet", problem=(
            "is true but the public endpoint does not admit 0.0.0.0/0; remove it (the allow-list is what applies)"))]
    public = [str(c) for c in cluster.private_access_cidrs if not c.is_private]
    if public:
        return [ConfigIssue(key=f"{key}.private_access_cidrs", problem=(
            f"{', '.join(public)} not private (RFC 1918); the private endpoint is reached from inside the network"))]
    if cluster.private_access_cidrs and not cluster.endpoint_private_access:
        return [ConfigIssue(key=f"{key}.private_access_cidrs", problem=(
            "is set but endpoint_private_access is false; enable it or remove private_access_cidrs"))]
    if cluster.ci_runner_labels and not cluster.endpoint_public_access and not cluster.private_access_cidrs:
        return [ConfigIssue(key=f"{key}.private_access_cidrs", problem=(
            "ci_runner_labels names a runner for the private endpoint, but no private_access_cidrs admits it: the "
            "cluster security group drops its traffic; list the CIDRs of the runner's subnets"))]
    return []


def version_warnings(env: str, cluster: ClusterConfig, today: date) -> list[str]:
    """What `plan`, `preview` and `up` say about the version's support on `today`: extra cost and the day EKS
    upgrades the control plane by itself. Nothing when the version is in standard support for a while."""
    release = CALENDAR.get(int(cluster.version.split(".")[1]))
    if release is None:
        return []
    support, extra = release.support(today), extended_extra_usd_per_month()
    target = CALENDAR.standard_target(release.minor + 1, today)  # the nearest newer version in standard support
    upgrade = (f"`invoke cluster.upgrade --env {env} --to {target.version} --plan-only` shows the steps"
               if target else "")
    key = f"{PROJECT}:cluster"
    if support is Support.EXTENDED:
        return [f"{key}.version {release.version} is in EKS extended support since {release.end_of_standard}: about "
                f"${extra:.0f}/month more per cluster ($0.60 instead of $0.10 per cluster-hour); EKS auto-upgrades "
                f"the control plane after {release.end_of_extended} ({release.days_left(today)} days); {upgrade}"]
    if support is not Support.STANDARD:
        return []
    days = release.days_left(today)
    if cluster.upgrade_policy == "EXTENDED":
        return [f"{key}.upgrade_policy EXTENDED: when {release.version} leaves standard support on "
                f"{release.end_of_standard} ({days} days) the cluster stays on it at about ${extra:.0f}/month more "
                f"instead of being upgraded; STANDARD is the default"]
    if days is not None and days <= 60:
        return [f"{key}.version {release.version} leaves standard support on {release.end_of_standard} ({days} "
                f"days): EKS then upgrades the control plane by itself (upgrade_policy STANDARD); upgrade first"
                + (f": {upgrade}" if upgrade else "")]
    return []


def addon_hosts(pools: dict[str, NodePool]) -> list[str]:
    """Pools whose nodes can run the CoreDNS and EBS CSI controller pods: at least one node and no taint the
    add-ons do not tolerate."""
    def tolerated(taint: Taint) -> bool:
        return taint.effect == "PREFER_NO_SCHEDULE" or taint.key in ADDON_TOLERATED_TAINTS

    return [name for name, pool in pools.items()
            if pool.desired_size > 0 and all(tolerated(taint) for taint in pool.taints)]


def addon_host_issues(pools: dict[str, NodePool]) -> list[ConfigIssue]:
    """The CoreDNS deadlock in config form: the coredns add-on waits for Ready pods, so with no node that can run
    them `pulumi up` sits for 20 minutes and fails with the add-on DEGRADED."""
    if not pools or addon_hosts(pools):
        return []
    return [ConfigIssue(key=f"{PROJECT}:node_pools", problem=(
        "no pool can run CoreDNS and the EBS CSI controller (each has desired_size 0 or a taint other than "
        f"{', '.join(ADDON_TOLERATED_TAINTS)}), so the coredns add-on never becomes ACTIVE and `pulumi up` fails "
        "after 20 minutes; give one pool desired_size >= 1 and no other NO_SCHEDULE/NO_EXECUTE taint"))]
