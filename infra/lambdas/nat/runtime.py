"""What one failover invocation runs with: settings from the environment, clients, probe, clock, and its tally.

Fault isolation starts here: `Tally.attempt` runs one AWS call (already retried by botocore within the
deadline, infra/lambdas/nat/aws.py) and turns its failure into a reported error instead of an exception,
so one throttled table, publish or metric never stops the others.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from infra.lambdas.nat.aws import Clients, DeadlineExceeded, log
from infra.lambdas.nat.health import NatInstance, Policy

T = TypeVar("T")
AWS_FAILURES = (ClientError, BotoCoreError, DeadlineExceeded)


class SettingsError(ValueError):
    """The function's environment is wrong: a deployment problem, reported once and loudly."""


@dataclass(frozen=True)
class Settings:
    stack: str
    route_tables: dict[str, str]  # private route table ID -> home NAT AZ
    topic_arn: str
    probe_functions: dict[str, str] = field(default_factory=dict)  # NAT AZ -> probe Lambda name
    probe_tables: dict[str, str] = field(default_factory=dict)  # NAT AZ -> route table of its probe subnet
    addresses: dict[str, str] = field(default_factory=dict)  # NAT AZ -> Elastic IP allocation ID
    policy: Policy = Policy()
    interval: float = 1.0
    probe_timeout: float = 1.0
    prove_path: bool = True  # echo mode: a pass needs the instance's own EIP as the observed source
    window: float = 55.0

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> Settings:
        def read(name: str, parse: Callable[[str], Any], default: Any = None) -> Any:
            raw = env.get(name)
            if raw is None:
                if default is None:
                    raise SettingsError(f"{name} is not set; deploy the function with infra/components/nat.py")
                return default
            try:
                return parse(raw)
            except (ValueError, TypeError) as exc:
                raise SettingsError(f"{name}={raw!r} is invalid ({exc})") from None

        def mapping(name: str, required: bool = False) -> dict[str, str]:
            found = read(name, json.loads, None if required else {})
            if not isinstance(found, dict) or not all(isinstance(v, str) for v in found.values()) \
                    or (required and not found):
                raise SettingsError(f"{name} must be a JSON object of strings")
            return found

        mode = read("NAT_PROBE_MODE", str, "echo")
        if mode not in ("echo", "tcp"):
            raise SettingsError(f"NAT_PROBE_MODE={mode!r} is invalid (echo or tcp)")
        return cls(stack=read("NAT_STACK", str), route_tables=mapping("NAT_ROUTE_TABLES", required=True),
                   topic_arn=read("NAT_TOPIC_ARN", str), probe_functions=mapping("NAT_PROBE_FUNCTIONS"),
                   probe_tables=mapping("NAT_PROBE_TABLES"), addresses=mapping("NAT_ADDRESSES"),
                   policy=Policy(failure_threshold=read("NAT_FAILURE_THRESHOLD", int, 2),
                                 failback_checks=read("NAT_FAILBACK_CHECKS", int, 30),
                                 failback_min_seconds=read("NAT_FAILBACK_MIN_SECONDS", float, 120.0),
                                 unknown_limit=read("NAT_PROBE_UNKNOWN_LIMIT", int, 10)),
                   interval=read("NAT_PROBE_INTERVAL", float, 1.0), probe_timeout=read("NAT_PROBE_TIMEOUT", float, 1.0),
                   prove_path=mode == "echo", window=read("NAT_PROBE_WINDOW", float, 55.0))


def wait_for(futures: Iterable[Future], timeout: float) -> set[Future]:
    """The futures done within `timeout` seconds (the round's deadline); the rest keep running unawaited."""
    return wait_futures(futures, timeout=max(0.0, timeout)).done


@dataclass
class Runtime:
    settings: Settings
    clients: Clients
    probe: Callable[[NatInstance], Any]
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    wait: Callable[[Mapping[Future, str], float], set[Future]] = wait_for  # (future -> instance ID, timeout)

    def __post_init__(self) -> None:
        self.clients.budget.clock, self.clients.budget.sleep = self.clock, self.sleep

    @contextmanager
    def deadline(self, until: float) -> Iterator[None]:
        """Every AWS call inside finishes (retries included) by `until`, and none starts after it."""
        budget = self.clients.budget
        previous, budget.until = budget.until, min(until, budget.until)
        try:
            yield
        finally:
            budget.until = previous


@dataclass
class Tally:
    """What one invocation did and what failed, for metrics, notifications and the return value."""

    moves: list[dict[str, Any]] = field(default_factory=list)
    healthy: list[int] = field(default_factory=list)
    latency: dict[str, list[float]] = field(default_factory=dict)
    probe_failures: dict[str, int] = field(default_factory=dict)
    probe_unknown: dict[str, int] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    reported: set[str] = field(default_factory=set)  # one-per-invocation reports already made

    def attempt(self, what: str, call: Callable[[], T]) -> T | None:
        """`call()`, or None with the failure logged and counted: one failed AWS call fails alone."""
        try:
            return call()
        except AWS_FAILURES as exc:
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            error = code or type(exc).__name__
            self.errors.append({"what": what, "error": error})
            log("aws_failed", level="error", what=what, error=error, detail=str(exc)[:300])
            return None

    def once(self, key: str) -> bool:
        """True the first time `key` is reported in this invocation."""
        if key in self.reported:
            return False
        self.reported.add(key)
        return True

    def count(self, table: dict[str, int], az: str) -> None:
        table[az] = table.get(az, 0) + 1
