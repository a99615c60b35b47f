"""Shared pieces of every config section: the strict base model, issue type, version and name fields."""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

from infra.versions import KubeVersion, supported_range

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$|^[a-z]$")

PROJECT = "eks-platform"

_CHART_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


class ConfigIssue(BaseModel):
    """One problem in the stack config: where it is, what is wrong, and what to do."""

    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}"


def _version(value: Any) -> str:
    version = KubeVersion.parse(value)
    if not version.supported:
        raise ValueError(f"Kubernetes {version} is outside the supported range {supported_range()}; "
                         f"pick a version in that range")
    return str(version)


Version = Annotated[str, AfterValidator(_version)]


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name; use 1-16 lowercase letters, digits and '-', "
                         f"starting with a letter")
    return value


Name = Annotated[str, AfterValidator(_name)]


class Section(BaseModel):
    """Strict base: unknown keys are typos, and config never changes after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def app_namespace(env: str) -> str:
    """The one namespace a stack's application services run in."""
    return f"apps-{env}"
