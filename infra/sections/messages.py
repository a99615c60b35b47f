"""pydantic's validation errors as config issues: the Pulumi key that holds the problem and what to write instead.

pydantic says "Input should be a valid string"; a person editing Pulumi.<env>.yaml needs to hear that YAML read
their unquoted 1.30 as the number 1.3 and that `version: "1.30"` is the fix.
"""
from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from infra.sections.base import PROJECT, ConfigIssue

_TYPE_ERRORS = {
    "int_type": ("a whole number", "write a plain number like 3"),
    "int_parsing": ("a whole number", "write a plain number like 3"),
    "int_from_float": ("a whole number", "write a plain number like 3"),
    "bool_type": ("true or false", "write true or false, unquoted"),
    "bool_parsing": ("true or false", "write true or false, unquoted"),
    "float_type": ("a number", "write a plain number like 1.5"),
    "float_parsing": ("a number", "write a plain number like 1.5"),
    "list_type": ("a list", "write it like [a, b] or as `- item` lines"),
    "dict_type": ("a mapping of keys to values", "write it as `key: value` lines"),
    "model_type": ("a mapping of keys to values", "write it as `key: value` lines"),
}
_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")
# What to write into a list or mapping that must not be empty, by field name (the hint after "is empty; ").
_WHEN_EMPTY = {
    "azs": "list the AZs to spread the VPC's subnets over, e.g. [eu-west-1a, eu-west-1b] (two or more for NAT "
           "failover and a highly available control plane)",
    "node_pools": "add a pool, e.g. general: {instance_types: [m6i.large], min_size: 1, desired_size: 2, "
                  "max_size: 3, generations: {blue: {ami_type: AL2023_x86_64_STANDARD}}}",
    "generations": "add the generation the pool's nodes run, e.g. blue: {ami_type: AL2023_x86_64_STANDARD}",
    "instance_types": "list at least one EC2 instance type, e.g. [m6i.large]",
    "groups": "list the Kubernetes groups the role joins, e.g. [developers] (bound with RBAC)",
    "hostnames": "map each public service to its hostname, e.g. api: api.example.com, or remove the edge section",
    "probe_targets": "list at least one, e.g. [https://checkip.amazonaws.com/, tcp://1.1.1.1:443]",
}
# Why a list or mapping has a maximum, by field name (the hint after "at most N").
_WHEN_LONG = {
    "azs": "EKS and the subnet plan use up to 6 AZs; remove some",
    "generations": "blue/green needs two, a third only while one is being replaced; remove a generation "
                   "`invoke nodes.migrate` has finished with",
    "probe_targets": "each probe round calls them all; keep the most telling ones",
}


def _parts(loc: tuple[Any, ...]) -> list[str | int]:
    """The loc without pydantic's validator and dict-key markers: the path a person wrote in the file (a mapping
    key YAML read as a number stays a key, not a list index)."""
    return [str(part) if isinstance(part, int) and loc[index + 1:index + 2] == ("[key]",) else part
            for index, part in enumerate(loc) if isinstance(part, int)
            or (part != "[key]" and not str(part).startswith(("function-", "lax-")))]


def issue_key(loc: tuple[Any, ...]) -> str:
    """`eks-platform:node_pools.general.generations[0]`-style key for a pydantic loc inside StackConfig."""
    parts: list[str] = []
    for part in _parts(loc):
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]" if parts else f"[{part}]"]
        else:
            parts.append(str(part))
    if not parts:
        return PROJECT
    if parts[0] == "region":
        return "aws:region"
    return f"{PROJECT}:" + ".".join(parts)


