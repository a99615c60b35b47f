"""Nothing lost, nothing half-true: what the engines keep, refuse and say when something is off.

Deploy history that cannot be parsed is kept and refused (kubesim); stack-file edits keep the comments of
other keys; `deploy --tag` refuses an uncommitted overlay; `invoke up` asks on a terminal and refuses without
one (fake pulumi); one NAT rotation per stack across machines (moto SSM); resume hints only when there is
something to resume.
"""
from __future__ import annotations

import shutil

import pytest

from infra.config import ROOT, load_stack_config
from infra.ops.stack_file import StackFile

# --- stack file comments ---------------------------------------------------------------------------------------

GENERATIONS = """\
      generations:
        blue:
          ami_type: AL2_x86_64
        green:
          ami_type: AL2023_x86_64_STANDARD
"""
COMMENTED = """\
      generations:
        # before blue
        blue:
          ami_type: AL2_x86_64  # on blue's line
          # inside blue, after its last key
        # before green
        green:
          # inside green, first line
          ami_type: AL2023_x86_64_STANDARD

        # before red
        red: {ami_type: AL2023_x86_64_STANDARD}  # on red's line
        # end of the generations
"""


@pytest.fixture
def stacks(tmp_path):
    for env in ("dev", "prod"):
        shutil.copy(ROOT / f"Pulumi.{env}.yaml", tmp_path / f"Pulumi.{env}.yaml")
    return tmp_path


@pytest.mark.parametrize(("generation", "block"), [
    ("blue", ["        blue:", "          ami_type: AL2_x86_64  # on blue's line",
              "          # inside blue, after its last key"]),
    ("green", ["        green:", "          # inside green, first line", "          ami_type: AL2023_x86_64_STANDARD"]),
    ("red", ["        red: {ami_type: AL2023_x86_64_STANDARD}  # on red's line"]),
], ids=["first", "middle", "last"])
def test_removing_a_generation_keeps_the_comments_of_everything_else(stacks, generation, block):
    path = stacks / "Pulumi.dev.yaml"
    assert GENERATIONS in path.read_text()
    path.write_text(path.read_text().replace(GENERATIONS, COMMENTED))
    before = path.read_text().splitlines()
    StackFile("dev", stacks).remove_generation("general", generation)
    after = path.read_text().splitlines()
    assert after == [line for line in before if line not in block]  # its block and the comments inside it only
    assert set(load_stack_config("dev", stacks).node_pools["general"].generations) == {"blue", "green", "red"} - {
        generation}


def test_removing_the_last_generation_keeps_the_comment_of_the_next_section(stacks):
    """The bug as it was: nodes.migrate retiring `green` of dev took the `# Cluster access` comment with it."""
    path = stacks / "Pulumi.dev.yaml"
    before = path.read_text().splitlines()
    StackFile("dev", stacks).remove_generation("general", "green")
    assert path.read_text().splitlines() == [line for line in before if line not in (
        "        green:", "          ami_type: AL2023_x86_64_STANDARD")]
    StackFile("dev", stacks).add_generation("general", "green", "AL2023_x86_64_STANDARD")
    assert path.read_text().splitlines() == before  # and adding it back puts it before that comment again


def test_upgrade_pins_and_unpins_around_the_comments(stacks):
    """cluster.upgrade pins node versions (a key appended to each generation) and drops the pins again: the comment
    after the last generation stays in front of the section it describes."""
    path = stacks / "Pulumi.dev.yaml"
    before = path.read_text()
    stack = StackFile("dev", stacks)
    stack.update_cluster(version="1.32", addons={"kube-proxy": "v1.32.0-eksbuild.1"}, pin_generations="1.31")
    pinned = path.read_text()
    assert ('          ami_type: AL2023_x86_64_STANDARD\n          version: "1.31"\n  # Cluster access: dev stays'
            in pinned)
    stack.follow_cluster_version()
    assert path.read_text() == before.replace('version: "1.31"', 'version: "1.32"').replace(
        "kube-proxy: v1.31.3-eksbuild.2", "kube-proxy: v1.32.0-eksbuild.1")


def test_unpinning_keeps_the_comments_after_the_pin(stacks):
    path = stacks / "Pulumi.dev.yaml"
    path.write_text(path.read_text().replace(
        "          ami_type: AL2023_x86_64_STANDARD\n",
        '          ami_type: AL2023_x86_64_STANDARD\n          version: "1.31"  # pinned for the upgrade\n'
        "            # more about the pin\n          # about green, after the pin\n"))
    before = path.read_text().splitlines()
    StackFile("dev", stacks).follow_cluster_version()
    assert path.read_text().splitlines() == [line for line in before if line not in (
        '          version: "1.31"  # pinned for the upgrade', "            # more about the pin")]
