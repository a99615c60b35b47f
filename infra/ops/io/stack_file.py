"""In-place edits of Pulumi.<env>.yaml that keep the user's comments, quoting and key order.

Engines change infrastructure by editing the stack file and running `pulumi up`, so the file stays
the single source of truth. Every edit is validated as a whole StackConfig before it is written: a
rejected edit leaves the file untouched.

Comments: ruamel attaches the comment lines that follow an entry to the entry's last scalar (one token
holding the end of that line and every comment line up to the next key). Lines indented deeper than the
entry's key are inside its block; the others describe what follows it. So removing a key drops its
block (and the comments inside it) but keeps the lines that belong to the next key or to the enclosing
mapping, and a key added at the end of a mapping goes before the lines that belong after the mapping.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.tokens import CommentToken

from infra.config import PROJECT, ROOT, ConfigError, StackConfig, from_mapping, read_stack_file, stack_file


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def _plain(node: Any) -> Any:
    """ruamel's commented containers as plain dicts/lists/strs, so validation sees what Pulumi sees."""
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(value) for value in node]
    if isinstance(node, str):
        return str(node)
    return node


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _column(mapping: CommentedMap, key: Any) -> int | None:
    """The column of the mapping's keys as parsed; None for a mapping built in this edit."""
    found = mapping.lc.data.get(key) or next(iter(mapping.lc.data.values()), None)
    return found[1] if found else None


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and not lines[-1] else lines


def _split(lines: list[str], column: int | None) -> tuple[list[str], list[str]]:
    """(inside, outside) a block whose key is at `column`: from the first comment line indented `column` or less
    (with the blank lines right before it) on, lines describe what follows. Unknown column: all outside."""
    cut = next((n for n, line in enumerate(lines) if line.strip() and (column is None or _indent(line) <= column)),
               len(lines))
    if cut == len(lines):
        return lines, []
    while cut and not lines[cut - 1].strip():
        cut -= 1
    return lines[:cut], lines[cut:]


def _tail(node: CommentedMap | CommentedSeq, key: Any) -> tuple[dict[Any, list[Any]], Any, int]:
    """Where the comment emitted right after an entry's last line lives: (comment items, key, slot)."""
    value = node[key]
    if isinstance(value, CommentedMap | CommentedSeq) and len(value) and not value.fa.flow_style():
        return _tail(value, len(value) - 1 if isinstance(value, CommentedSeq) else next(reversed(value)))
    return node.ca.items, key, 0 if isinstance(node, CommentedSeq) else 2


def _cut_after(node: CommentedMap, key: Any, column: int | None) -> list[str]:
    """Take from the entry's tail the lines outside its block (see `_split`); the rest stays with the entry."""
    items, slot, index = _tail(node, key)
    token = (items.get(slot) or [None] * 4)[index]
    if token is None:
        return []
    first, *lines = _lines(token.value) or [""]
    inside, outside = _split(lines, column)
    token.value = "".join(line + "\n" for line in [first, *inside])
    return outside


def _put_after(node: CommentedMap, key: Any, lines: list[str]) -> None:
    items, slot, index = _tail(node, key)
    entry = items.setdefault(slot, [None] * 4)
    text = "".join(line + "\n" for line in lines)
    if entry[index] is None:
        entry[index] = CommentToken("\n" + text, CommentMark(0), None)
    else:
        entry[index].value += text


def _before(node: CommentedMap, key: Any) -> list[str]:
    """The comment lines ruamel keeps in front of a key (after a flow collection, say)."""
    lines: list[str] = []
    for token in (node.ca.items.get(key) or [None, None])[1] or []:
        first, *rest = _lines(token.value) or [""]
        lines += [" " * token.start_mark.column + first if first.strip() else "", *rest]
    return lines


def _set_before(node: CommentedMap, key: Any, lines: list[str]) -> None:
    tokens = [CommentToken(line.lstrip() + "\n", CommentMark(_indent(line) if line.strip() else 0), None)
              for line in lines]
    node.ca.items.setdefault(key, [None] * 4)[1] = tokens or None


