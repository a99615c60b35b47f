"""In-place edits of Pulumi.<env>.yaml that keep the user's comments, quoting and key order.

Engines change infrastructure by editing the stack file and running `pulumi up`, so the file stays
the single source of truth. Every edit is validated as a whole StackConfig before it is written: a
rejected edit leaves the file untouched.
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

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
            generations[generation] = CommentedMap(ami_type=ami_type)

    def remove_generation(self, pool: str, generation: str) -> None:
        with self.edit() as config:
            del self._section(config, "node_pools")[pool]["generations"][generation]

    def update_cluster(self, version: str | None = None, addons: dict[str, str] | None = None,
                       pin_generations: str | None = None) -> None:
        """Move the control plane (and add-ons); `pin_generations` keeps unpinned node groups on that version."""
        with self.edit() as config:
            cluster = self._section(config, "cluster")
            if version is not None:
                if pin_generations:
                    self._each_generation(config, lambda gen: gen.setdefault(
                        "version", DoubleQuotedScalarString(pin_generations)))
                cluster["version"] = DoubleQuotedScalarString(version)
            for name, value in (addons or {}).items():
                cluster.setdefault("addons", CommentedMap())[name] = value

    def follow_cluster_version(self) -> None:
        """Node groups take the control plane's version (drops version pins and AMI release pins)."""
        def unpin(gen: CommentedMap) -> None:
            gen.pop("version", None)
            gen.pop("release_version", None)
        with self.edit() as config:
            self._each_generation(config, unpin)

    def _each_generation(self, config: CommentedMap, change: Callable[[CommentedMap], Any]) -> None:
        for pool in self._section(config, "node_pools").values():
            for gen in pool["generations"].values():
                change(gen)


__all__ = ["StackFile", "ConfigError"]
