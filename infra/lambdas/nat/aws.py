"""boto3 clients for the NAT Lambdas: standard retries, bounded timeouts, every AWS call logged as JSON.

Logging hangs off botocore's own event hooks, so no call can slip past it: each log line names the
service, operation, the identifying parameters, the HTTP status and how many retries it took.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

RETRIES = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=3, read_timeout=10)
# Parameters worth seeing in a log line; message bodies and anything else stay out.
LOGGED_PARAMS = ("RouteTableIds", "RouteTableId", "InstanceIds", "InstanceId", "DestinationCidrBlock",
                 "Resources", "Filters", "FunctionName", "TopicArn", "Subject", "Namespace")


def log(event: str, level: str = "info", **fields: Any) -> None:
    """One JSON object per line on stdout: CloudWatch Logs Insights can filter on any field."""
    record = {"ts": round(time.time(), 3), "level": level, "event": event, **fields}
    sys.stdout.write(json.dumps(record, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


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


def client(service: str, session: boto3.session.Session | None = None) -> Any:
    """A client whose endpoint comes from the environment (AWS_ENDPOINT_URL) like any boto3 client."""
    made = (session or boto3.session.Session()).client(service, config=RETRIES)
    before, after, remember, failed = _log_call(service)
    made.meta.events.register("provide-client-params.*.*", remember)
    made.meta.events.register("before-call.*.*", before)
    made.meta.events.register("after-call.*.*", after)
    made.meta.events.register("after-call-error.*.*", failed)
    return made


@dataclass
class Clients:
    """The AWS clients the failover handler uses; tests and benches build their own and inject them."""

    ec2: Any
    cloudwatch: Any
    sns: Any
    lambda_: Any

    @classmethod
    def from_environment(cls) -> Clients:
        session = boto3.session.Session(region_name=os.environ.get("AWS_REGION")
                                        or os.environ.get("AWS_DEFAULT_REGION"))
        return cls(ec2=client("ec2", session), cloudwatch=client("cloudwatch", session),
                   sns=client("sns", session), lambda_=client("lambda", session))
