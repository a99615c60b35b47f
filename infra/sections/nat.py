"""The `nat` section: dual NAT instances (or gateways) and their failover settings."""
from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from infra.sections.base import PROJECT, ConfigIssue, Count, Number, Section
from infra.sections.core import _INSTANCE, NetworkConfig, subnet_plan

if TYPE_CHECKING:
    from infra.config import StackConfig

NatMode = Literal["dual-instance", "gateway", "none"]
ProbeMode = Literal["echo", "tcp"]
AL2023_ARM64_AMI = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"


class NatConfig(Section):
    """Private-subnet egress: two NAT instances with failover Lambdas, NAT Gateways, or none.

    Probe and hysteresis knobs are the failover time budget (docs/nat.md): detection is about
    probe_interval_seconds * failure_threshold + probe_timeout_seconds. probe_mode echo passes a probe only
    when probe_echo_url (a service answering with the caller's IPv4 address) saw the instance's own Elastic
    IP; tcp is reachability of probe_targets only, for accounts that may not call such a service.
    """

    mode: NatMode = "dual-instance"
    instance_type: str = "t4g.nano"
    ami_parameter: str = AL2023_ARM64_AMI
    azs: list[str] | None = None
    probe_targets: list[str] = Field(default_factory=lambda: ["https://checkip.amazonaws.com/",
                                                              "tcp://1.1.1.1:443", "tcp://8.8.8.8:443"],
                                     min_length=1, max_length=5)
    probe_mode: ProbeMode = "echo"
    probe_echo_url: str = "https://checkip.amazonaws.com/"
    probe_unknown_limit: Count = Field(default=10, ge=1, le=600)
    probe_interval_seconds: Number = Field(default=1.0, ge=0.5, le=30)
    probe_timeout_seconds: Number = Field(default=1.0, ge=0.2, le=10)
    failure_threshold: Count = Field(default=2, ge=1, le=10)
    failback_checks: Count = Field(default=30, ge=1, le=1000)
    failback_min_seconds: Count = Field(default=120, ge=0, le=3600)
    probe_window_seconds: Count = Field(default=55, ge=10, le=55)
    probe_subnet_prefix: Count = Field(default=28, ge=24, le=28)
    # CPU comes with memory (1,769 MB = one vCPU): more shortens a cold start on the event path, at a price.
    failover_memory_mb: Count = Field(default=128, ge=128, le=3008)
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

    @field_validator("probe_echo_url")
    @classmethod
    def _echo_url(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?(/\S*)?", value):
            raise ValueError(f"probe_echo_url {value!r} is not an http(s)://host[/path] URL")
        return value

    @field_validator("alarm_emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        for email in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]{2,}", email):
                raise ValueError(f"{email!r} is not an e-mail address; write it like oncall@example.com")
        return value

    @model_validator(mode="after")
    def _nat_consistent(self) -> NatConfig:
        arm = bool(re.match(r"^[a-z]+\d+[a-z]*g[a-z]*\.", self.instance_type))
        if arm != ("arm64" in self.ami_parameter):
            raise ValueError(f"instance_type {self.instance_type} is {'arm64' if arm else 'x86_64'} but "
                             f"ami_parameter {self.ami_parameter} is not; match them (e.g. t4g.nano with "
                             f"{AL2023_ARM64_AMI})")
        if self.probe_timeout_seconds > self.probe_interval_seconds:
            raise ValueError("probe_timeout_seconds exceeds probe_interval_seconds; probes would overlap; "
                             "lower the timeout or raise the interval")
        if self.probe_mode == "echo" and not self.probe_echo_url:
            raise ValueError("probe_mode echo needs probe_echo_url (a URL answering with the caller's address); "
                             "set one, or probe_mode: tcp")
        if self.azs is not None and (len(self.azs) != 2 or self.azs[0] == self.azs[1]):
            raise ValueError("azs must name exactly two different AZs (one per NAT instance)")
        return self


def nat_azs(cfg: StackConfig) -> list[str]:
    """AZs of the two NAT instances (or gateways): configured, else the first two network AZs."""
    return _azs(cfg.nat, cfg.network)


def nat_probe_subnets(cfg: StackConfig) -> dict[str, str]:
    """NAT AZ -> CIDR of its probe subnet, carved from the public-size block just below the public subnets."""
    return _probe_subnets(cfg.nat, cfg.network)


def _azs(nat: NatConfig, network: NetworkConfig) -> list[str]:
    return list(nat.azs or network.azs[:2])


def _probe_subnets(nat: NatConfig, network: NetworkConfig) -> dict[str, str]:
    blocks = list(network.cidr.subnets(new_prefix=network.public_subnet_prefix))
    block = blocks[-len(network.azs) - 1]
    if nat.probe_subnet_prefix < block.prefixlen:
        raise ValueError(f"probe_subnet_prefix /{nat.probe_subnet_prefix} is larger than the "
                         f"/{block.prefixlen} block reserved for probe subnets; use /{block.prefixlen} or longer")
    private = [ipaddress.IPv4Network(priv) for _, priv in subnet_plan(network).values()]
    if any(block.overlaps(subnet) for subnet in private):
        raise ValueError(f"no free block for NAT probe subnets: {block} overlaps the private subnets; use a "
                         f"larger VPC CIDR or longer private_subnet_prefix")
    probes = block.subnets(new_prefix=nat.probe_subnet_prefix)
    return {az: str(next(probes)) for az in _azs(nat, network)}


def nat_issues(nat: NatConfig, network: NetworkConfig) -> list[ConfigIssue]:
    """NAT instances need two AZs of the VPC and room for their probe subnets."""
    if nat.mode == "none":
        return []
    key = f"{PROJECT}:nat"
    unknown = [az for az in nat.azs or [] if az not in network.azs]
    if unknown:
        return [ConfigIssue(key=f"{key}.azs", problem=f"{', '.join(unknown)} not in network.azs; "
                                                      f"pick two of {', '.join(network.azs)}")]
    if len(_azs(nat, network)) < 2:
        return [ConfigIssue(key=f"{key}.mode", problem=f"{nat.mode} needs two AZs but network.azs has one; "
                                                       f"add an AZ or set nat.mode: none")]
    if nat.mode == "dual-instance":
        try:
            _probe_subnets(nat, network)
        except ValueError as exc:
            return [ConfigIssue(key=f"{key}.probe_subnet_prefix", problem=str(exc))]
    return []
