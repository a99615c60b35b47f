"""Egress probe run inside the VPC, in a subnet whose default route is pinned to one NAT instance.

It makes no AWS calls (its only way out is the NAT it tests): it tries every target in parallel once
and answers ok if any target answered within the timeout. The failover function invokes it each round.
Targets: NAT_PROBE_TARGETS (JSON list of http(s)://host/path or tcp://host:port); NAT_PROBE_TIMEOUT seconds.
"""
from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit


def reach(target: str, timeout: float) -> tuple[bool, float, str]:
    """(answered, milliseconds, detail) for one target; any HTTP answer below 500 counts as egress."""
    started = time.monotonic()
    parts = urlsplit(target)
    try:
        if parts.scheme == "tcp":
            with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
                pass
        else:
            request = urllib.request.Request(target, method="GET", headers={"User-Agent": "eks-platform-nat-probe"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured targets
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            if status >= 500:
                return False, (time.monotonic() - started) * 1000, f"{target}: HTTP {status}"
    except (OSError, ValueError) as exc:
        return False, (time.monotonic() - started) * 1000, f"{target}: {type(exc).__name__}: {exc}"
    return True, (time.monotonic() - started) * 1000, f"{target}: ok"


def probe(targets: list[str], timeout: float) -> dict:
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        results = list(pool.map(lambda target: reach(target, timeout), targets))
    answered = [ms for ok, ms, _ in results if ok]
    return {"ok": bool(answered), "latency_ms": round(min(answered), 1) if answered else None,
            "detail": "; ".join(detail for ok, _, detail in results if not ok) or "all targets answered"}


def handler(event, context):  # noqa: ARG001 - Lambda signature
    result = probe(json.loads(os.environ["NAT_PROBE_TARGETS"]), float(os.environ.get("NAT_PROBE_TIMEOUT", "1")))
    print(json.dumps({"event": "probe", **result}))
    return result
