"""Kubernetes `Status` failures, shaped like kube-apiserver's so clients parse them unchanged."""
from __future__ import annotations

from .resources import ResourceType


class ApiError(Exception):
    """An API failure carrying the exact `Status` body the real server would send."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None,
                 headers: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(rt: ResourceType | None, name: str | None, **extra) -> dict:
    d: dict = {}
    if name:
        d["name"] = name
    if rt is not None:
        if rt.group:
            d["group"] = rt.group
        d["kind"] = rt.plural
    d.update(extra)
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def namespace_not_found(ns: str) -> ApiError:
    return ApiError(404, "NotFound", f'namespaces "{ns}" not found', {"name": ns, "kind": "namespaces"})


def already_exists(rt: ResourceType, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists', _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str = "the object has been modified; please apply your "
             "changes to the latest version and try again") -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": {why}',
                    _details(rt, name))


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """causes: (field, message) pairs, e.g. ("metadata.name", 'Invalid value: "A": ...')."""
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(422, "Invalid", f'{rt.kind} "{name}" is invalid: {text}',
                    dict(_details(rt, name), kind=rt.kind,
                         causes=[{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed() -> ApiError:
    return ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                    f"accepted media types include: application/json-patch+json, application/merge-patch+json, "
                    f"application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type})")


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def path_not_found(path: str) -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", _details(None, None))


def too_many_requests(message: str, causes: list[dict] | None = None, retry_after: int | None = None) -> ApiError:
    details = {"causes": causes} if causes else None
    headers = None
    if retry_after:  # like NewTooManyRequests: a positive suggestion becomes details + Retry-After
        details = dict(details or {}, retryAfterSeconds=retry_after)
        headers = {"Retry-After": str(retry_after)}
    return ApiError(429, "TooManyRequests", message, details, headers)


def generic(code: int, message: str | None = None, retry_after: int | None = None) -> ApiError:
    """Faults: a plain failure with the reason the apiserver uses for that code."""
    reasons = {500: "InternalError", 502: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
               429: "TooManyRequests", 409: "Conflict", 401: "Unauthorized", 403: "Forbidden", 410: "Expired"}
    msg = message or {503: "the server is currently unable to handle the request",
                      429: "the server has received too many requests and has asked us to try again later",
                      500: "an error on the server (\"kubesim injected fault\") has prevented the request from "
                           "succeeding"}.get(code, f"kubesim injected fault {code}")
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return ApiError(code, reasons.get(code, "InternalError"), msg, None, headers)
