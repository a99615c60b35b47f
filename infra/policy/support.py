"""What every rule shares: how a rule is declared, how engine props are read, how IAM documents are parsed.

The engine hands a policy its props as read-only Mapping/Sequence proxies (pulumi_policy.proxy), and so
does the offline evaluation (infra/plan/verdict.py): rules test `collections.abc` types, never `dict`.
A rule is a plain function returning messages; `resource_rule`/`stack_rule` wrap it in the pulumi-policy
class the analyzer runs, so `pulumi preview --policy-pack` and `invoke plan` call the same code.
"""
from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.components.iam import BOUNDARY, PURPOSE_TAG
from infra.identity import WAIVER_TAG

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY
# A resource the program marks as a deliberate exception carries WAIVER_TAG (space-separated rule names), set
# only from an explicit stack-config key; only rules declared `waivable` honour it.

ResourceCheck = Callable[[Mapping[str, Any], ResourceValidationArgs], Iterable[str]]
StackCheck = Callable[[Sequence[PolicyResource]], Iterable[tuple[str | None, str]]]


def is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    return isinstance(value, Mapping)


def is_list(value: Any) -> TypeGuard[Sequence[Any]]:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def plain(value: Any) -> Any:
    """Engine proxies (Mapping/Sequence) back into plain dicts and lists, e.g. to compare or serialise them."""
    if is_map(value):
        return {str(key): plain(item) for key, item in value.items()}
    if is_list(value):
        return [plain(item) for item in value]
    return value


def get(props: Any, path: str, default: Any = None) -> Any:
    """props["a"]["b"]... along a dotted path; `default` where any step is missing or not a mapping."""
    value = props
    for part in path.split("."):
        if not is_map(value) or part not in value:
            return default
        value = value[part]
    return value


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if is_list(value) else [value]


def tags_of(props: Mapping[str, Any]) -> Mapping[str, Any]:
    tags = get(props, "tags")
    return tags if is_map(tags) else {}


def waived(props: Mapping[str, Any], rule: str) -> bool:
    """Whether the resource's tags (or, on pulumi-eks' component, its clusterTags) waive `rule`."""
    cluster_tags = get(props, "clusterTags")
    tags = {**tags_of(props), **(cluster_tags if is_map(cluster_tags) else {})}
    return rule in str(tags.get(WAIVER_TAG, "")).split()


def urn_types(urn: str) -> list[str]:
    """The type chain of a URN (`...::parent$child$type::name`), outermost first."""
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def inside(urn: str, type_: str) -> bool:
    """Whether the resource was declared inside a component of `type_` (e.g. pulumi-eks' own children)."""
    return type_ in urn_types(urn)[:-1]


def resource_rule(name: str, description: str, types: Iterable[str], check: ResourceCheck,
                  level: EnforcementLevel, fix: str, waivable: bool = False) -> ResourceValidationPolicy:
    """A per-resource rule over the given resource types; `check` yields one message per violation."""
    wanted = frozenset(types)

    def validate(args: ResourceValidationArgs, report_violation) -> None:
        if args.resource_type not in wanted or (waivable and waived(args.props, name)):
            return
        for message in check(args.props, args):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate, enforcement_level=level,
                                    remediation_steps=fix)


def stack_rule(name: str, description: str, check: StackCheck, level: EnforcementLevel,
               fix: str) -> StackValidationPolicy:
    """A rule over the whole stack; `check` yields (urn or None, message) per violation."""
    def validate(args: StackValidationArgs, report_violation) -> None:
        for urn, message in check(args.resources):
            report_violation(message, urn)

    return StackValidationPolicy(name=name, description=description, validate=validate, enforcement_level=level,
                                 remediation_steps=fix)


def of_type(resources: Iterable[PolicyResource], *types: str) -> list[PolicyResource]:
    return [resource for resource in resources if resource.resource_type in types]


def label(resource: PolicyResource) -> str:
    return f"{resource.resource_type} {resource.name}"


# -- IAM policy documents ----------------------------------------------------------------------------------------
# Where each resource type keeps its IAM documents (identity policies, trust and resource policies).
DOCUMENTS: dict[str, tuple[str, ...]] = {
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/userPolicy:UserPolicy": ("policy",),
    "aws:iam/groupPolicy:GroupPolicy": ("policy",),
    "aws:iam/role:Role": ("assumeRolePolicy",),
    "aws:kms/key:Key": ("policy",),
    "aws:secretsmanager/secretPolicy:SecretPolicy": ("policy",),
    "aws:ecr/repositoryPolicy:RepositoryPolicy": ("policy",),
    "aws:sns/topicPolicy:TopicPolicy": ("policy",),
    "aws:s3/bucketPolicy:BucketPolicy": ("policy",),
}
IDENTITY_POLICIES = ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy", "aws:iam/userPolicy:UserPolicy",
                     "aws:iam/groupPolicy:GroupPolicy")


def document(value: Any) -> Mapping[str, Any] | None:
    """A policy document given as JSON text or as an object; None when it is neither (or not known yet)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if is_map(value) else None


def documents(resource_type: str, props: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(property, document) for every IAM document the resource carries, inline role policies included."""
    found = [(prop, doc) for prop in DOCUMENTS.get(resource_type, ()) if (doc := document(props.get(prop)))]
    if resource_type == "aws:iam/role:Role":
        for index, inline in enumerate(as_list(props.get("inlinePolicies"))):
            if (doc := document(get(inline, "policy"))) is not None:
                found.append((f"inlinePolicies[{index}]", doc))
    return found


def is_boundary(props: Mapping[str, Any]) -> bool:
    """A managed policy the stack uses as a permissions boundary: a ceiling that grants nothing by itself."""
    return tags_of(props).get(PURPOSE_TAG) == BOUNDARY


def identity_documents(resource_type: str, props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The permission (not trust) documents of a resource: what a principal may do (boundaries grant nothing)."""
    if is_boundary(props):
        return []
    return [doc for prop, doc in documents(resource_type, props)
            if prop != "assumeRolePolicy" and (resource_type in IDENTITY_POLICIES or prop.startswith("inline"))]


def statements(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [statement for statement in as_list(doc.get("Statement")) if is_map(statement)]


def allows(statement: Mapping[str, Any]) -> bool:
    return statement.get("Effect") == "Allow"


def patterns(statement: Mapping[str, Any], key: str) -> list[str]:
    return [str(item) for item in as_list(statement.get(key))]


def grants(statement: Mapping[str, Any], action: str) -> bool:
    """Whether an Allow statement grants `action` (IAM action names are case-insensitive; `*` and `?` match)."""
    if not allows(statement):
        return False
    target = action.lower()
    if "NotAction" in statement:
        return not any(fnmatch.fnmatchcase(target, p.lower()) for p in patterns(statement, "NotAction"))
    return any(fnmatch.fnmatchcase(target, p.lower()) for p in patterns(statement, "Action"))


def granted(statement: Mapping[str, Any], actions: Iterable[str]) -> list[str]:
    return [action for action in actions if grants(statement, action)]


def resources_of(statement: Mapping[str, Any]) -> list[str]:
    return patterns(statement, "Resource") if "Resource" in statement else ["*"]


def condition(statement: Mapping[str, Any], key: str) -> list[str]:
    """Values a statement's Condition requires for `key` under any operator (key names are case-insensitive)."""
    found: list[str] = []
    for block in (statement.get("Condition") or {}).values() if is_map(statement.get("Condition")) else ():
        if is_map(block):
            found += [str(value) for name, values in block.items() if name.lower() == key.lower()
                      for value in as_list(values)]
    return found
