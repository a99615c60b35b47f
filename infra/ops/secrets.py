"""Service secrets at run time: set one value from stdin, list what exists. Never prints or logs a value.

The value travels stdin -> this process -> Secrets Manager only: not argv (visible in `ps` and shell
history), not an echoing terminal, not a log line. botocore logs request parameters at DEBUG level, so
its loggers are held at WARNING while a value is in flight.
"""
from __future__ import annotations

import getpass
import json
import logging
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from infra.config import SecretSpec, StackConfig, app_namespace, secret_name
from infra.ops.errors import Failed, Refused, aws_unavailable
from infra.ops.io import aws

log = logging.getLogger(__name__)


class SecretInputError(Refused):
    """Bad input (unknown service or key, empty value, echoing terminal): nothing was changed."""


class SecretsError(Failed):
    """Secrets Manager refused or failed; the message names the secret and the AWS error, never the value."""


def client(region: str):
    """Secrets Manager client for the stack's region; endpoint from the environment (AWS_ENDPOINT_URL)."""
    return aws.client("secretsmanager", region)


# What Secrets Manager stores at most in SecretString (botocore's model of PutSecretValue: SecretStringType max 65536;
# https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_PutSecretValue.html, checked 2026-12-05).
MAX_VALUE_BYTES = 65_536
PIPE_IT_IN = "pipe it in (e.g. `pass show x | invoke secrets.set ...`)"


def read_value(stream: TextIO | None = None, prompt: Callable[[str], str] = getpass.getpass,
               multiline: bool = False) -> str:
    """The secret value from stdin: piped as is (one trailing newline dropped), or typed without echo. Refused
    (never shown) when there is none, it is only whitespace, holds a NUL, spans lines without `multiline`, or is
    longer than Secrets Manager stores."""
    stream = stream if stream is not None else sys.stdin
    if stream is None:  # started with stdin closed (`<&-`)
        raise SecretInputError(f"no value on stdin: stdin is closed; {PIPE_IT_IN}")
    if stream.isatty():
        with warnings.catch_warnings():
            warnings.simplefilter("error", getpass.GetPassWarning)
            try:
                value = prompt("value (not echoed): ")
            except getpass.GetPassWarning:
                raise SecretInputError("this terminal cannot hide typed input; pipe the value in instead, e.g. "
                                       "`pass show x | invoke secrets.set ...`") from None
    else:
        try:
            value = stream.read(MAX_VALUE_BYTES + 3)  # enough to tell "too long" without reading all of a huge pipe
        except UnicodeDecodeError:
            raise SecretInputError("the value on stdin is not UTF-8 text; Secrets Manager stores text "
                                   "(base64-encode binary data first)") from None
        value = value[:-2] if value.endswith("\r\n") else value[:-1] if value.endswith("\n") else value
    check_value(value, multiline)
    return value


def check_value(value: str, multiline: bool = False) -> None:
    """SecretInputError naming what is wrong with `value`, never showing it."""
    if not value:
        raise SecretInputError(f"no value on stdin; {PIPE_IT_IN} or type it at the prompt")
    if not value.strip():
        raise SecretInputError("the value on stdin is only whitespace; pipe the real value in")
    if "\0" in value:
        raise SecretInputError("the value on stdin holds a NUL byte, which no consumer of the secret reads back "
                               "intact; base64-encode binary data first")
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        raise SecretInputError(f"the value on stdin is over {MAX_VALUE_BYTES} bytes, the most Secrets Manager "
                               f"stores; store a reference (e.g. an S3 object) instead")
    lines = len(re.split(r"\r\n|\r|\n", value))
    if lines > 1 and not multiline:
        raise SecretInputError(f"the value on stdin has {lines} lines; pass --multiline to store it as is (a PEM "
                               f"key, a config file), or pipe in one line")


def lookup(cfg: StackConfig, service: str, key: str) -> SecretSpec:
    services = cfg.secrets.services
    if service not in services:
        raise SecretInputError(f"service {service!r} has no secrets in eks-platform:secrets of {cfg.env}; use one "
                               f"of: {', '.join(sorted(services)) or 'none configured'}")
    if key not in services[service]:
        raise SecretInputError(f"{service} has no secret {key!r} in {cfg.env}; use one of: "
                               f"{', '.join(sorted(services[service]))}")
    return services[service][key]


