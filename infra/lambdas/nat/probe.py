"""Egress probe run inside the VPC, in a subnet whose default route is pinned to one NAT instance.

It makes no AWS calls (its only way out is the NAT it tests). It asks an echo target (NAT_PROBE_ECHO, an
http(s) URL that answers with the caller's public IPv4 address, e.g. https://checkip.amazonaws.com/) and
tries the reachability targets (NAT_PROBE_TARGETS: JSON list of http(s)://host/path or tcp://host:port)
in parallel, once, within NAT_PROBE_TIMEOUT seconds. It reports what it saw, not a verdict: whether any
target answered and the source address the echo target saw. The failover function passes the probe only
when that address is the probed instance's own Elastic IP: a probe that got out some other way (a route
pinned to the wrong instance, a stale EIP) proves nothing. With NAT_PROBE_ECHO empty (accounts that may
not call an echo service) the probe is TCP/HTTP reachability only and cannot prove its path.
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPException
from urllib.parse import urlsplit

MAX_BODY = 256  # an echo answer is one address; anything longer is not one


def reach(target: str, timeout: float) -> tuple[bool, float, str]:
    """(answered, milliseconds, detail) for one target; any HTTP answer below 500 counts as egress."""
    started = time.monotonic()
    parts = urlsplit(target)
    try:
        if parts.scheme == "tcp":
            with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
                pass
        else:
            status, _ = _get(target, timeout)
            if status >= 500:
                return False, (time.monotonic() - started) * 1000, f"{target}: HTTP {status}"
    except (OSError, ValueError, HTTPException) as exc:  # HTTPException: an answer cut short or malformed
        return False, (time.monotonic() - started) * 1000, f"{target}: {type(exc).__name__}: {exc}"
    return True, (time.monotonic() - started) * 1000, f"{target}: ok"


def _get(url: str, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "eks-platform-nat-probe"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured targets
            return response.status, response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def echo(url: str, timeout: float) -> tuple[str | None, float, str]:
    """(source address the echo target saw, milliseconds, detail)."""
    started = time.monotonic()
    try:
        status, body = _get(url, timeout)
        elapsed = (time.monotonic() - started) * 1000
        if status != 200:
            return None, elapsed, f"echo {url}: HTTP {status}"
        text = body.decode("ascii", "replace").strip()
        return str(ipaddress.IPv4Address(text)), elapsed, f"echo {url}: {text}"
    except (OSError, ValueError, HTTPException) as exc:  # HTTPException: an answer cut short or malformed
        return None, (time.monotonic() - started) * 1000, f"echo {url}: {type(exc).__name__}: {exc}"


def probe(targets: list[str], timeout: float, echo_url: str = "") -> dict:
    """{"reached": any target or the echo answered, "source_ip": what the echo saw, "latency_ms", "detail"}."""
    if not targets and not echo_url:
        return {"reached": False, "source_ip": None, "latency_ms": None, "detail": "no probe targets configured"}
    with ThreadPoolExecutor(max_workers=len(targets) + bool(echo_url)) as pool:
        echoed = pool.submit(echo, echo_url, timeout) if echo_url else None
        results = list(pool.map(reach, targets, [timeout] * len(targets)))
        seen = echoed.result() if echoed else None
    answered = [ms for ok, ms, _ in results if ok] + ([seen[1]] if seen and seen[0] else [])
    details = [detail for ok, _, detail in results if not ok] + ([seen[2]] if seen else [])
    return {"reached": bool(answered), "source_ip": seen[0] if seen else None,
            "latency_ms": round(min(answered), 1) if answered else None,
            "detail": "; ".join(details)[:300] or "all targets answered"}


def handler(event, context):  # noqa: ARG001 - Lambda signature
    result = probe(json.loads(os.environ.get("NAT_PROBE_TARGETS", "[]")), float(os.environ.get("NAT_PROBE_TIMEOUT", "1")),
                   os.environ.get("NAT_PROBE_ECHO", ""))
    print(json.dumps({"event": "probe", **result}))
    return result
