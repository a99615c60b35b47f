"""Network, control plane and node pool sections: what the foundation components declare."""
from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from infra.sections.base import Cidr, Count, Name, Section, Switch, Version

AmiType = Literal["AL2_x86_64", "AL2_ARM_64", "AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD",
                  "BOTTLEROCKET_x86_64", "BOTTLEROCKET_ARM_64"]
LogType = Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]
ADDONS = ("vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver")

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
    private_subnet_prefix: Count = Field(19, ge=16, le=27)
    public_subnet_prefix: Count = Field(24, ge=16, le=28)

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
    log_types: list[LogType] = Field(default_factory=lambda: ["api", "audit", "authenticator",
                                                               "controllerManager", "scheduler"])
    log_retention_days: Count = 90
    deletion_protection: Switch = False
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
        if self.endpoint_public_access and not self.public_access_cidrs:
            raise ValueError("endpoint_public_access is true with no public_access_cidrs, which EKS reads as "
                             "0.0.0.0/0; list the CIDRs that may reach the endpoint (write [0.0.0.0/0] to open it "
                             "to everyone on purpose)")
        kube_proxy = self.addons.get("kube-proxy")
        if kube_proxy and not kube_proxy.startswith(f"v{self.version}."):
            raise ValueError(f"add-on kube-proxy {kube_proxy} does not match cluster version {self.version}; "
                             f"use a v{self.version}.x-eksbuild.N build")
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
    disk_size_gib: Count = Field(50, ge=20, le=2000)
    min_size: Count = Field(ge=0)
    desired_size: Count = Field(ge=0)
    max_size: Count = Field(gt=0, le=450)
    max_unavailable: Count = Field(1, ge=1, le=100)
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