@contextmanager
def quiet_botocore() -> Iterator[None]:
    """Hold botocore/boto3/urllib3 loggers at WARNING: their DEBUG lines include request bodies."""
    loggers = [logging.getLogger(name) for name in ("botocore", "boto3", "urllib3")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _aws_error(action: str, name: str, error: Exception) -> SecretsError | Failed:
    unavailable = aws_unavailable(error)  # credentials or endpoint: never request data, which may hold the value
    if unavailable is not None:
        return unavailable
    if isinstance(error, ClientError):
        code = error.response["Error"]["Code"]
        if code == "ResourceNotFoundException":
            return SecretsError(f"{name} does not exist in AWS; declare it in eks-platform:secrets and run "
                                f"`invoke up` first")
        return SecretsError(f"{action} {name} failed: {code}")
    return SecretsError(f"{action} {name} failed: {type(error).__name__}")


@dataclass(frozen=True)
class SetSecret:
    """`secrets.set`: a new value for one service's secret in one stack. The value stays out of the repr."""

    cfg: StackConfig
    service: str
    key: str
    value: str = field(repr=False)


def set_value(request: SetSecret, sm: Any = None) -> str:
    """Store a new current value; returns the version id. Database secrets take the password only."""
    cfg, value = request.cfg, request.value
    spec = lookup(cfg, request.service, request.key)
    name = secret_name(cfg.env, request.service, request.key)
    if spec.kind == "generated":
        raise SecretInputError(f"{name} is generated in AWS and has no hand-set value; rotate it instead "
                               f"(`aws secretsmanager rotate-secret --secret-id {name}`)")
    payload = value
    if spec.database:
        payload = json.dumps({**spec.database.login(), "password": value})
        if len(payload.encode()) > MAX_VALUE_BYTES:
            raise SecretInputError(f"the password with {name}'s login is over {MAX_VALUE_BYTES} bytes, the most "
                                   f"Secrets Manager stores; use a shorter password")
    sm = sm or client(cfg.region)
    log.info("putting a new value for %s", name)
    try:
        with quiet_botocore():
            version = sm.put_secret_value(SecretId=name, SecretString=payload)["VersionId"]
    except (ClientError, BotoCoreError) as error:
        raise _aws_error("put-secret-value", name, error) from None
    log.info("%s now has current version %s", name, version)
    return version


@dataclass(frozen=True)
class SecretRow:
    """What `secrets.list` shows for one secret: metadata only."""

    name: str
    service: str
    kind: str
    description: str
    rotation: str
    last_rotated: datetime | None
    last_changed: datetime | None
    readers: str
    state: str


def _listed(sm: Any, prefix: str) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for page in sm.get_paginator("list_secrets").paginate(Filters=[{"Key": "name", "Values": [prefix]}]):
        for entry in page.get("SecretList", []):
            if entry["Name"].startswith(prefix):
                found[entry["Name"]] = entry
    return found


def _rotation(entry: dict) -> str:
    days = entry.get("RotationRules", {}).get("AutomaticallyAfterDays")
    if not entry.get("RotationEnabled"):
        return "off"
    return f"every {days} d" if days else "on"


def list_rows(cfg: StackConfig, sm: Any = None) -> list[SecretRow]:
    """Every configured secret with its AWS state, plus secrets under the stack's prefix that config lacks."""
    sm = sm or client(cfg.region)
    prefix = f"eks-platform/{cfg.env}/"
    try:
        listed = _listed(sm, prefix)
    except (ClientError, BotoCoreError) as error:
        raise _aws_error("list-secrets", prefix + "*", error) from None
    namespace = app_namespace(cfg.env)
    rows = []
    for service, key, spec in cfg.secrets.entries():
        name = secret_name(cfg.env, service, key)
        entry = listed.pop(name, None)
        if entry is None:
            state = "missing in AWS (run invoke up)"
        elif not any("AWSCURRENT" in stages for stages in entry.get("SecretVersionsToStages", {}).values()):
            state = "no value yet" + (" (invoke secrets.set)" if spec.kind != "generated" else "")
        else:
            state = "ok"
        rows.append(SecretRow(name=name, service=service, kind=spec.kind, description=spec.description,
                              rotation=_rotation(entry or {}), last_rotated=(entry or {}).get("LastRotatedDate"),
                              last_changed=(entry or {}).get("LastChangedDate"),
                              readers=f"{service} (serviceaccount {namespace}/{service})", state=state))
    for name, entry in sorted(listed.items()):
        rows.append(SecretRow(name=name, service=name.removeprefix(prefix).split("/")[0], kind="?",
                              description=entry.get("Description", ""), rotation=_rotation(entry),
                              last_rotated=entry.get("LastRotatedDate"), last_changed=entry.get("LastChangedDate"),
                              readers="none (not in config)", state="not in config"))
    return rows


def table(rows: list[SecretRow], env: str):
    from rich.table import Table

    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "never"

    out = Table(title=f"secrets of {env} (values are never shown)")
    for column in ("secret", "kind", "rotation", "last rotated", "last changed", "read by", "state"):
        out.add_column(column)
    for row in rows:
        out.add_row(row.name, row.kind, row.rotation, when(row.last_rotated), when(row.last_changed), row.readers,
                    row.state)
    return out
