"""The public edge as `platform.status` shows it: per hostname, its load balancer, target health, certificate expiry.

Read from AWS only (elbv2, acm through infra/ops/io/aws.py): the load balancer is the one the controller made
for the stack's Ingress group (found by the controller's own tags), the certificate the ACM one covering the
host. Nothing here needs the cluster, so the edge shows even when the API server does not answer.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.config import StackConfig

CLUSTER_TAG = "elbv2.k8s.aws/cluster"   # the controller tags every load balancer and target group it owns
STACK_TAG = "ingress.k8s.aws/stack"     # ... with the Ingress group it serves
RESOURCE_TAG = "ingress.k8s.aws/resource"
RENEWAL_WARNING_DAYS = 21  # ACM renews managed certificates 60 days ahead; 21 days left means renewal is stuck
KEY_TYPES = ["RSA_2048", "RSA_3072", "RSA_4096", "EC_prime256v1", "EC_secp384r1", "EC_secp521r1"]


@dataclass(frozen=True)
class PublicHost:
    """One public hostname and what serves it."""

    host: str
    service: str
    load_balancer: str = ""                                # DNS name; "" when none exists yet
    state: str = "no load balancer"
    targets: dict[str, int] = field(default_factory=dict)  # target health state -> count
    certificate_status: str = "no certificate"
    expires: str = ""                                      # ISO date the certificate expires
    days_left: int | None = None

    @property
    def problems(self) -> list[str]:
        found = []
        if self.state != "active":
            found.append(f"load balancer {self.state}")
        if not self.targets.get("healthy"):
            found.append("no healthy target")
        if self.certificate_status != "ISSUED":
            found.append(f"certificate {self.certificate_status}")
        elif self.days_left is not None and self.days_left < RENEWAL_WARNING_DAYS:
            found.append(f"certificate expires in {self.days_left} days")
        return found


def _pages(call: Callable[..., dict[str, Any]], key: str, token: str = "Marker", next_key: str = "NextMarker",
           **kwargs: Any) -> Iterator[dict[str, Any]]:
    while True:
        page = call(**kwargs)
        yield from page.get(key) or []
        if not page.get(next_key):
            return
        kwargs[token] = page[next_key]


def _tags(elbv2: Any, arns: list[str]) -> dict[str, dict[str, str]]:
    tags = {}
    for start in range(0, len(arns), 20):  # DescribeTags takes at most 20 ARNs
        for entry in elbv2.describe_tags(ResourceArns=arns[start:start + 20])["TagDescriptions"]:
            tags[entry["ResourceArn"]] = {tag["Key"]: tag["Value"] for tag in entry.get("Tags") or []}
    return tags


def _load_balancer(elbv2: Any, cluster: str, group: str) -> dict[str, Any] | None:
    balancers = list(_pages(elbv2.describe_load_balancers, "LoadBalancers"))
    tags = _tags(elbv2, [lb["LoadBalancerArn"] for lb in balancers])
    return next((lb for lb in balancers if tags.get(lb["LoadBalancerArn"], {}).get(CLUSTER_TAG) == cluster
                 and tags[lb["LoadBalancerArn"]].get(STACK_TAG) == group), None)


def _target_health(elbv2: Any, balancer: dict[str, Any], service: str) -> dict[str, int]:
    """Target states of the service's target groups (the controller tags each with `<ns>/<ingress>-<svc>:<port>`)."""
    groups = list(_pages(elbv2.describe_target_groups, "TargetGroups", LoadBalancerArn=balancer["LoadBalancerArn"]))
    tags = _tags(elbv2, [g["TargetGroupArn"] for g in groups])
    states: Counter[str] = Counter()
    for group in groups:
        resource = tags.get(group["TargetGroupArn"], {}).get(RESOURCE_TAG, "")
        if f"-{service}:" not in resource and len(groups) > 1:
            continue
        for target in elbv2.describe_target_health(TargetGroupArn=group["TargetGroupArn"])["TargetHealthDescriptions"]:
            states[(target.get("TargetHealth") or {}).get("State", "unknown")] += 1
    return dict(states)


def _covers(certificate: dict[str, Any], host: str) -> bool:
    names = [certificate.get("DomainName", ""), *(certificate.get("SubjectAlternativeNameSummaries") or [])]
    return any(name == host or (name.startswith("*.") and host.partition(".")[2] == name[2:]) for name in names)


def _certificate(acm: Any, host: str) -> dict[str, Any] | None:
    """The ACM certificate covering `host` that expires last (a renewal or reissue may briefly overlap)."""
    found = [c for c in _pages(acm.list_certificates, "CertificateSummaryList", token="NextToken",
                               next_key="NextToken", Includes={"keyTypes": KEY_TYPES}) if _covers(c, host)]
    described = [acm.describe_certificate(CertificateArn=c["CertificateArn"])["Certificate"] for c in found]
    return max(described, key=lambda c: (c.get("Status") == "ISSUED", c.get("NotAfter") or datetime.min.replace(
        tzinfo=UTC)), default=None)


def public_hosts(cfg: StackConfig, now: datetime | None = None) -> list[PublicHost]:
    """Every hostname of the stack's eks-platform:edge with its load balancer, targets and certificate."""
    from infra.ops.io import aws

    if cfg.edge is None:
        return []
    now = now or datetime.now(UTC)
    elbv2, acm = aws.client("elbv2", cfg.region), aws.client("acm", cfg.region)
    balancer = _load_balancer(elbv2, cfg.cluster.name, f"{cfg.cluster.name}-public")
    rows = []
    for service, host in cfg.edge.hostnames.items():
        row: dict[str, Any] = {"host": host, "service": service}
        if balancer is not None:
            row.update(load_balancer=balancer.get("DNSName", ""),
                       state=(balancer.get("State") or {}).get("Code", "unknown"),
                       targets=_target_health(elbv2, balancer, service))
        certificate = _certificate(acm, host)
        if certificate is not None:
            expires = certificate.get("NotAfter")
            row.update(certificate_status=certificate.get("Status", "unknown"),
                       expires=expires.date().isoformat() if expires else "",
                       days_left=(expires - now).days if expires else None)
        rows.append(PublicHost(**row))
    return rows
