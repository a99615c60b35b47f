"""boto3 clients for the NAT Lambdas: retries bounded by a deadline, short timeouts, every AWS call logged as JSON.

Retries are botocore's standard ones (its retryable-error rules, its jittered exponential backoff), with
two changes made through botocore's own `needs-retry` hook: a retry happens only while the invocation's
current deadline (`Budget.until`) can still afford the wait plus another attempt, and the wait goes
through `Budget.sleep`, so tests and the bench run on simulated time. botocore alone would back off for
up to 20 s per attempt, past a probe round or the Lambda's own timeout. A call started after the deadline
fails at once with DeadlineExceeded, so nothing runs past the Lambda's timeout.

Logging hangs off botocore's event hooks too, so no call can slip past it: each line names the service,
operation, the identifying parameters, the HTTP status and how many retries it took.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.retries import standard

MAX_ATTEMPTS = 5
MAX_BACKOFF_S = 5.0  # one wait never exceeds this, whatever the deadline
ATTEMPT_FLOOR_S = 0.25  # a retry needs at least this much time left after its wait
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 2, 5
# Parameters worth seeing in a log line; message bodies and anything else stay out.
LOGGED_PARAMS = ("RouteTableIds", "RouteTableId", "InstanceIds", "InstanceId", "DestinationCidrBlock",
                 "Resources", "Filters", "FunctionName", "TopicArn", "Subject", "Namespace", "AllocationId",
                 "AutoScalingGroupName", "LifecycleActionResult")


class DeadlineExceeded(Exception):
    """An AWS call was not started (or not retried) because the invocation's deadline had passed."""


def log(event: str, level: str = "info", **fields: Any) -> None:
    """One JSON object per line on stdout: CloudWatch Logs Insights can filter on any field."""
    record = {"ts": round(time.time(), 3), "level": level, "event": event, **fields}
    sys.stdout.write(json.dumps(record, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


@dataclass
class Budget:
    """The time every call made through these clients must finish by, and the clock and sleep it is judged on."""

    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    until: float = math.inf

    def remaining(self) -> float:
        return self.until - self.clock()


class DeadlineRetry:
    """botocore's standard retry decision and backoff, refused when the budget cannot afford it."""

    def __init__(self, service: str, budget: Budget, max_attempts: int = MAX_ATTEMPTS):
        self.service, self.budget = service, budget
        adapter = standard.RetryEventAdapter()
        self._adapter = adapter
        self._policy = standard.RetryPolicy(
            retry_checker=standard.StandardRetryConditions(max_attempts=max_attempts),
            retry_backoff=standard.ExponentialBackoff(max_backoff=MAX_BACKOFF_S, service_name=service,
                                                      throttling_detector=standard.ThrottlingErrorDetector(adapter)))

    def needs_retry(self, **kwargs: Any) -> float | bool:
        """Registered first on `needs-retry`: its answer wins. False: no retry; 0: retry now (we already slept)."""
        context = self._adapter.create_retry_context(**kwargs)
        if not self._policy.should_retry(context):
            return False
        delay = self._policy.compute_retry_delay(context)
        if delay + ATTEMPT_FLOOR_S > self.budget.remaining():
            log("retry_refused", level="warning", service=self.service, operation=kwargs["operation"].name,
                attempts=kwargs.get("attempts"), error=context.get_error_code() or type(context.caught_exception).__name__,
                remaining_s=round(self.budget.remaining(), 3))
            return False
        self.budget.sleep(delay)
        return 0

    def before_call(self, model: Any, **_: Any) -> None:
        if self.budget.remaining() <= 0:
            raise DeadlineExceeded(f"{self.service} {model.name} not started: the invocation's deadline has passed")


def _params(params: dict[str, Any]) -> dict[str, Any]:
    return {key: params[key] for key in LOGGED_PARAMS if key in params}


def _elapsed_ms(context: dict[str, Any]) -> float:
    return round((time.monotonic() - context.get("nat_started", time.monotonic())) * 1000, 1)


def _log_call(service: str):
    """botocore hooks; per-call state rides in the request context, so parallel calls never mix."""

    def before(context: dict[str, Any], **_: Any) -> None:
        context["nat_started"] = time.monotonic()

    def after(http_response: Any, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        meta = parsed.get("ResponseMetadata", {})
        error = parsed.get("Error", {}).get("Code")
        log("aws_call", level="error" if error else "info", service=service, operation=model.name,
            params=_params(context.get("nat_params", {})), status=meta.get("HTTPStatusCode"),
            retries=meta.get("RetryAttempts", 0), error=error, ms=_elapsed_ms(context))

    def remember(params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        context["nat_params"], context["nat_operation"] = dict(params), model.name

    def failed(exception: Exception, context: dict[str, Any], **_: Any) -> None:
        log("aws_call", level="error", service=service, operation=context.get("nat_operation", "?"),
            params=_params(context.get("nat_params", {})), error=type(exception).__name__, detail=str(exception),
            ms=_elapsed_ms(context))

    return before, after, remember, failed


def client(service: str, session: boto3.session.Session | None = None, budget: Budget | None = None,
           read_timeout: float = READ_TIMEOUT_S) -> Any:
    """A client whose endpoint comes from the environment (AWS_ENDPOINT_URL) like any boto3 client."""
    config = Config(retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                    connect_timeout=CONNECT_TIMEOUT_S, read_timeout=read_timeout)
    made = (session or boto3.session.Session()).client(service, config=config)
    name = made.meta.service_model.service_id.hyphenize()
    guard = DeadlineRetry(name, budget or Budget())
    made.meta.events.register_first(f"needs-retry.{name}", guard.needs_retry, unique_id=f"nat-deadline-{name}")
    made.meta.events.register_first(f"before-call.{name}", guard.before_call, unique_id=f"nat-started-{name}")
    before, after, remember, failed = _log_call(service)
    made.meta.events.register("provide-client-params.*.*", remember)
    made.meta.events.register("before-call.*.*", before)
    made.meta.events.register("after-call.*.*", after)
    made.meta.events.register("after-call-error.*.*", failed)
    return made


@dataclass
class Clients:
    """The AWS clients the failover handler uses, sharing one Budget; tests and benches build their own."""

    ec2: Any
    cloudwatch: Any
    sns: Any
    lambda_: Any
    autoscaling: Any
    budget: Budget = field(default_factory=Budget)

    @classmethod
    def from_environment(cls, probe_read_timeout: float = READ_TIMEOUT_S) -> Clients:
        session = boto3.session.Session(region_name=os.environ.get("AWS_REGION")
                                        or os.environ.get("AWS_DEFAULT_REGION"))
        budget = Budget()
        return cls(ec2=client("ec2", session, budget), cloudwatch=client("cloudwatch", session, budget),
                   sns=client("sns", session, budget),
                   lambda_=client("lambda", session, budget, read_timeout=probe_read_timeout),
                   autoscaling=client("autoscaling", session, budget), budget=budget)
