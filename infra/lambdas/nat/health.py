"""Health of one NAT instance, kept in a tag on the instance itself so it survives Lambda invocations.

Why a tag: it lives and dies with the instance (a replacement starts with a clean record), it needs no
extra resource, and `invoke nat.status` reads it with the same DescribeInstances call. The record names
its instance (`id=`), so a record that reaches another instance (copied tags, a hand edit) is not
trusted: `id=<instance>;ok=<streak>;fail=<streak>;unk=<streak>;since=<epoch of the first pass in the ok
streak>;why=<last failure>`. Anything out of range (negative or huge streaks, a `since` in the future,
passes and failures at once) resets the record: the caller logs the problem and writes a fresh one.
Failover needs `failure_threshold` consecutive failures (or an instant signal: a state change); failback
needs `failback_checks` consecutive passes spanning at least `failback_min_seconds`. Probes that cannot
judge (`unk`) are tolerated for `unknown_limit` rounds; beyond that each one counts as a failure.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from infra.lambdas.nat.contract import AZ_TAG, DRAIN_TAG, HEALTH_TAG, STACK_TAG

__all__ = ["AZ_TAG", "DRAIN_TAG", "HEALTH_TAG", "STACK_TAG", "Health", "NatInstance", "Policy"]

MAX_STREAK = 10_000_000  # ~4 months of one-second rounds; more is a corrupted record
CLOCK_SKEW_S = 300.0  # a `since` further ahead than this was not written by a sane clock
FIELDS = ("id", "ok", "fail", "unk", "since", "why")


@dataclass(frozen=True)
class Policy:
    """How many failures mean down, how much good behaviour earns routes back, how long 'unknown' is tolerated."""

    failure_threshold: int = 2
    failback_checks: int = 30
    failback_min_seconds: float = 120.0
    unknown_limit: int = 10


@dataclass(frozen=True)
class Health:
    instance: str = ""
    ok: int = 0
    fail: int = 0
    unknown: int = 0
    since: float = 0.0
    why: str = ""

    @classmethod
    def parse(cls, text: str | None, instance: str, now: float) -> tuple[Health, str | None]:
        """(record, problem): no tag is a fresh record; a record that does not hold up is a fresh one plus why."""
        fresh = cls(instance=instance)
        if not text:
            return fresh, None
        fields: dict[str, str] = {}
        for part in text.split(";"):
            key, sep, value = part.partition("=")
            if not sep or key not in FIELDS or key in fields:
                return fresh, f"unreadable field {part[:40]!r}"
            fields[key] = value
        owner = fields.get("id", instance)
        if owner != instance:
            return fresh, f"record belongs to {owner[:40]}"
        try:
            streaks = {key: int(fields.get(key, "0")) for key in ("ok", "fail", "unk")}
            since = float(fields.get("since", "0"))
        except ValueError as exc:
            return fresh, f"not a number ({exc})"
        if any(not 0 <= value <= MAX_STREAK for value in streaks.values()):
            return fresh, f"streak out of range {streaks}"
        if not math.isfinite(since) or since < 0 or since > now + CLOCK_SKEW_S:
            return fresh, f"since={fields.get('since')} is not a past epoch second"
        if streaks["ok"] and (streaks["fail"] or not since):
            return fresh, "passes and failures at once, or passes without a start"
        return cls(instance, streaks["ok"], streaks["fail"], streaks["unk"], since, fields.get("why", "")), None

    def render(self) -> str:
        why = self.why.replace(";", ",").replace("=", ":")[:120]
        return (f"id={self.instance};ok={self.ok};fail={self.fail};unk={self.unknown};since={self.since:.0f};"
                f"why={why}")

    def passed(self, now: float) -> Health:
        return Health(self.instance, ok=self.ok + 1, since=self.since if self.ok else now)

    def failed(self, why: str, count: int = 1) -> Health:
        return Health(self.instance, fail=min(self.fail + count, MAX_STREAK), why=why)

    def inconclusive(self, why: str, policy: Policy) -> Health:
        """A probe that could not judge: tolerated up to the limit, then it counts against the instance."""
        unknown = min(self.unknown + 1, MAX_STREAK)
        if unknown > policy.unknown_limit:
            return replace(self.failed(f"no conclusive probe for {unknown} rounds: {why}"), unknown=unknown)
        return replace(self, unknown=unknown)

    def is_down(self, policy: Policy) -> bool:
        return self.fail >= policy.failure_threshold

    def earned_failback(self, policy: Policy, now: float) -> bool:
        return self.ok >= policy.failback_checks and now - self.since >= policy.failback_min_seconds

    def trust(self, policy: Policy, now: float) -> int:
        """2: earned failback, 1: passing, 0: unproven. Failover prefers proven instances over fresh ones."""
        if self.earned_failback(policy, now):
            return 2
        return 1 if self.ok else 0

    def status(self, policy: Policy) -> str:
        if self.is_down(policy):
            return "down"
        if self.fail or self.unknown:
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
    draining: bool = False  # a drain mark that has not expired
    public_ip: str | None = None  # its Elastic IP once associated: the address its egress must leave from
    launched: float = 0.0  # LaunchTime, epoch seconds
    group: str | None = None  # its Auto Scaling group
    problem: str | None = None  # why its health tag was not trusted (reset), for the caller to log

    def usable(self, policy: Policy) -> bool:
        """May carry traffic: running, not being rotated out, not declared down."""
        return self.serviceable(policy) and not self.draining

    def serviceable(self, policy: Policy) -> bool:
        """Could carry traffic if nothing better exists: a draining instance is a last resort, not a no.
        An instance without its Elastic IP (a replacement the launch hook has not adopted) cannot."""
        return self.state == "running" and self.public_ip is not None and not self.health.is_down(policy)

    def with_health(self, health: Health) -> NatInstance:
        return replace(self, health=health)
