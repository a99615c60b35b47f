"""pydantic's validation errors as config issues: the Pulumi key that holds the problem and what to write instead.

pydantic says "Input should be a valid string"; a person editing Pulumi.<env>.yaml needs to hear that YAML read
their unquoted 1.30 as the number 1.3 and that `version: "1.30"` is the fix.
"""
from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Union

from pydantic import BaseModel

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
_CONSTRAINTS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long",
                "literal_error", "string_pattern_mismatch", "string_too_short", "string_too_long")


def _parts(loc: tuple[Any, ...]) -> list[str | int]:
    """The loc without pydantic's validator and dict-key markers: the path a person wrote in the file."""
    return [part for part in loc if isinstance(part, int)
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


def problem(error: Mapping[str, Any], allowed: list[str]) -> str:
    """What is wrong at the error's key and how to fix it, in the file's own terms."""
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
        return _needs_text("" if parts and isinstance(parts[-1], int) else f"{field}: ", value)
    if kind in _TYPE_ERRORS:
        wanted, fix = _TYPE_ERRORS[kind]
        return f"must be {wanted}, got {shown(value)} ({_kind(value)}); {fix}"
    if kind in _CONSTRAINTS:
        return f"{message}; got {shown(value)}"
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


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model that holds the last part of `loc`, walking through dict keys, list indexes and
    optional sections, for 'did you mean' hints; [] when the holder is not a model."""
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
            return []
    current = _unwrap(current)
    return list(current.model_fields) if _is_model(current) else []


def issues_of(errors: list[Mapping[str, Any]], model: type[BaseModel]) -> list[ConfigIssue]:
    return [ConfigIssue(key=issue_key(tuple(e["loc"])), problem=problem(e, allowed_keys(model, tuple(e["loc"]))))
            for e in errors]
