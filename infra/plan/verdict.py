"""The policy verdict on an offline plan: the pack's own rule functions, called as pulumi's analyzer calls them.

Each resource's inputs are wrapped in pulumi-policy's own read-only proxies (what the engine hands a
policy), resource rules see every registration (components included, as in a real preview), stack rules
see the whole list with parents and dependencies linked. The difference from `pulumi preview
--policy-pack`: offline, the children of remote components (pulumi-eks) never exist, so rules read
eks.Cluster's inputs; in a real preview they see both.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy

from infra.lint.findings import ERROR, WARNING, Finding
from infra.plan.offline import Plan, PlannedResource


@dataclass(frozen=True, order=True)
class Violation:
    """One rule broken by one resource (or by the stack as a whole: urn empty)."""

    policy: str
    level: str
    urn: str
    resource: str
    message: str
    fix: str = ""

    @property
    def mandatory(self) -> bool:
        return self.level == EnforcementLevel.MANDATORY.value

    def finding(self, env: str) -> Finding:
        return Finding(f"Pulumi.{env}.yaml", self.resource, f"policy/{self.policy}", self.message, self.fix,
                       ERROR if self.mandatory else WARNING)


def _options(resource: PlannedResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=resource.protect,
                                 ignore_changes=list(resource.ignore_changes),
                                 delete_before_replace=None, aliases=[],
                                 custom_timeouts=PolicyCustomTimeouts(0, 0, 0), additional_secret_outputs=[],
                                 parent=resource.parent or None)


def _props(resource: PlannedResource) -> Mapping[str, Any]:
    return unknown_checking_proxy(copy.deepcopy(resource.inputs))


def _stack(resources: Sequence[PlannedResource]) -> list[PolicyResource]:
    """The plan as the engine's AnalyzeStack sees it: parents and dependencies (the plan's recorded depends_on and
    input dependencies) as resource objects."""
    built = {r.urn: PolicyResource(r.type, _props(r), r.urn, r.name, _options(r), None, None, [], {})
             for r in resources}
    for resource in resources:
        node = built[resource.urn]
        node.parent = built.get(resource.parent)
        node.dependencies = [built[urn] for urn in resource.dependencies if urn in built]
    return list(built.values())


def evaluate(resources: Sequence[PlannedResource], policies: Iterable[Policy] | None = None,
             config: Mapping[str, Mapping[str, Any]] | None = None) -> list[Violation]:
    """Every violation of every policy over these resources, sorted (mandatory first)."""
    from infra.policy import POLICIES

    config = config or {}
    by_urn = {r.urn: r for r in resources}
    violations: list[Violation] = []

    def reporter(policy: Policy, default_urn: str):
        def report(message: str, urn: str | None = None) -> None:
            where = by_urn.get(urn or default_urn)
            violations.append(Violation(policy.name, (policy.enforcement_level or EnforcementLevel.ADVISORY).value,
                                        where.urn if where else "", f"{where.type} {where.name}" if where else "(stack)",
                                        message, policy.remediation_steps or ""))
        return report

    stack = None
    for policy in POLICIES if policies is None else policies:
        if isinstance(policy, ResourceValidationPolicy):
            for resource in resources:
                args = ResourceValidationArgs(resource.type, _props(resource), resource.urn, resource.name,
                                              _options(resource), None, config.get(policy.name))
                policy.validate(args, reporter(policy, resource.urn))
        elif isinstance(policy, StackValidationPolicy):
            stack = stack if stack is not None else _stack(resources)
            policy.validate(StackValidationArgs(stack, config.get(policy.name)), reporter(policy, ""))
        else:  # pulumi_policy.Policy is abstract: the analyzer runs only these two kinds
            raise TypeError(f"policy {policy.name} is neither a ResourceValidationPolicy nor a StackValidationPolicy")
    return sorted(violations, key=lambda v: (not v.mandatory, v.policy, v.resource, v.message))


def judge(plan: Plan) -> list[Violation]:
    return evaluate(plan.resources)


def findings(plan: Plan, violations: Iterable[Violation]) -> list[Finding]:
    return [violation.finding(plan.env) for violation in violations]


def verdict_line(violations: Sequence[Violation]) -> str:
    from infra.policy import POLICIES

    mandatory = sum(v.mandatory for v in violations)
    return (f"policy: {mandatory} mandatory, {len(violations) - mandatory} advisory violation(s) of "
            f"{len(POLICIES)} rules")
