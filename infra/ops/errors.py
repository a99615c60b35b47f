"""The exit-code contract every task keeps: 2 bad input (nothing changed), 1 failed, 130 interrupted.

Engines raise `Refused`, `Failed` or `Interrupted` (or a subclass) and never map them themselves; `explain`
turns them, and the outside failures libraries raise (no credentials, an unreachable endpoint, a 401, a
malformed kubeconfig), into one of the three, and `infra.cli.common.run`, around every task body, prints
it as one line (`error: ...`, or `interrupted: ...` for an Interrupted) and exits with its code, so no input
ever ends in a traceback. Each line names what could not be used (the address, the file, the credentials)
and what to do about it.
"""
from __future__ import annotations

import os
from typing import ClassVar
from urllib.parse import urlsplit


class PlatformError(Exception):
    """Base of every engine error; `exit_code` is what the CLI exits with."""

    exit_code: ClassVar[int] = 1


class Refused(PlatformError):
    """Bad input or a precondition that does not hold: nothing was changed."""

    exit_code = 2


class Failed(PlatformError):
    """An outside failure or an operation that did not succeed; the message says what to do next."""

    exit_code = 1


class Interrupted(PlatformError):
    """Stopped by SIGINT/SIGTERM; the message says what state was left."""

    exit_code = 130


def explain(error: BaseException) -> PlatformError | None:
    """The contract error for `error`: itself when it is one, a one-line Failed for a known outside failure."""
    if isinstance(error, PlatformError):
        return error
    # botocore's timeouts are urllib3 errors too: ask the AWS mapping first.
    return aws_failure(error) or kube_failure(error)


def reason(error: BaseException) -> str:
    """One line saying why `error` happened, for an engine that wraps a library failure in its own message."""
    mapped = explain(error)
    return str(mapped) if mapped is not None else first_line(error)


def short_reason(error: BaseException) -> str:
    """A few words for a progress line: "connection refused", "timed out", "503 Service Unavailable"."""
    from botocore.exceptions import BotoCoreError
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}".strip()
    if isinstance(error, BotoCoreError):
        return _aws_cause(error)
    return _root_reason(error)


# -- Kubernetes ------------------------------------------------------------------------------------------

_KUBE_FIX = "check the kubeconfig's server, the VPN/network and the cluster's endpoint access, or pass --kubeconfig"


def kube_failure(error: BaseException, server: str | None = None, cluster: str | None = None,
                 tried: str = "") -> Failed | None:
    """A Kubernetes client failure as one line; `server` names the API server when the error does not, `cluster`
    the EKS cluster a fresh kubeconfig would be for, `tried` how long it was retried ("5 attempts in 20 s")."""
    import urllib3
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    if isinstance(error, ApiException):
        at = f"the Kubernetes API at {server}" if server else "the Kubernetes API server"
        if error.status == 401:
            return Failed(f"{at} refused the credentials (401 Unauthorized): refresh them (`aws sso login`, "
                          f"`aws eks update-kubeconfig --name {cluster or 'CLUSTER'}`) or pass another --kubeconfig")
        if error.status == 403:
            return Failed(f"{at} denied the call (403 Forbidden: {_api_message(error)}): grant this identity an "
                          f"access entry / RBAC role, or use another --kubeconfig")
        if error.status == 0 or error.status >= 500 or error.status == 429:
            return Failed(f"{at} kept failing ({error.status} {error.reason}{_after(tried)}); retry in a minute")
        return Failed(f"{at} answered {error.status} {error.reason}: {_api_message(error)}")
    if isinstance(error, urllib3.exceptions.HTTPError):
        where = _origin(error) or server or "its address"
        cause = getattr(error, "reason", None)
        if isinstance(cause, urllib3.exceptions.SSLError):
            return Failed(f"the Kubernetes API at {where} presented a certificate the kubeconfig does not trust "
                          f"({_root_reason(error)}); refresh the kubeconfig (`aws eks update-kubeconfig`)")
        return Failed(f"cannot reach the Kubernetes API at {where}: {_root_reason(error)}{_after(tried)}; {_KUBE_FIX}")
    if isinstance(error, ConfigException):
        return Failed(f"cannot use the kubeconfig: {first_line(error)}; pass --kubeconfig or set KUBECONFIG")
    return None


def _after(tried: str) -> str:
    return f" after {tried}" if tried else ""


def _api_message(error: BaseException) -> str:
    import json

    try:
        return json.loads(getattr(error, "body", None) or "{}").get("message") or str(getattr(error, "reason", ""))
    except (ValueError, AttributeError):
        return str(getattr(error, "reason", ""))


# -- AWS ------------------------------------------------------------------------------------------------

def aws_failure(error: BaseException) -> Failed | None:
    """A botocore failure as one line naming the endpoint or the credentials and the fix."""
    from botocore import exceptions as boto

    unavailable = aws_unavailable(error)
    if unavailable is not None:
        return unavailable
    if isinstance(error, boto.ClientError):
        code = error.response.get("Error", {}).get("Code", "?")
        message = error.response.get("Error", {}).get("Message", "")
        operation = getattr(error, "operation_name", "AWS call")
        hint = ""
        if "Denied" in code or "Unauthorized" in code:
            hint = " (check the identity's IAM permissions)"
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
                    "UnrecognizedClientException"):
            hint = " (the AWS credentials are expired or invalid: refresh them, e.g. `aws sso login`)"
        return Failed(f"AWS {operation} failed: {code}: {message}{hint}")
    if isinstance(error, boto.BotoCoreError):
        return Failed(f"AWS call failed: {first_line(error)}")
    return None