def remove_key(mapping: CommentedMap, key: Any) -> None:
    """Delete an entry with its block and the comments inside it; the lines around it that describe what follows
    stay, in front of the next key (or after the new last entry).

    A mapping left empty has nowhere to keep them; no edit writes one (validation refuses an empty
    `generations` and a generation without `ami_type`)."""
    keys = list(mapping)
    position, column = keys.index(key), _column(mapping, key)
    kept = _before(mapping, key) + _cut_after(mapping, key, column)
    del mapping[key]
    mapping.ca.items.pop(key, None)
    if position + 1 < len(keys):
        following = keys[position + 1]
        before = _before(mapping, following)
        rest = _split(before, column)[1]  # what ruamel put in front of it but is indented into the removed block
        if kept or rest != before:
            _set_before(mapping, following, kept + rest)
    elif kept and position:
        _put_after(mapping, keys[position - 1], kept)


def set_key(mapping: CommentedMap, key: Any, value: Any) -> Any:
    """mapping[key] = value; a new key goes after the last entry's block but before the comment lines that follow
    the whole mapping (indented less than its keys). Returns the value."""
    if key not in mapping and len(mapping):
        last = next(reversed(mapping))
        column = _column(mapping, last)
        moved = _cut_after(mapping, last, None if column is None else column - 1)
        mapping[key] = value
        if moved:
            _put_after(mapping, key, moved)
    else:
        mapping[key] = value
    return value


class StackFile:
    """Pulumi.<env>.yaml of one stack, edited through validated round-trips."""

    def __init__(self, env: str, root: Path = ROOT):
        read_stack_file(env, root)  # unknown env or broken YAML -> ConfigError before any edit
        self.env = env
        self.root = root
        self.path = stack_file(env, root)

    def config(self) -> StackConfig:
        return from_mapping(self.env, read_stack_file(self.env, self.root), source=self.path.name)

    @contextmanager
    def edit(self, write: bool = True) -> Iterator[CommentedMap]:
        """Yield the `config:` map; on exit validate the whole config and write it atomically (unless write=False)."""
        yaml = _yaml()
        document = yaml.load(self.path.read_text())
        config = document["config"]
        yield config
        from_mapping(self.env, _plain(config), source=self.path.name)  # raises ConfigError, file unchanged
        if not write:
            return
        buffer = io.StringIO()
        yaml.dump(document, buffer)
        temporary = self.path.with_suffix(".yaml.tmp")
        temporary.write_text(buffer.getvalue())
        os.replace(temporary, self.path)

    def _section(self, config: CommentedMap, name: str) -> CommentedMap:
        return config[f"{PROJECT}:{name}"]

    def add_generation(self, pool: str, generation: str, ami_type: str, write: bool = True) -> None:
        """Declare a generation; write=False only checks that the result would be a valid config."""
        with self.edit(write) as config:
            generations = self._section(config, "node_pools")[pool]["generations"]
            set_key(generations, generation, CommentedMap(ami_type=ami_type))

    def remove_generation(self, pool: str, generation: str) -> None:
        with self.edit() as config:
            remove_key(self._section(config, "node_pools")[pool]["generations"], generation)

    def update_cluster(self, version: str | None = None, addons: dict[str, str] | None = None,
                       pin_generations: str | None = None) -> None:
        """Move the control plane (and add-ons); `pin_generations` keeps unpinned node groups on that version."""
        with self.edit() as config:
            cluster = self._section(config, "cluster")
            if version is not None:
                if pin_generations:
                    self._each_generation(config, lambda gen: "version" in gen or set_key(
                        gen, "version", DoubleQuotedScalarString(pin_generations)))
                set_key(cluster, "version", DoubleQuotedScalarString(version))
            for name, value in (addons or {}).items():
                set_key(cluster["addons"] if "addons" in cluster else set_key(cluster, "addons", CommentedMap()),
                        name, value)

    def follow_cluster_version(self) -> None:
        """Node groups take the control plane's version (drops version pins and AMI release pins)."""
        def unpin(gen: CommentedMap) -> None:
            for key in ("version", "release_version"):
                if key in gen:
                    remove_key(gen, key)
        with self.edit() as config:
            self._each_generation(config, unpin)

    def _each_generation(self, config: CommentedMap, change: Callable[[CommentedMap], Any]) -> None:
        for pool in self._section(config, "node_pools").values():
            for gen in pool["generations"].values():
                change(gen)


__all__ = ["StackFile", "ConfigError"]
