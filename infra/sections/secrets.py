"""The `secrets` section: Secrets Manager secrets per service, rotation, delivery to pods."""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from infra.sections.base import _CHART_VERSION, PROJECT, ConfigIssue, Count, Section, Switch

ROOT = Path(__file__).resolve().parent.parent.parent
_SERVICE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")

def secret_name(env: str, service: str, key: str) -> str:
    """Secrets Manager name of one service secret; IAM scopes and `invoke secrets.*` rely on this prefix."""
    return f"eks-platform/{env}/{service}/{key}"


class DatabaseTarget(Section):
    """Where a database credential lives, so the rotation Lambda can change and test the password."""

    engine: Literal["postgres"] = "postgres"
    host: str = Field(min_length=1)
    port: Count = Field(default=5432, ge=1, le=65535)
    dbname: str = Field(min_length=1)
    username: str = Field(min_length=1)
    # TLS to the database: `require` encrypts without checking the server's certificate (RDS certificates are
    # signed by the RDS CA, which the Lambda runtime does not trust); `verify-full` also checks it against the
    # runtime's CA store.
    tls: Literal["require", "verify-full"] = "require"
    # The hand-off: false until a person has stored the database's real credential with `invoke secrets.set`.
    # Only then is rotation scheduled (Secrets Manager tests the rotation function as soon as it is scheduled,
    # and a secret without the real password cannot pass that test).
    handed_over: Switch = False

    def login(self) -> dict[str, str | int]:
        """The connection fields a database secret's JSON holds next to its password (what apps and rotation read)."""
        return {"engine": self.engine, "host": self.host, "port": self.port, "dbname": self.dbname,
                "username": self.username}


class SecretSpec(Section):
    """One secret of one service: `generated` and `database` values are made in AWS, `external` ones are set."""

    description: str = Field(min_length=1, max_length=2048)
    kind: Literal["generated", "database", "external"] = "generated"
    length: Count = Field(default=32, ge=16, le=128)
    rotation_days: Count | None = Field(default=None, ge=1, le=365)
    database: DatabaseTarget | None = None

    @model_validator(mode="after")
    def _kind(self) -> SecretSpec:
        if (self.kind == "database") != (self.database is not None):
            raise ValueError("a database secret needs a `database:` block (host, dbname, username) and other kinds "
                             "must not have one; fix kind or the block")
        if self.kind == "external" and self.rotation_days is not None:
            raise ValueError("an external secret has no generator to rotate it; drop rotation_days or make it "
                             "kind: generated")
        return self


class SecretsConfig(Section):
    """Per-service secrets in Secrets Manager and how they reach pods (External Secrets Operator)."""

    rotation: Switch = False
    recovery_window_days: Count = Field(default=30, ge=7, le=30)
    eso_chart_version: str = "0.19.2"
    refresh_interval: str = "1h"
    services: dict[str, dict[str, SecretSpec]] = Field(default_factory=dict)

    @field_validator("refresh_interval")
    @classmethod
    def _refresh(cls, value: str) -> str:
        if not re.fullmatch(r"\d+[smh]", value):
            raise ValueError(f"{value!r} is not an interval External Secrets understands; write it like 1h, 30m or "
                             f"90s")
        if int(value[:-1]) == 0:
            raise ValueError(f"{value!r} makes External Secrets fetch each secret once and never again, so a "
                             f"rotated value never reaches pods; use a positive interval like 1h")
        return value

    @field_validator("eso_chart_version")
    @classmethod
    def _chart(cls, value: str) -> str:
        if not _CHART_VERSION.match(value):
            raise ValueError(f"{value!r} is not a chart version; pin an exact one like 0.19.2")
        return value

    @field_validator("services")
    @classmethod
    def _names(cls, value: dict[str, dict[str, SecretSpec]]) -> dict[str, dict[str, SecretSpec]]:
        for service, secrets in value.items():
            if not _SERVICE.match(service):
                raise ValueError(f"service {service!r} is not a DNS-1123 label; use lowercase letters, digits, '-'")
            for key in secrets:
                if not _SECRET_KEY.match(key):
                    raise ValueError(f"secret key {service}.{key} is invalid; use lowercase letters, digits, '_', '-', "
                                     f"starting with a letter")
        return value

    def entries(self) -> list[tuple[str, str, SecretSpec]]:
        return [(service, key, spec) for service, secrets in self.services.items() for key, spec in secrets.items()]


def _secret_service_issues(secrets: SecretsConfig) -> list[ConfigIssue]:
    """Secrets belong to services of the catalog (infra/k8s/base/<svc>, not the shared base): a typo would create
    a secret no pod reads. The hint is the closest real service name."""
    from infra.ops.io.manifests import services

    catalog = ROOT / "infra" / "k8s"
    known = services(catalog)
    if not known:
        return []
    issues = []
    for service in secrets.services:
        if service in known:
            continue
        close = difflib.get_close_matches(service, known, n=1)
        hint = f"did you mean {close[0]!r}? Services: {', '.join(known)}" if close else f"use one of: {', '.join(known)}"
        issues.append(ConfigIssue(key=f"{PROJECT}:secrets.services.{service}",
                                  problem=f"no service {service!r} in infra/k8s/base; {hint}"))
    return issues
