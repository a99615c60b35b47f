"""Stack-file edits (infra.ops.io.stack_file): comments and quoting survive, invalid edits never reach the file."""
from __future__ import annotations

import shutil

import pytest

from infra.config import ROOT, ConfigError, load_stack_config
from infra.ops.io.stack_file import StackFile


@pytest.fixture
def stacks(tmp_path):
    for env in ("dev", "prod"):
        shutil.copy(ROOT / f"Pulumi.{env}.yaml", tmp_path / f"Pulumi.{env}.yaml")
    return tmp_path


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_round_trip_is_byte_identical(stacks, env):
    stack = StackFile(env, stacks)
    before = stack.path.read_text()
    with stack.edit():
        pass
    assert stack.path.read_text() == before


def test_add_generation_keeps_comments_and_validates(stacks):
    stack = StackFile("prod", stacks)
    before = stack.path.read_text()
    stack.add_generation("general", "green", "AL2023_x86_64_STANDARD")
    after = stack.path.read_text()
    assert after.splitlines()[0] == before.splitlines()[0] and after.startswith("# prod:")
    assert "        green:\n          ami_type: AL2023_x86_64_STANDARD\n    system:" in after
    cfg = load_stack_config("prod", stacks)
    assert set(cfg.node_pools["general"].generations) == {"blue", "green"}
    assert len(after.splitlines()) == len(before.splitlines()) + 2


def test_invalid_edit_leaves_the_file_untouched(stacks):
    stack = StackFile("prod", stacks)
    before = stack.path.read_text()
    with pytest.raises(ConfigError, match="node_pools.system.generations"):
        stack.remove_generation("system", "green")  # a pool needs one generation
    with pytest.raises(ConfigError, match="needs arm64"):
        stack.add_generation("general", "green", "AL2023_ARM_64_STANDARD")
    stack.add_generation("general", "green", "AL2023_x86_64_STANDARD", write=False)
    assert stack.path.read_text() == before


def test_upgrade_edits_pin_then_follow(stacks):
    stack = StackFile("dev", stacks)
    stack.update_cluster(version="1.36", addons={"kube-proxy": "v1.36.0-eksbuild.1"}, pin_generations="1.35")
    text = stack.path.read_text()
    assert 'version: "1.36"' in text and "kube-proxy: v1.36.0-eksbuild.1" in text
    cfg = load_stack_config("dev", stacks)
    assert {g.version for g in cfg.node_pools["general"].generations.values()} == {"1.35"}
    stack.follow_cluster_version()
    cfg = load_stack_config("dev", stacks)
    assert cfg.cluster.version == "1.36"
    assert {g.version for g in cfg.node_pools["general"].generations.values()} == {None}
    stack.update_cluster(addons={"vpc-cni": "v1.20.0-eksbuild.1"})
    assert load_stack_config("dev", stacks).cluster.addons["vpc-cni"] == "v1.20.0-eksbuild.1"
    assert stack.path.read_text().startswith("# dev:")


def test_unknown_env_is_a_config_error(stacks):
    with pytest.raises(ConfigError, match="no such stack"):
        StackFile("staging", stacks)
