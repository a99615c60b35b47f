"""Bounded retry with backoff for Kubernetes API calls made through the typed client.

Throttling, server errors and dropped connections are retried (infra.ops.kube.is_transient), except a
429 that carries a PodDisruptionBudget refusal: that is an answer the drain engine paces itself on.
"""
from __future__ import annotations

from kubernetes.client.exceptions import ApiException
from tenacity import retry, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from infra.ops.kube import is_transient


def transient(error: BaseException) -> bool:
    if isinstance(error, ApiException) and error.status == 429 and "disruption budget" in str(error.body or ""):
        return False
    return is_transient(error)


kube_retry = retry(retry=retry_if_exception(transient), wait=wait_exponential_jitter(multiplier=0.2, max=5),
                   stop=stop_after_attempt(6) | stop_after_delay(60), reraise=True)
