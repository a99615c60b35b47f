"""Bounded retry with backoff for Kubernetes API calls that can fail transiently.

Throttling (429 without a PDB reason), server errors and dropped connections are retried; anything
else (404, 409, 422, a PDB refusal) is an answer, not a glitch, and goes straight to the caller.
"""
from __future__ import annotations

from kubernetes.client.exceptions import ApiException
from tenacity import retry, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter
from urllib3.exceptions import HTTPError

TRANSIENT_STATUS = {500, 502, 503, 504}


def transient(error: BaseException) -> bool:
    if isinstance(error, ApiException):
        return error.status in TRANSIENT_STATUS or (error.status == 429 and "disruption budget" not in str(error.body))
    return isinstance(error, (HTTPError, ConnectionError))


kube_retry = retry(retry=retry_if_exception(transient), wait=wait_exponential_jitter(initial=0.2, max=5),
                   stop=stop_after_attempt(6) | stop_after_delay(60), reraise=True)
