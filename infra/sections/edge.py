"""The `edge` section: public hostnames, the Route 53 zone they live in, TLS policy and optional WAF / Shield.

Absent, a stack has no public edge: no load balancer controller, no certificate, and lint refuses any Ingress.
The certificate covers exactly the hostnames listed here, so every hostname must sit inside the zone ACM
validates it through and ExternalDNS may write to (docs/traffic-edge.md).
"""
from __future__ import annotations

import re

from pydantic import Field, field_validator

from infra.sections.base import PROJECT, ConfigIssue, Section, Switch

# AWS's recommended ALB policy for new listeners: TLS 1.3 + 1.2 only, hybrid post-quantum key exchange for the
# clients that offer it (docs.aws.amazon.com/elasticloadbalancing/latest/application/describe-ssl-policies.html,
# checked 2026-12-05). Every allowed policy refuses TLS 1.0/1.1.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"
MODERN_TLS_POLICIES = (TLS_POLICY, "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09", "ELBSecurityPolicy-TLS13-1-3-PQ-2025-09",
                       "ELBSecurityPolicy-TLS13-1-2-Res-2021-06", "ELBSecurityPolicy-TLS13-1-2-2021-06",
                       "ELBSecurityPolicy-TLS13-1-3-2021-06")
ACM_MAX_NAMES = 10  # ACM's default quota of domain names per certificate
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_WAF_ARN = re.compile(r"^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:\d{12}:regional/webacl/[A-Za-z0-9_-]+/[0-9a-f-]{36}$")
_SERVICE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class EdgeConfig(Section):
    """Public HTTPS edge: an ALB per stack, one ACM certificate for `hostnames`, DNS in `zone_name`."""

    zone_name: str
    zone_id: str
    hostnames: dict[str, str] = Field(min_length=1)  # service -> its public hostname
    tls_policy: str = TLS_POLICY
    waf_acl_arn: str | None = None      # a regional WAFv2 web ACL to put in front of the load balancer
    shield_advanced: Switch = False     # needs an AWS Shield Advanced subscription on the account

    @field_validator("zone_name")
    @classmethod
    def _zone_name(cls, value: str) -> str:
        if not _DNS_NAME.match(value):
            raise ValueError(f"{value!r} is not a DNS zone name; write it lowercase without a trailing dot, "
                             f"like example.com")
        return value

    @field_validator("zone_id")
    @classmethod
    def _zone_id(cls, value: str) -> str:
        if not _ZONE_ID.match(value):
            raise ValueError(f"{value!r} is not a Route 53 hosted zone ID; copy it from `aws route53 "
                             f"list-hosted-zones` (it looks like Z0123456789ABCDEFGHIJ, without /hostedzone/)")
        return value

    @field_validator("hostnames")
    @classmethod
    def _hostnames(cls, value: dict[str, str]) -> dict[str, str]:
        for service, host in value.items():
            if not _SERVICE.match(service):
                raise ValueError(f"{service!r} is not a service name; use the name of a base under infra/k8s/base")
            if not isinstance(host, str) or not _DNS_NAME.match(host):
                raise ValueError(f"hostnames.{service}: {host!r} is not a lowercase DNS name like api.example.com "
                                 f"(wildcards are not served: name each host)")
        if len(set(value.values())) != len(value):
            raise ValueError("two services share a hostname; give each service its own")
        if len(value) > ACM_MAX_NAMES:
            raise ValueError(f"{len(value)} hostnames exceed the {ACM_MAX_NAMES} names one ACM certificate holds")
        return value

    @field_validator("tls_policy")
    @classmethod
    def _tls_policy(cls, value: str) -> str:
        if value not in MODERN_TLS_POLICIES:
            raise ValueError(f"{value!r} is not one of the TLS 1.2+/1.3 policies the edge allows; use "
                             f"{TLS_POLICY} (AWS's recommendation) or one of {', '.join(MODERN_TLS_POLICIES[1:])}")
        return value

    @field_validator("waf_acl_arn")
    @classmethod
    def _waf(cls, value: str | None) -> str | None:
        if value is not None and not _WAF_ARN.match(value):
            raise ValueError(f"{value!r} is not a regional WAFv2 web ACL ARN (arn:aws:wafv2:<region>:<account>:"
                             f"regional/webacl/<name>/<id>); an ALB takes only regional ACLs")
        return value

    @property
    def names(self) -> list[str]:
        """The certificate's names: the first is its subject, the rest alternative names (config order)."""
        return list(self.hostnames.values())


def edge_issues(edge: EdgeConfig, region: str | None) -> list[ConfigIssue]:
    """Hostnames outside the zone (ACM could not validate them, ExternalDNS could not publish them), and a WAF ACL
    in another region than the load balancer."""
    issues = []
    for service, host in edge.hostnames.items():
        if host != edge.zone_name and not host.endswith(f".{edge.zone_name}"):
            issues.append(ConfigIssue(key=f"{PROJECT}:edge.hostnames.{service}", problem=(
                f"{host} is not in the hosted zone {edge.zone_name} (edge.zone_name); use a name ending in "
                f".{edge.zone_name} or point zone_name/zone_id at the zone that holds {host}")))
    if edge.waf_acl_arn and region and edge.waf_acl_arn.split(":")[3] != region:
        issues.append(ConfigIssue(key=f"{PROJECT}:edge.waf_acl_arn", problem=(
            f"the web ACL is in {edge.waf_acl_arn.split(':')[3]} but the load balancer is in {region}; use a "
            f"regional ACL of {region}")))
    return issues