def aws_unavailable(error: BaseException) -> Failed | None:
    """AWS could not be asked at all (no or stale credentials, an endpoint that does not answer). These lines
    name only the credentials' source and the endpoint, never request data: safe beside secrets."""
    from botocore import exceptions as boto

    if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError):
        return Failed("no AWS credentials found: set AWS_PROFILE (then `aws sso login`) or AWS_ACCESS_KEY_ID/"
                      "AWS_SECRET_ACCESS_KEY; tasks that only need the cluster also take --kubeconfig")
    if isinstance(error, boto.ProfileNotFound):
        return Failed(f"{first_line(error)} in ~/.aws/config: fix AWS_PROFILE or run `aws configure sso`")
    if isinstance(error, boto.TokenRetrievalError | boto.SSOError | boto.CredentialRetrievalError):
        return Failed(f"AWS credentials could not be refreshed ({first_line(error)}); run `aws sso login`")
    if isinstance(error, boto.ConnectionError | boto.ReadTimeoutError | boto.ConnectionClosedError):
        kwargs = getattr(error, "kwargs", {})
        url = str(kwargs.get("endpoint_url") or kwargs.get("proxy_url") or "its endpoint")
        return Failed(f"cannot reach AWS at {_url_origin(url)}: {_aws_cause(error)}; {_aws_fix()}")
    answer = not_aws_answer(error)
    if answer:
        return Failed(f"cannot reach AWS at {_url_origin(aws_endpoint(error))}: {answer}; {_aws_fix()}")
    return None


ENDPOINT_KEY = "EksPlatformEndpoint"  # infra.ops.io.aws records the client's endpoint under it on a failed call


def aws_endpoint(error: BaseException) -> str:
    """The endpoint a failed AWS call went to: as infra.ops.io.aws recorded it (an attribute of the exception, or
    a key of the error response botocore builds a ClientError from), else the environment's override."""
    response = getattr(error, "response", None)
    recorded = getattr(error, ENDPOINT_KEY, None) or (
        response.get("ResponseMetadata", {}).get(ENDPOINT_KEY) if isinstance(response, dict) else None)
    return recorded or os.environ.get("AWS_ENDPOINT_URL") or "its endpoint (no AWS_ENDPOINT_URL set)"


def not_aws_answer(error: BaseException) -> str | None:
    """What answered instead of AWS, when something did: a proxy's or a wrong endpoint's 404 page, an empty body or
    anything botocore cannot parse carries no AWS error code (botocore then uses the HTTP status, or "Unknown")."""
    from botocore import exceptions as boto
    from botocore.parsers import ResponseParserError

    if isinstance(error, ResponseParserError):
        return "its answer is not an AWS response (botocore cannot parse it)"
    if not isinstance(error, boto.ClientError):
        return None
    code = str(error.response.get("Error", {}).get("Code") or "")
    if code and not code.isdigit() and code != "Unknown":
        return None
    metadata = error.response.get("ResponseMetadata", {})
    headers = {name.lower(): str(value) for name, value in (metadata.get("HTTPHeaders") or {}).items()}
    status = metadata.get("HTTPStatusCode") or (int(code) if code.isdigit() else 0)
    body = str(error.response.get("Error", {}).get("Message") or "").strip().lower()
    if headers.get("content-length") == "0":
        what = "an empty body"
    elif "html" in headers.get("content-type", "") or body.startswith(("<!doctype", "<html")):
        what = "an HTML page"
    else:
        what = "a body"
    return f"it answered HTTP {status or '?'} with {what} and no AWS error code, so it is not an AWS API"


def _aws_cause(error: BaseException) -> str:
    from botocore import exceptions as boto

    if isinstance(error, boto.ConnectTimeoutError | boto.ReadTimeoutError):
        return "timed out"
    if isinstance(error, boto.SSLError):
        return "TLS validation failed"
    if isinstance(error, boto.ConnectionClosedError):
        return "connection closed by the server"
    inner = getattr(error, "kwargs", {}).get("error")
    return _root_reason(inner) if isinstance(inner, BaseException) else "could not connect"


def _aws_fix() -> str:
    override = os.environ.get("AWS_ENDPOINT_URL")
    if override:
        return f"check that something serves AWS_ENDPOINT_URL={override}, or unset it"
    return "check the network/proxy and the stack's region"


# -- shared ---------------------------------------------------------------------------------------------

def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _url_origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


def _origin(error: BaseException) -> str | None:
    pool = getattr(error, "pool", None)
    if pool is not None and getattr(pool, "host", None):
        return f"{getattr(pool, 'scheme', 'https')}://{pool.host}" + (f":{pool.port}" if pool.port else "")
    return None


_CAUSES = {"Connection refused": "connection refused", "Name or service not known": "the host name does not resolve",
           "nodename nor servname provided": "the host name does not resolve",
           "Temporary failure in name resolution": "name resolution failed", "No route to host": "no route to host",
           "Network is unreachable": "network unreachable", "timed out": "timed out",
           "certificate verify failed": "certificate verify failed", "Connection reset by peer": "connection reset",
           "Remote end closed connection": "connection closed by the server"}


def _root_reason(error: BaseException) -> str:
    """The innermost cause urllib3 wrapped (connection refused, name not resolved, timed out), in a few words."""
    cause = getattr(error, "reason", None) or error
    text = str(cause)
    for marker, words in _CAUSES.items():
        if marker in text:
            return words
    return first_line(cause) if isinstance(cause, BaseException) else (text.splitlines() or [""])[0]
