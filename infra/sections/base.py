"""Shared pieces of every config section: the strict base model, issue type, version and name fields."""
from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StrictBool, StrictFloat, StrictInt

from infra.ops.errors import Refused
from infra.versions import KubeVersion, supported_range

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$|^[a-z]$")

PROJECT = "eks-platform"
FILE = ""  # the key of a problem with the stack file as a whole: "Pulumi.dev.yaml is not UTF-8 text (...)"

_CHART_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


class ConfigIssue(BaseModel):
    """One problem in the stack config: where it is, what is wrong, and what to do."""

    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.key}: {self.problem}" if self.key != FILE else self.problem


class ConfigError(Refused):
    """All problems found in one stack config, reported together (exit 2: its text is the whole rendering)."""

    def __init__(self, source: str, issues: list[ConfigIssue]):
        self.source = source
        self.issues = issues
        super().__init__(self.render())

    def render(self) -> str:
        if len(self.issues) == 1:
            issue = self.issues[0]
            return f"{self.source} {issue}" if issue.key == FILE else f"{self.source}: {issue}"
        lines = [f"{self.source}: {len(self.issues)} config problems:"]
        lines += [f"  {issue}" for issue in self.issues]
        return "\n".join(lines)


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

# Counts, sizes, switches and durations are strict: YAML `true` is not 1, `1` is not true, "5" is not 5, 2.5 is not 2.
# Float fields still take whole numbers (`probe_timeout_seconds: 1`), never booleans or strings.
Count = StrictInt
Switch = StrictBool
Number = StrictFloat


def _cidr_text(value: Any) -> ipaddress.IPv4Network:
    """A CIDR is written as text; an int or bool would silently become a /32 address."""
    if isinstance(value, ipaddress.IPv4Network):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a CIDR; write it as text like 10.10.0.0/16")
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a well-formed IPv4 CIDR ({exc}); write it like 10.10.0.0/16") from None


Cidr = Annotated[ipaddress.IPv4Network, BeforeValidator(_cidr_text)]


class Section(BaseModel):
    """Strict base: unknown keys are typos, and config never changes after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def app_namespace(env: str) -> str:
    """The one namespace a stack's application services run in."""
    return f"apps-{env}"
