"""How a Plan reads for a person: a tree grouped by component, a summary line, a diff of two stacks."""
from __future__ import annotations

from typing import Any

from rich.tree import Tree

from infra.plan.offline import Plan, PlannedResource

# The inputs worth seeing per resource type: what makes one resource differ from its siblings.
KEY_INPUTS: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "cidrBlock"),
    "aws:ec2/routeTable:RouteTable": ("tags.az",),
    "eks:index:Cluster": ("name", "version", "endpointPublicAccess", "endpointPrivateAccess", "authenticationMode"),
    "aws:eks/nodeGroup:NodeGroup": ("tags.availability-zone", "amiType", "version", "instanceTypes",
                                    "scalingConfig.minSize", "scalingConfig.desiredSize", "scalingConfig.maxSize"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("metadataOptions.httpTokens", "metadataOptions.httpPutResponseHopLimit"),
    "aws:eks/addon:Addon": ("addonName", "addonVersion"),
    "aws:kms/key:Key": ("enableKeyRotation",),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
}


def lookup(inputs: dict[str, Any], path: str) -> Any:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _show(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, list):
        return ",".join(_show(item) for item in value)
    return str(value)


def describe(resource: PlannedResource) -> str:
    keys = KEY_INPUTS.get(resource.type, ())
    details = [f"{key.split('.')[-1]}={_show(lookup(resource.inputs, key))}" for key in keys
               if lookup(resource.inputs, key) is not None]
    protect = " [protected]" if resource.protect else ""
    return f"{resource.type} {resource.name}{protect}" + (f"  ({' '.join(details)})" if details else "")


def tree(plan: Plan) -> Tree:
    root = Tree(f"[bold]stack eks-platform/{plan.env}[/]")
    nodes: dict[str, Tree] = {}
    for resource in plan.resources:
        parent = nodes.get(resource.parent, root)
        label = f"[bold cyan]{resource.type} {resource.name}[/]" if resource.is_component else describe(resource)
        nodes[resource.urn] = parent.add(label)
    return root


def summary(plan: Plan) -> str:
    counts = plan.counts()
    parts = ", ".join(f"{type_.split(':')[-1]} {count}" for type_, count in counts.items())
    return f"{plan.env}: {sum(counts.values())} resources to declare ({parts})"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def diff(left: Plan, right: Plan) -> list[str]:
    """Lines saying which resources exist in one stack only and which inputs differ."""
    lefts = {(r.type, r.name): r for r in left.resources}
    rights = {(r.type, r.name): r for r in right.resources}
    lines = [f"- only in {left.env}: {t} {n}" for (t, n) in lefts if (t, n) not in rights]
    lines += [f"+ only in {right.env}: {t} {n}" for (t, n) in rights if (t, n) not in lefts]
    for key in lefts.keys() & rights.keys():
        a, b = flatten(lefts[key].inputs), flatten(rights[key].inputs)
        changed = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        for field in changed:
            lines.append(f"~ {key[0]} {key[1]}: {field}: {_show(a.get(field))} -> {_show(b.get(field))}")
    return sorted(lines, key=lambda line: (line[0] != "-", line[0] != "+", line))
