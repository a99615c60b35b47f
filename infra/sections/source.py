"""Pulumi.<env>.yaml as a person wrote it: UTF-8 text, valid YAML, each key once, a `config:` map, and numbers that
remember how they were spelled.

Every way the file itself can be wrong is one ConfigError naming the file and the line (all duplicate keys at
once), never a ruamel dump or a UnicodeDecodeError. The same reader serves the working tree and a stack file at a
git revision (`plan --against`), whose shape is checked here too.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from infra.ops.io.text import NotUtf8, utf8
from infra.sections.base import FILE, PROJECT, ConfigError, ConfigIssue

_MERGE = "tag:yaml.org,2002:merge"


class SourceFloat(float):
    """A float read from a stack file that remembers how it was written: YAML reads an unquoted 1.30 as 1.3, and
    the hint to quote it must show the 1.30 the person typed."""

    source_text: str = ""


class _Constructor(SafeConstructor):
    """Safe construction whose floats are SourceFloat (a private class: other loaders are untouched)."""

    def construct_yaml_float(self, node: Any) -> SourceFloat:
        value = SourceFloat(super().construct_yaml_float(node))
        value.source_text = str(node.value)
        return value


_Constructor.add_constructor("tag:yaml.org,2002:float", _Constructor.construct_yaml_float)


def _loader() -> YAML:
    yaml = YAML(typ="safe")
    yaml.Constructor = _Constructor
    return yaml


def _problem(error: YAMLError, text: str) -> str:
    """ruamel's error as one clause with its line and the fix: the problem, never the multi-line context dump."""
    if isinstance(error, ReaderError):
        line = text.count("\n", 0, error.position) + 1
        code = error.character if isinstance(error.character, int) else ord(str(error.character)[:1] or "?")
        return f"the control character U+{code:04X} is not allowed in YAML (line {line}); remove it"
    if isinstance(error, MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} (line {mark.line + 1}, column {mark.column + 1}); fix the indentation or quoting there"
    return f"{str(error).splitlines()[0]}; fix the YAML"


def _key(path: list[str | int]) -> str:
    """The config key a person sees for a path into the document: `eks-platform:node_pools.general.max_size`."""
    parts = path[1:] if path[:1] == ["config"] and len(path) > 1 else path
    key = ""
    for part in parts:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def _lines(lines: list[int]) -> str:
    return " and ".join(map(str, lines)) if len(lines) == 2 else f"{', '.join(map(str, lines[:-1]))} and {lines[-1]}"


def duplicate_keys(root: Node | None) -> list[ConfigIssue]:
    """Every key given more than once in one mapping, anywhere in the document (YAML readers keep one silently or
    stop at the first)."""
    issues: list[ConfigIssue] = []
    seen: set[int] = set()

    def walk(node: Node | None, path: list[str | int]) -> None:
        if node is None or id(node) in seen:  # an alias repeats a node it already visited
            return
        seen.add(id(node))
        if isinstance(node, MappingNode):
            where: dict[str, list[int]] = {}
            for key, value in node.value:
                name = str(key.value) if isinstance(key, ScalarNode) else "?"
                if isinstance(key, ScalarNode) and key.tag != _MERGE:
                    where.setdefault(name, []).append(key.start_mark.line + 1)
                walk(value, [*path, name])
            for name, lines in where.items():
                if len(lines) > 1:
                    times = "twice" if len(lines) == 2 else f"{len(lines)} times"
                    issues.append(ConfigIssue(key=_key([*path, name]), problem=(
                        f"given {times} (lines {_lines(lines)}); {'remove one' if len(lines) == 2 else 'keep one'}")))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, [*path, index])

    walk(root, [])
    return issues


def config_map(data: bytes, source: str) -> dict[str, Any]:
    """The `config:` map of a stack file's bytes; ConfigError naming `source` when the file is not UTF-8, not
    YAML, gives a key twice, or has no `config:` map."""
    try:
        text = utf8(data)
    except NotUtf8 as error:
        raise ConfigError(source, [ConfigIssue(key=FILE, problem=f"is {error}; save it as UTF-8")]) from None
    yaml = _loader()
    try:
        root = yaml.compose(text)  # parsed once: the duplicate check reads the nodes the document is built from
        duplicates = duplicate_keys(root)
        if duplicates:
            raise ConfigError(source, duplicates)
        document = yaml.constructor.construct_document(root) if root is not None else None
    except YAMLError as error:
        raise ConfigError(source, [ConfigIssue(key=FILE, problem=f"is not valid YAML: {_problem(error, text)}")]) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(source, [ConfigIssue(key=FILE, problem=(
            "is not a stack file's shape: it has no top-level `config:` map; add it, holding aws:region and the "
            f"{PROJECT}: sections"))])
    return config


def _kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else f"the {type(value).__name__} {value!r}"


def generation_amis(config: Mapping[str, Any], source: str) -> dict[str, dict[str, str]]:
    """pool -> generation -> AMI type from a raw `config:` map, checking only its shape (an old revision's values
    need not pass today's checks; an empty pool or generation has no AMI type to compare); ConfigError naming
    `source` and every key whose shape is wrong."""
    fix = "name a revision whose stack file `invoke plan` accepted"

    def wrong(key: str, holds: str, value: Any) -> ConfigIssue:
        return ConfigIssue(key=key, problem=f"is not a stack file's shape: it must be {holds}, got {_kind(value)}; "
                                            f"{fix}")

    key = f"{PROJECT}:node_pools"
    pools = config.get(key) or {}
    if not isinstance(pools, dict):
        raise ConfigError(source, [wrong(key, "a mapping of pool names to pools", pools)])
    issues: list[ConfigIssue] = []
    found: dict[str, dict[str, str]] = {}
    for pool, spec in pools.items():
        if not isinstance(spec or {}, dict):
            issues.append(wrong(f"{key}.{pool}", "a mapping (instance_types, sizes, generations)", spec))
            continue
        generations = (spec or {}).get("generations") or {}
        if not isinstance(generations, dict):
            issues.append(wrong(f"{key}.{pool}.generations", "a mapping of generation names to generations",
                                generations))
            continue
        found[str(pool)] = {}
        for gen, value in generations.items():
            if not isinstance(value or {}, dict):
                issues.append(wrong(f"{key}.{pool}.generations.{gen}", "a mapping with ami_type", value))
            elif isinstance((value or {}).get("ami_type"), str):
                found[str(pool)][str(gen)] = value["ami_type"]
    if issues:
        raise ConfigError(source, issues)
    return found
