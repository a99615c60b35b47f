"""Health of one NAT instance, kept in a tag on the instance itself so it survives Lambda invocations.

Why a tag: it lives and dies with the instance (a replaced instance starts with a clean record), it
needs no extra resource, and `invoke nat.status` reads it with the same DescribeInstances call.
The record is `ok=<streak>;fail=<streak>;since=<epoch of first pass in the ok streak>;why=<last failure>`.
Failover needs `failure_threshold` consecutive failures (or an instant signal: state change, alarm);
failback needs `failback_checks` consecutive passes spanning at least `failback_min_seconds`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

HEALTH_TAG = "eks-platform:nat-health"
STACK_TAG = "eks-platform:nat-stack"
AZ_TAG = "eks-platform:nat-az"
DRAIN_TAG = "eks-platform:nat-drain"


@dataclass(frozen=True)
class Policy:
    """How many failures mean down, how much good behaviour earns routes back."""

    failure_threshold: int = 2
    failback_checks: int = 30
    failback_min_seconds: float = 120.0


@dataclass(frozen=True)
class Health:
    ok: int = 0
    fail: int = 0
    since: float = 0.0
    why: str = ""

    @classmethod
    def parse(cls, text: str | None) -> Health:
        """Unknown or garbled tags read as 'no record' (a fresh instance), never as an error."""
        fields = dict(part.split("=", 1) for part in (text or "").split(";") if "=" in part)
        try:
            return cls(ok=int(fields.get("ok", 0)), fail=int(fields.get("fail", 0)),
                       since=float(fields.get("since", 0.0)), why=fields.get("why", ""))
        except ValueError:
            return cls()

    def render(self) -> str:
        return f"ok={self.ok};fail={self.fail};since={self.since:.0f};why={self.why[:120]}"

    def passed(self, now: float) -> Health:
        return Health(ok=self.ok + 1, fail=0, since=self.since if self.ok else now)

    def failed(self, why: str, count: int = 1) -> Health:
        return Health(ok=0, fail=self.fail + count, since=0.0, why=why)

    def is_down(self, policy: Policy) -> bool:
        return self.fail >= policy.failure_threshold

    def earned_failback(self, policy: Policy, now: float) -> bool:
        return self.ok >= policy.failback_checks and now - self.since >= policy.failback_min_seconds

    def status(self, policy: Policy) -> str:
        if self.is_down(policy):
            return "down"
        if self.fail:
            return "suspect"
        return "healthy" if self.ok else "unknown"


@dataclass(frozen=True)
class NatInstance:
    """One NAT instance as DescribeInstances shows it, with its health record and drain mark."""

    id: str
    az: str
    state: str
    enis: tuple[str, ...]
    health: Health
    draining: bool = False

    def usable(self, policy: Policy) -> bool:
        """May carry traffic: running, not being rotated out, not declared down."""
        return self.state == "running" and not self.draining and not self.health.is_down(policy)

    def with_health(self, health: Health) -> NatInstance:
        return replace(self, health=health)
