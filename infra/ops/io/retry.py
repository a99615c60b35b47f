"""Bounded retries with backoff, one time budget per wait, and the line a person sees while it lasts.

Kubernetes calls retry throttling, server errors and dropped connections (`is_transient`) with
tenacity, never inside urllib3 as well, so a wait has one budget. A 429 that carries a
PodDisruptionBudget refusal is an answer the drain engine paces itself on, not a failure to retry.
The budget for reaching an endpoint at all is EKS_PLATFORM_CONNECT_BUDGET_S (default 20 s): long
enough to ride out an API server restart, short enough that a wrong address is reported in seconds.
While a retry waits, `notice` tells the listener the CLI installs (a spinner on a TTY) what it waits
for and why; without a listener nothing is printed, so logs and pipes keep their one error line.
"""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_before_delay, wait_exponential_jitter

from infra.ops.errors import Refused, short_reason

CONNECT_BUDGET_ENV = "EKS_PLATFORM_CONNECT_BUDGET_S"
DEFAULT_CONNECT_BUDGET_S = 20.0
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# Causes no retry can fix: a certificate the client does not trust, a host name that does not exist.
_PERMANENT_CAUSES = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "Name or service not known",
                     "nodename nor servname provided")


def connect_budget_s() -> float:
    """Seconds to keep retrying an endpoint that cannot be reached, from EKS_PLATFORM_CONNECT_BUDGET_S."""
    raw = os.environ.get(CONNECT_BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_CONNECT_BUDGET_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise Refused(f"{CONNECT_BUDGET_ENV}={raw!r} must be a number of seconds > 0, e.g. "
                      f"{CONNECT_BUDGET_ENV}={DEFAULT_CONNECT_BUDGET_S:g}")
    return value


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: throttling, server errors and broken connections (not 4xx, bad certificates, unknown hosts)."""
    import urllib3  # here, not at the top: the CLI imports this module for `shown_on` before any client exists
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        return exc.status in TRANSIENT_STATUSES or exc.status == 0
    if isinstance(exc, urllib3.exceptions.LocationValueError):  # the address itself is not a URL
        return False
    if isinstance(exc, urllib3.exceptions.HTTPError):
        cause = str(getattr(exc, "reason", None) or exc)
        return not isinstance(getattr(exc, "reason", None), urllib3.exceptions.SSLError) and not any(
            marker in cause for marker in _PERMANENT_CAUSES)
    return isinstance(exc, (ConnectionError, TimeoutError))


def transient(error: BaseException) -> bool:
    """is_transient, except a PodDisruptionBudget refusal (429), which the drain engine handles itself."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(error, ApiException) and error.status == 429 and "disruption budget" in str(error.body or ""):
        return False
    return is_transient(error)


# -- what a person sees while a retry waits --------------------------------------------------------------

Listener = Callable[[str | None], None]
_listener: Listener = lambda message: None  # noqa: E731 - the quiet default: no terminal, no notices


def notice(message: str | None) -> None:
    """Say what a retry is waiting for (None: the wait is over)."""
    _listener(message)


def waiting(what: str, budget_s: float, attempt: int, elapsed_s: float, error: BaseException | None) -> str:
    """e.g. "waiting for the Kubernetes API at https://...: connection refused (attempt 3, 8 s of 20 s)"."""
    because = f": {short_reason(error)}" if error is not None else ""
    return f"waiting for {what}{because} (attempt {attempt}, {elapsed_s:.0f} s of {budget_s:g} s)"


def announce(what: str, budget_s: float) -> Callable[[RetryCallState], None]:
    """A tenacity before_sleep hook that reports each wait through `notice`."""
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        notice(waiting(what, budget_s, state.attempt_number + 1, state.seconds_since_start or 0.0, error))
    return before_sleep


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Send wait notices to `listener` while active; it gets None when a wait is over and when this ends."""
    global _listener
    previous, _listener = _listener, listener
    try:
        yield
    finally:
        listener(None)
        _listener = previous


@contextmanager
def shown_on(stream: TextIO | None = None) -> Iterator[None]:
    """While active, waits show as a rich status line on `stream` (stderr) - only when it is a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield
        return
    from rich.console import Console
    from rich.markup import escape

    console, status = Console(file=stream, highlight=False), None

    def show(message: str | None) -> None:
        nonlocal status
        if message is None:
            if status is not None:
                status.stop()
                status = None
        elif status is None:
            status = console.status(escape(message))
            status.start()
        else:
            status.update(escape(message))

    with listening(show):
        yield


# -- the retry policies ---------------------------------------------------------------------------------

def retrying(budget_s: float, what: str = "the Kubernetes API") -> Retrying:
    """Transient failures retried with jittered backoff; no attempt starts after budget_s. Kube.call's policy, the
    only retry layer for Kubernetes calls (a budget's eviction refusal is returned, see `transient`)."""
    return Retrying(retry=retry_if_exception(transient),
                    wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),
                    stop=stop_before_delay(budget_s), before_sleep=announce(what, budget_s), reraise=True)
