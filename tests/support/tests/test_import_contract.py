"""The import contract, the rule of the house as a check: Pulumi code declares, infra/ops acts, infra/ops/io serves.

Components and config sections never call AWS themselves (boto3/botocore): what they declare is what Pulumi
makes, and an SDK call would act outside the plan. Engines and Lambdas never import pulumi: they change
infrastructure only through the `pulumi` CLI wrapper, so they run where the SDK's engine does not. The
clients of infra/ops/io serve every capability and depend on none, so a capability can change without
breaking the others. Imports are read from the syntax tree, including those inside functions, relative ones
and `importlib.import_module("...")` with a literal name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO_ROOT
from tests.support.imports import imported


@dataclass(frozen=True)
class Rule:
    """Modules under `folder` import nothing matching `forbidden` (a module name or one of its submodules)."""

    folder: str
    forbidden: str
    why: str

    def matches(self, module: str) -> bool:
        return re.match(rf"(?:{self.forbidden})(?:\.|$)", module) is not None


AWS_SDK = r"boto3|botocore"
PULUMI = r"pulumi(?:_\w+)?"
CAPABILITIES = r"infra\.ops\.(?:deploy|lifecycle|nat|platform)"
RULES = (
    Rule("infra/components", AWS_SDK, "components declare through Pulumi; AWS calls belong to infra/ops"),
    Rule("infra/sections", AWS_SDK, "config sections validate data; AWS calls belong to infra/ops"),
    Rule("infra/ops", PULUMI, "engines change infrastructure through infra/ops/io/pulumi_cli.py, not the SDK"),
    Rule("infra/lambdas", PULUMI, "Lambdas run in AWS with boto3 only"),
    Rule("infra/ops/io", CAPABILITIES, "the clients serve every capability and import none"),
)


def violations(root: Path, rule: Rule) -> list[str]:
    """`file:line imports NAME (why)` for each import statement under rule.folder that the rule forbids."""
    found = []
    for path in sorted((root / rule.folder).rglob("*.py")):
        for line, names in imported(path, root):
            name = next((name for name in names if rule.matches(name)), None)
            if name is not None:
                found.append(f"{path.relative_to(root)}:{line} imports {name} ({rule.why})")
    return found


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: f"{rule.folder}-not-{rule.forbidden}")
def test_the_repository_keeps_the_contract(rule):
    assert any((REPO_ROOT / rule.folder).rglob("*.py")), f"{rule.folder} has no modules: the rule checks nothing"
    assert violations(REPO_ROOT, rule) == []


# Each rule broken once in a synthetic tree: (file, source, the rule's folder, the name reported).
BROKEN = [
    ("infra/components/bucket.py", "import boto3\n", "infra/components", "boto3"),
    ("infra/components/cache.py", "def f():\n    from botocore.config import Config\n", "infra/components",
     "botocore.config"),
    ("infra/sections/region.py", "import boto3.session as s\n", "infra/sections", "boto3.session"),
    ("infra/ops/deploy/apply.py", "import pulumi\n", "infra/ops", "pulumi"),
    ("infra/ops/nat/rotate.py", "from pulumi_aws import ec2\n", "infra/ops", "pulumi_aws"),
    ("infra/ops/io/lazy.py", "import importlib\nimportlib.import_module('pulumi.automation')\n", "infra/ops",
     "pulumi.automation"),
    ("infra/lambdas/nat/handler.py", "from pulumi import Output\n", "infra/lambdas", "pulumi"),
    ("infra/ops/io/kube.py", "from infra.ops.deploy.lock import DeployLock\n", "infra/ops/io",
     "infra.ops.deploy.lock"),
    ("infra/ops/io/eks.py", "from infra.ops import lifecycle\n", "infra/ops/io", "infra.ops.lifecycle"),
    ("infra/ops/io/feed.py", "from ..nat import rotation\n", "infra/ops/io", "infra.ops.nat"),
    ("infra/ops/io/__init__.py", "from ..platform.status import collect\n", "infra/ops/io",
     "infra.ops.platform.status"),
]


@pytest.mark.parametrize(("file", "source", "folder", "name"), BROKEN, ids=[case[0] for case in BROKEN])
def test_a_broken_rule_is_reported_with_file_and_line(tmp_path, file, source, folder, name):
    path = tmp_path / file
    path.parent.mkdir(parents=True)
    path.write_text(source)
    rule = next(rule for rule in RULES if rule.folder == folder)
    found = violations(tmp_path, rule)
    assert len(found) == 1 and found[0].startswith(f"{file}:{source.count(chr(10))} imports {name} "), found


def test_allowed_imports_are_not_reported(tmp_path):
    """What the house allows: io imports the error contract, capabilities import io, CLI and plan use both SDKs,
    and names that merely start like a forbidden one are someone else's."""
    allowed = {"infra/ops/io/kube.py": "from infra.ops.errors import Failed\nfrom . import retry\n",
               "infra/ops/deploy/pipeline.py": "from infra.ops.io.kube import Kube\nfrom ..lifecycle import drain\n",
               "infra/ops/nat/rotation.py": "import pulumilike\nfrom infra.lambdas.nat import routes\n",
               "infra/components/nat.py": "import pulumi_aws\nimport boto3ish\n",
               "infra/cli/stack.py": "import boto3\nimport pulumi\n"}
    for file, source in allowed.items():
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text(source)
    assert [found for rule in RULES for found in violations(tmp_path, rule)] == []
