"""boto3 clients for the ops engines, all with one bounded retry policy (botocore standard mode).

Endpoints come from the environment (AWS_ENDPOINT_URL, profiles), never from code.
"""
from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

RETRIES = Config(retries={"mode": "standard", "max_attempts": 6}, connect_timeout=5, read_timeout=30)


def client(service: str, region: str | None) -> Any:
    """A boto3 client for `service` in `region` that retries throttling and transient errors, boundedly."""
    return boto3.client(service, region_name=region, config=RETRIES)
