"""The exit-code contract every task keeps: 2 bad input (nothing changed), 1 failed, 130 interrupted.

Engines raise `Refused`, `Failed` or `Interrupted` (or a subclass); the CLI maps them, and the outside
failures libraries raise (no credentials, an unreachable endpoint, a 401, a malformed kubeconfig), to
one line and an exit code in one place, `explain`, so no input ever ends in a traceback.
"""
from __future__ import annotations

from typing import ClassVar


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


def _kube_failure(error: BaseException) -> Failed | None:
    import urllib3
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    if isinstance(error, ApiException):
        if error.status in (401, 403):
            verdict = "refused the credentials (401 Unauthorized)" if error.status == 401 else "denied the call (403)"
            return Failed(f"the Kubernetes API server {verdict}: refresh the kubeconfig's credentials "
                          f"(e.g. `aws eks update-kubeconfig`) or check the access entry / RBAC of this identity")
        if error.status == 0 or error.status >= 500 or error.status == 429:
            return Failed(f"the Kubernetes API server kept failing ({error.status} {error.reason}); retry later")
        return Failed(f"the Kubernetes API answered {error.status} {error.reason}")
    if isinstance(error, urllib3.exceptions.MaxRetryError):
        return Failed(f"cannot reach the Kubernetes API server at {_origin(error)}: {_root_reason(error)}; check "
                      f"the kubeconfig's server, the VPN/network, or pass --kubeconfig")
    if isinstance(error, urllib3.exceptions.HTTPError):
        return Failed(f"the connection to the Kubernetes API server failed: {_root_reason(error)}")
    if isinstance(error, ConfigException):
        return Failed(f"cannot use the kubeconfig: {_first_line(error)}; pass --kubeconfig or set KUBECONFIG")
    return None


def _aws_failure(error: BaseException) -> Failed | None:
    from botocore import exceptions as boto

    if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError):
        return Failed("no AWS credentials found: set AWS_PROFILE (then `aws sso login`) or AWS_ACCESS_KEY_ID/"
                      "AWS_SECRET_ACCESS_KEY, or pass --kubeconfig for cluster-only tasks")
    if isinstance(error, boto.TokenRetrievalError | boto.SSOError):
        return Failed(f"AWS credentials could not be refreshed ({_first_line(error)}); run `aws sso login`")
    if isinstance(error, boto.EndpointConnectionError | boto.ConnectTimeoutError | boto.ReadTimeoutError):
        return Failed(f"cannot reach the AWS endpoint {getattr(error, 'kwargs', {}).get('endpoint_url', '')}: "
                      f"{_first_line(error)}; check the network or AWS_ENDPOINT_URL".replace("endpoint :", "endpoint:"))
    if isinstance(error, boto.ClientError):
        code = error.response.get("Error", {}).get("Code", "?")
        message = error.response.get("Error", {}).get("Message", "")
        operation = getattr(error, "operation_name", "AWS call")
        hint = " (check the identity's IAM permissions)" if "Denied" in code or "Unauthorized" in code else ""
        if code in ("ExpiredToken", "ExpiredTokenException", "RequestExpired"):
            hint = " (the AWS session expired: refresh the credentials, e.g. `aws sso login`)"
        return Failed(f"AWS {operation} failed: {code}: {message}{hint}")
    if isinstance(error, boto.BotoCoreError):
        return Failed(f"AWS call failed: {_first_line(error)}")
    return None


def explain(error: BaseException) -> PlatformError | None:
    """The contract error for `error`: itself when it is one, a one-line Failed for a known outside failure."""
    if isinstance(error, PlatformError):
        return error
    return _kube_failure(error) or _aws_failure(error)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _origin(error: BaseException) -> str:
    pool = getattr(error, "pool", None)
    if pool is not None and getattr(pool, "host", None):
        return f"{getattr(pool, 'scheme', 'https')}://{pool.host}" + (f":{pool.port}" if pool.port else "")
    return "its address"


def _root_reason(error: BaseException) -> str:
    """The innermost cause urllib3 wrapped (connection refused, name not resolved, timed out)."""
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    for marker in ("Connection refused", "Name or service not known", "timed out", "No route to host",
                   "Temporary failure in name resolution", "certificate verify failed"):
        if marker in text:
            return marker.lower()
    return _first_line(reason) if isinstance(reason, BaseException) else text.splitlines()[0]
