"""boto3 clients for the ops engines, all with one bounded retry policy (botocore standard mode).

Endpoints come from the environment (AWS_ENDPOINT_URL, profiles), never from code. Throttling and 5xx get
botocore's standard retries (jittered backoff, MAX_ATTEMPTS); an endpoint that cannot be reached at all is
retried for at most EKS_PLATFORM_CONNECT_BUDGET_S (infra.ops.io.retry), and every wait is announced through
infra.ops.io.retry.notice, which the CLI shows as a spinner on a terminal.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore import exceptions as boto
from botocore.config import Config

from infra.ops.errors import ENDPOINT_KEY, Failed
from infra.ops.io.retry import connect_budget_s, notice, waiting

MAX_ATTEMPTS = 6
CONNECT_TIMEOUT_S, READ_TIMEOUT_S = 5, 30
RETRIES = Config(retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS}, connect_timeout=CONNECT_TIMEOUT_S,
                 read_timeout=READ_TIMEOUT_S)
_UNREACHABLE = (boto.ConnectionError, boto.HTTPClientError)  # refused, timed out, closed, TLS: nothing answered
_STARTED = "eks-platform-first-attempt"


def session(region: str | None) -> Any:
    """A boto3 Session for `region`, credentials and endpoint from the environment: for callers that need several
    clients on one set of credentials (an EKS token signed by the identity that described the cluster)."""
    return boto3.session.Session(region_name=region)


def client(service: str, region: str | None, session: Any = None) -> Any:
    """A boto3 client for `service` in `region` that retries throttling and transient errors, boundedly."""
    made = (session or boto3).client(service, region_name=region, config=RETRIES)
    RetryWatch(service, connect_budget_s()).attach(made)
    _record_endpoint(made)
    return made


def _record_endpoint(made: Any) -> None:
    """Put the client's endpoint on what a failed call raises, so the error line names where it asked: a ClientError
    is built from the parsed response after `after-call`, anything else passes `after-call-error`."""
    endpoint = made.meta.endpoint_url
    name = made.meta.service_model.service_id.hyphenize()

    def on_response(http_response: Any = None, parsed: Any = None, **_: Any) -> None:
        if http_response is not None and http_response.status_code >= 300 and isinstance(parsed, dict):
            parsed.setdefault("ResponseMetadata", {})[ENDPOINT_KEY] = endpoint

    def on_error(exception: BaseException | None = None, **_: Any) -> None:
        if exception is not None:
            with contextlib.suppress(AttributeError, TypeError):  # an exception type that takes no attributes
                setattr(exception, ENDPOINT_KEY, endpoint)

    made.meta.events.register(f"after-call.{name}", on_response, unique_id=f"eks-platform-endpoint-{name}")
    made.meta.events.register(f"after-call-error.{name}", on_error, unique_id=f"eks-platform-endpoint-error-{name}")


class RetryWatch:
    """Observes botocore's retries (its `needs-retry` event): announces each wait, ends the announcement with
    the call, and stops retrying an endpoint that has not answered within the connect budget."""

    def __init__(self, service: str, budget_s: float, clock: Callable[[], float] = time.monotonic):
        self.service, self.budget_s, self.clock = service, budget_s, clock

    def attach(self, made: Any) -> None:
        name = made.meta.service_model.service_id.hyphenize()
        made.meta.events.register(f"needs-retry.{name}", self.needs_retry, unique_id=f"eks-platform-watch-{name}")
        made.meta.events.register(f"after-call.{name}", self.settled, unique_id=f"eks-platform-done-{name}")
        made.meta.events.register(f"after-call-error.{name}", self.settled, unique_id=f"eks-platform-error-{name}")

    def needs_retry(self, attempts: int, request_dict: dict[str, Any], endpoint: Any = None, response: Any = None,
                    caught_exception: BaseException | None = None, **_: Any) -> None:
        context = request_dict.setdefault("context", {})
        now = self.clock()
        started = context.setdefault(_STARTED, now)
        failed = caught_exception is not None or _retryable(response)
        if not failed or attempts >= MAX_ATTEMPTS:
            return None
        if isinstance(caught_exception, _UNREACHABLE) and now - started >= self.budget_s:
            raise caught_exception  # out of budget: the call fails now with what the endpoint did
        host = urlsplit(str(getattr(endpoint, "host", "") or ""))
        where = f" at {host.scheme}://{host.netloc}" if host.netloc else ""
        notice(waiting(f"AWS {self.service}{where}", self.budget_s, attempts + 1, now - started,
                       caught_exception or _ResponseError(response)))
        return None  # botocore's own handler decides whether and how long to wait

    def settled(self, **_: Any) -> None:
        notice(None)


class _ResponseError(Failed):
    """An AWS error response, as the reason in a wait notice."""

    def __init__(self, response: Any):
        http, parsed = response
        super().__init__(f"{(parsed or {}).get('Error', {}).get('Code') or http.status_code}")


def _retryable(response: Any) -> bool:
    if not response:
        return False
    http, parsed = response
    code = str((parsed or {}).get("Error", {}).get("Code", ""))
    return http.status_code >= 500 or http.status_code == 429 or "Throttl" in code or "TooManyRequests" in code