def shown(value: Any) -> str:
    """A value as the YAML file spells it (true, null, 1.30), quoted when it is text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value)
    text = getattr(value, "source_text", None)
    if text is not None:
        return text
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "empty"
    return type(value).__name__


def _needs_text(key: str, value: Any) -> str:
    """A string field that YAML handed a number or boolean: the fix is quoting it, exactly as written.

    `key` is "version: " for a field, "" for a list item."""
    if isinstance(value, bool):
        return f"must be text, but YAML reads the unquoted {shown(value)} as a boolean; write it quoted: " \
               f"{key}\"{shown(value)}\""
    if isinstance(value, int | float):
        text = getattr(value, "source_text", None)
        if text is not None:
            read = "" if text == repr(value) else f" {value!r}"
            return f"must be text, but YAML reads the unquoted {text} as the number{read}; write it quoted: " \
                   f"{key}\"{text}\""
        zeros = " (unquoted, YAML drops trailing zeros: 1.30 reads as 1.3)" if isinstance(value, float) else ""
        return f"must be text, got the number {value!r}; write it quoted, exactly as meant: {key}\"{value!r}\"{zeros}"
    return f"must be text, got {shown(value)}; write it as a string"


def _bounds(info: FieldInfo | None, error: Mapping[str, Any]) -> str:
    """The whole allowed range of a number field ("from 20 to 2000"), from its metadata when the field is known,
    else the one bound the error names."""
    found = {name: getattr(item, name) for item in (info.metadata if info else []) for name in ("gt", "ge", "lt", "le")
             if hasattr(item, name)} or dict(error.get("ctx") or {})
    if "ge" in found and "le" in found:
        return f"from {found['ge']} to {found['le']}"
    words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
    return " and ".join(f"{words[name]} {found[name]}" for name in words if name in found)


def _one_of(error: Mapping[str, Any]) -> str:
    """A Literal field: the allowed values as the file must spell them, and the closest one to what was given."""
    expected = str((error.get("ctx") or {}).get("expected", ""))
    allowed = re.findall(r"'([^']*)'", expected)
    value = error.get("input")
    by_form = {re.sub(r"[^a-z0-9]", "", option.lower()): option for option in allowed}
    close = by_form.get(re.sub(r"[^a-z0-9]", "", str(value).lower())) or next(
        iter(difflib.get_close_matches(str(value), allowed, n=1)), None)
    hint = f"; did you mean {close!r}?" if close and len(allowed) > 1 else ""
    return f"must be {expected}, got {shown(value)}{hint}"


def _size(kind: str, error: Mapping[str, Any], field: str) -> str:
    """A list, mapping or text that is empty or too long, in the file's words and with what to write."""
    ctx, value = error.get("ctx") or {}, error.get("input")
    if kind == "string_too_short":
        return "is empty; write a value (an empty string is not one)"
    if kind == "string_too_long":
        return f"is {len(str(value))} characters long, at most {ctx.get('max_length')} allowed; shorten it"
    noun = "entries" if isinstance(value, dict) else "items"
    least, most = ctx.get("min_length"), ctx.get("max_length")
    actual = len(value) if isinstance(value, list | dict) else ctx.get("actual_length")  # pydantic leaves some None
    if kind == "too_short":
        if not value:
            return f"is empty; {_WHEN_EMPTY.get(field) or f'give at least {least} {noun}'}"
        return f"has {actual} {noun}, needs at least {least}"
    return f"has {actual} {noun}, at most {most} allowed; {_WHEN_LONG.get(field) or 'remove some'}"


def problem(error: Mapping[str, Any], allowed: list[str], info: FieldInfo | None = None) -> str:
    """What is wrong at the error's key and how to fix it, in the file's own terms (never pydantic's sentence).
    `info` is the field's definition when known (its full range for a number)."""
    kind = error["type"]
    value = error.get("input")
    message = str(error["msg"]).removeprefix("Value error, ")
    parts = _parts(tuple(error["loc"]))
    field = str(parts[-1]) if parts else "value"
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(field, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed) or 'none'}"
        return f"unknown key; remove it or fix the spelling ({hint})"
    if kind == "missing":
        return "required but missing; add it"
    if kind == "string_type":
        bare = (parts and isinstance(parts[-1], int)) or tuple(error["loc"])[-1:] == ("[key]",)  # list item or key
        return _needs_text("" if bare else f"{field}: ", value)
    if kind in _TYPE_ERRORS:
        wanted, fix = _TYPE_ERRORS[kind]
        return f"must be {wanted}, got {shown(value)} ({_kind(value)}); {fix}"
    if kind in _BOUNDS:
        return f"must be {_bounds(info, error)}, got {shown(value)}"
    if kind == "literal_error":
        return _one_of(error)
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        return _size(kind, error, field)
    if kind == "string_pattern_mismatch":
        return f"{shown(value)} does not have the form {(error.get('ctx') or {}).get('pattern')}; rewrite it so"
    return message


def _unwrap(annotation: Any) -> Any:
    """Annotated[X, ...] -> X; X | None -> X (the member that can hold keys)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = next((a for a in members if _is_model(a) or typing.get_origin(a) in (dict, list)),
                              members[0])
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _holder(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The annotation that holds the last part of `loc` (a model, dict or list), walking through dict keys, list
    indexes and optional sections; None when the path leaves the models."""
    current: Any = model
    for part in _parts(loc)[:-1]:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if _is_model(current) and part in current.model_fields:
            current = current.model_fields[part].annotation
        elif origin is dict:
            current = typing.get_args(current)[1]
        elif origin is list and isinstance(part, int):
            current = typing.get_args(current)[0]
        else:
            return None
    return _unwrap(current)


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that holds the last part of `loc`, for 'did you mean' hints; [] when the holder
    is not a model."""
    holder = _holder(model, loc)
    return list(holder.model_fields) if _is_model(holder) else []


def field_info(model: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    """The definition of the field at `loc` (its bounds, lengths), or None for a dict value or list item."""
    holder, parts = _holder(model, loc), _parts(loc)
    return holder.model_fields.get(parts[-1]) if _is_model(holder) and parts and isinstance(parts[-1], str) else None


def issues_of(errors: Sequence[Mapping[str, Any]], model: type[BaseModel]) -> list[ConfigIssue]:
    return [ConfigIssue(key=issue_key(tuple(e["loc"])), problem=problem(e, allowed_keys(model, tuple(e["loc"])),
                                                                        field_info(model, tuple(e["loc"]))))
            for e in errors]
