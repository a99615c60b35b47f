"""Move a cluster from the aws-auth ConfigMap to EKS access entries, in the order EKS documents.

CONFIG_MAP -> API_AND_CONFIG_MAP (both honoured; the program creates an access entry for every mapping)
-> verify that every role aws-auth maps, including ones added by hand and the node roles EKS maps,
has an access entry -> API (aws-auth ignored). EKS never goes back, so neither does this. Each mode
change is a stack-file edit plus `pulumi up`, so Pulumi state always matches the cluster; an
interrupted run is continued by running it again.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.comments import CommentedMap

from infra.config import AUTH_MODES, PROJECT, without_path
from infra.ops.errors import Failed, reason
from infra.ops.io import aws
from infra.ops.io.pulumi_cli import PulumiCLI, PulumiError
from infra.ops.io.stack_file import StackFile
from infra.ops.lifecycle.errors import MigrationRefused

BOTH, API = "API_AND_CONFIG_MAP", "API"
AWS_AUTH = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "aws-auth", "namespace": "kube-system"}}


class MigrationFailed(Failed):
    """A step failed; the message says which mode the stack is in and how to continue."""


@dataclass(frozen=True)
class AccessRequest:
    """One `access.migrate` as data: the stack and the mode to reach (the CLI's --to, default API)."""

    env: str
    to: str = API
    dry_run: bool = False


def eks_client(region: str):
    return aws.client("eks", region)


def aws_auth_principals(config_map: dict[str, Any] | None) -> set[str]:
    """Role and user ARNs the live aws-auth ConfigMap maps (what access entries must cover before API)."""
    if not config_map:
        return set()
    data = config_map.get("data") or {}
    found: set[str] = set()
    for field_name, arn_key in (("mapRoles", "rolearn"), ("mapUsers", "userarn")):
        try:
            entries = YAML(typ="safe").load(data.get(field_name) or "[]") or []
        except YAMLError as error:
            raise MigrationFailed(f"aws-auth {field_name} is not valid YAML ({getattr(error, 'problem', None) or type(error).__name__}); fix the ConfigMap "
                                  f"before migrating") from None
        found |= {entry[arn_key] for entry in entries if isinstance(entry, dict) and entry.get(arn_key)}
    return found


@dataclass
class AccessMigration:
    """One stack's move along CONFIG_MAP -> API_AND_CONFIG_MAP -> API; a refused move (MigrationRefused, the class
    nodes.migrate refuses with) changes nothing."""

    request: AccessRequest
    cli: PulumiCLI
    stack: StackFile
    eks: Any
    read_aws_auth: Callable[[], dict[str, Any] | None] = lambda: None
    say: Callable[[str], None] = print
    applied: list[str] = field(default_factory=list)

    @property
    def env(self) -> str:
        return self.request.env

    def current(self) -> str:
        return self.stack.config().access.authentication_mode

    def steps(self) -> list[str]:
        """Modes still to apply to reach request.to; refuses going back, in the file or against the cluster.

        The file's own mode comes first when the deployed stack is behind it (an earlier run stopped
        between the edit and a finished `pulumi up`).
        """
        target = self.request.to
        if target not in AUTH_MODES:
            raise MigrationRefused(f"--to {target!r} is not an authentication mode; use {BOTH} or {API}")
        current = self.current()
        if AUTH_MODES.index(target) < AUTH_MODES.index(current):
            raise MigrationRefused(f"--to {target} would go back from {current}, which EKS does not allow; "
                                   f"the cluster can only move forward to {API}")
        deployed = self._outputs().get("authenticationMode")
        if deployed in AUTH_MODES and AUTH_MODES.index(deployed) > AUTH_MODES.index(current):
            raise MigrationRefused(f"Pulumi.{self.env}.yaml says {current} but the cluster already runs {deployed}; "
                                   f"set eks-platform:access.authentication_mode to {deployed} first")
        behind = deployed in AUTH_MODES and AUTH_MODES.index(deployed) < AUTH_MODES.index(current)
        return [*([current] if behind else []),
                *AUTH_MODES[AUTH_MODES.index(current) + 1:AUTH_MODES.index(target) + 1]]

    def run(self) -> list[str]:
        """Apply the modes still to apply (with request.dry_run only say them); returns them."""
        steps = self.steps()
        if not steps:
            self.say(f"{self.env} already uses {self.current()}; nothing to do")
            return []
        if self.request.dry_run:
            for mode in steps:
                if mode == API:
                    self.say(f"would verify every aws-auth mapping has an access entry, then move to {API}")
                else:
                    self.say(f"would set authentication_mode {mode} in Pulumi.{self.env}.yaml and run pulumi up")
            return steps
        for mode in steps:
            if mode == API:
                self.verify()
            self._apply(mode)
        return steps

    def verify(self) -> set[str]:
        """Every principal aws-auth maps (live and declared) has an access entry; returns the ones checked."""
        outputs = self._outputs()
        cfg = self.stack.config()
        cluster = outputs.get("clusterName") or cfg.cluster.name
        try:
            mode = self.eks.describe_cluster(name=cluster)["cluster"].get("accessConfig", {}).get(
                "authenticationMode")
            present: set[str] = set()
            for page in self.eks.get_paginator("list_access_entries").paginate(clusterName=cluster):
                present |= set(page.get("accessEntries", []))
        except (ClientError, BotoCoreError) as error:
            raise MigrationFailed(f"reading access entries of {cluster} failed ({reason(error)}); {self.env} stays on "
                                  f"{self.current()}, re-run when EKS answers") from None
        if mode != BOTH:
            raise MigrationFailed(f"{cluster} reports authentication mode {mode}, expected {BOTH}; run "
                                  f"`invoke up --env {self.env}` and re-run the migration")
        expected = (set(outputs.get("accessPrincipals") or []) | set(cfg.access.admin_role_arns)
                    | {mapping.role_arn for mapping in cfg.access.role_mappings} | aws_auth_principals(self.read_aws_auth()))
        covered = present | {without_path(arn) for arn in present}
        missing = sorted(arn for arn in expected if arn not in covered)
        if missing:
            raise MigrationFailed(f"{len(missing)} principal(s) mapped in aws-auth have no access entry: "
                                  f"{', '.join(missing)}; {self.env} stays on {BOTH} (both work). Add them to "
                                  f"{PROJECT}:access.role_mappings, run `invoke up --env {self.env}`, then re-run")
        self.say(f"verified: {len(expected)} principal(s) have access entries on {cluster}")
        return expected

    def _apply(self, mode: str) -> None:
        with self.stack.edit() as config:
            section = config.setdefault(f"{PROJECT}:access", CommentedMap())
            section["authentication_mode"] = mode
        self.say(f"Pulumi.{self.env}.yaml: authentication_mode -> {mode}; running pulumi up")
        try:
            self.cli.up(yes=True)
        except PulumiError as error:
            raise MigrationFailed(f"{error}; Pulumi.{self.env}.yaml now says {mode}. Fix the cause and re-run "
                                  f"`invoke access.migrate --env {self.env}`: it continues from there") from None
        self.applied.append(mode)
        self.say(f"{self.env} now uses {mode}")

    def _outputs(self) -> dict[str, Any]:
        try:
            return self.cli.outputs()
        except PulumiError as error:
            raise MigrationFailed(str(error)) from None
